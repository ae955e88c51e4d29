#!/usr/bin/env python3
"""Cluster benchmark (docs/BENCHMARKS.md "Clusters: snapshots and restarts (issue 15)").

Two parts, on the release binary, every command printed before it runs:

1. Snapshots of a keyed job holding KEYS keys of state in one long tumbling window, on three
   shapes with the same job: 1 process x 2 workers (`tideflow run --workers 2`), 2 processes
   x 1 worker and 2 processes x 2 workers (`tideflow cluster --local 2`).
   - size and time: a paced input (SNAP_RATE records/s for SNAP_SECONDS s), a snapshot every
     1 s; the sizes and durations come from the progress reports (process 0's duration runs
     from the epoch's begin to the commit, its bytes are every process's parts), and a thread
     polling the checkpoint directory every ms times each snapshot directory from its creation
     to its MANIFEST.json and sums its files by process. "Full" snapshots: at least 90% of the
     largest one's bytes.
   - throughput: the same job unpaced (COUNT records), with and without --checkpoint-dir,
     interleaved, RUNS runs each; events/s = records / wall time of the whole command.
   Each group's outputs must be byte-identical across shapes (and modes).
2. Restart time: a paced job (RESTART_RATE records/s, KEYS keys, 2 s windows sliding by 1 s:
   the two open windows hold 1 to 2 s of input, about every key, and rows close every second)
   with a snapshot every INTERVAL, as `tideflow cluster --local 2 --restart-attempts KILLS
   --restart-delay 0ms` (process 1 SIGKILLed KILLS times) and as one process of 2 workers
   killed and started again by this script (the shell loop's rule). Kill -> first new output
   row (the output file's size polled every ms), split by the stderr lines. The two series'
   outputs must be byte-identical once both have finished.

    cargo build --release -p tideflow-cli && scripts/bench_cluster.py

Knobs (environment): KEYS (100000), RUNS (3), COUNT (10000000), SNAP_RATE (500000),
SNAP_SECONDS (8), RESTART_RATE (300000), KILLS (3), INTERVALS (1s,250ms), WARM (3, seconds of run
before a kill), SEED (1, the kills' random phase), PARTS (snapshots,throughput,restart),
BIN (target/release/tideflow), TMPDIR (where the checkpoint directories and outputs go).
"""

import filecmp
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_int(name, default):
    return int(os.environ.get(name, default))


KEYS = env_int("KEYS", 100_000)
RUNS = env_int("RUNS", 3)
COUNT = env_int("COUNT", 10_000_000)
SNAP_RATE = env_int("SNAP_RATE", 500_000)
SNAP_SECONDS = env_int("SNAP_SECONDS", 8)
RESTART_RATE = env_int("RESTART_RATE", 300_000)
KILLS = env_int("KILLS", 3)
WARM = float(os.environ.get("WARM", "3"))
SEED = env_int("SEED", 1)
INTERVALS = os.environ.get("INTERVALS", "1s,250ms").split(",")
PARTS = os.environ.get("PARTS", "snapshots,throughput,restart").split(",")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/tideflow"))

RESTART_WINDOW = "sliding:2s,1s"
QUERY = ["--time-field", "ts", "--key-field", "key", "--agg", "count", "--agg", "sum:value"]

# (name, command prefix, workers per process, processes)
SHAPES = [
    ("1 process x 2 workers", [BIN, "run"], 2, 1),
    ("2 processes x 1 worker", [BIN, "cluster", "--local", "2", "--", "run"], 1, 2),
    ("2 processes x 2 workers", [BIN, "cluster", "--local", "2", "--", "run"], 2, 2),
]


def say(text=""):
    print(text, flush=True)


def show(cmd):
    say("$ " + " ".join(shlex.quote(str(a)) for a in cmd))


def median(values):
    return statistics.median(values) if values else float("nan")


def machine():
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines()
                  if l.startswith("Model name")), "?")
    mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1]
    load = open("/proc/loadavg").read().split()[:3]
    say(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} vCPUs "
        f"({model}); memory: {' '.join(mem.split()[:2])} GiB; load average {' '.join(load)}")


def rate_input(rate, count):
    return f"rate:rows_per_sec={rate},keys={KEYS},count={count},seed=1"


def job(prefix, workers, rate, count, window, output, extra=()):
    return (prefix + ["--input", rate_input(rate, count), *QUERY, "--window", window,
                      "--output", output, "--workers", str(workers), *extra])


FINAL = "snapshot-18446744073709551615"


class DirPoller(threading.Thread):
    """Polls a checkpoint directory every ms: when each snapshot directory appeared, when its
    MANIFEST.json did, and its files' sizes then."""

    def __init__(self, directory):
        super().__init__(daemon=True)
        self.directory = directory
        self.stop = threading.Event()
        self.seen = {}  # name -> [created, manifest, {file: size}]

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                names = [n for n in os.listdir(self.directory) if n.startswith("snapshot-")]
            except FileNotFoundError:
                names = []
            for name in names:
                entry = self.seen.setdefault(name, [now, None, {}])
                path = os.path.join(self.directory, name)
                if entry[1] is None and os.path.exists(os.path.join(path, "MANIFEST.json")):
                    entry[1] = now
                    try:
                        entry[2] = {f: os.path.getsize(os.path.join(path, f))
                                    for f in os.listdir(path)}
                    except FileNotFoundError:
                        pass
            time.sleep(0.001)

    def snapshots(self):
        """(ms from creation to manifest, {file: size}) of each complete mid-run snapshot."""
        return [((m - c) * 1e3, files) for name, (c, m, files) in self.seen.items()
                if m is not None and not name.startswith(FINAL)]


def by_process(files, workers):
    """A snapshot's bytes by process: worker w's parts (`...-wW.part`) are process
    w // workers's; the sinks' parts and the manifest are process 0's."""
    sizes = {}
    for name, size_ in files.items():
        match = re.search(r"-w(\d+)\.part$", name)
        process = int(match.group(1)) // workers if match else 0
        sizes[process] = sizes.get(process, 0) + size_
    return [sizes.get(p, 0) for p in range(max(sizes) + 1)]


def progress_snapshots(path):
    """The mid-run snapshots a progress file reports, by number: (duration ms, bytes, state
    rows in the report that first shows it); the final snapshot, at the end of input, is left
    out."""
    found = {}
    last = None
    with open(path) as f:
        for line in f:
            report = json.loads(line)
            snapshot = report.get("snapshot")
            if snapshot and snapshot["completed"] > 0 and snapshot["completed"] not in found:
                rows = sum(s["rows"] for s in report["state"].values())
                found[snapshot["completed"]] = (
                    snapshot["last_duration_ms"], snapshot["last_bytes"], rows)
            if report["final"]:
                last = snapshot["completed"]
    found.pop(last, None)
    return found


def run_timed(cmd, stderr_path):
    """Runs cmd; returns (wall s, user + sys CPU s of it and its waited-for children)."""
    with open(stderr_path, "w") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{open(stderr_path).read()}")
    return wall, usage.ru_utime + usage.ru_stime


def summary_lines(stderr_path):
    """Each process's end-of-run snapshot line: (snapshots, last bytes, longest ms)."""
    return [(int(n), int(b), float(ms)) for n, b, ms in re.findall(
        r"tideflow: (\d+) snapshots committed \(the last (\d+) bytes; "
        r"the longest took ([\d.]+) ms\)", open(stderr_path).read())]


def part_snapshots(tmp):
    count = SNAP_RATE * SNAP_SECONDS
    say(f"## Snapshot size and time: {count} records paced at {SNAP_RATE}/s over {KEYS} keys, "
        "one 1 h window, a snapshot every 1 s")
    say()
    reference = None
    rows = []
    for name, prefix, workers, processes in SHAPES:
        durations, polled, sizes, shares, states, follower = [], [], [], [], [], []
        for run in range(RUNS):
            ck = os.path.join(tmp, "ck")
            shutil.rmtree(ck, ignore_errors=True)
            progress = os.path.join(tmp, "progress.jsonl")
            output = os.path.join(tmp, "snapshots.jsonl")
            cmd = job(prefix, workers, SNAP_RATE, count, "tumbling:1h", output,
                      ["--checkpoint-dir", ck, "--snapshot-interval", "1s", "--keep-snapshots",
                       "1000", "--progress", progress, "--progress-interval", "50ms"])
            if run == 0:
                show(cmd)
            poller = DirPoller(ck)
            poller.start()
            run_timed(cmd, os.path.join(tmp, "stderr"))
            poller.stop.set()
            poller.join()
            if reference is None:
                reference = os.path.join(tmp, "snapshots-reference.jsonl")
                shutil.copy(output, reference)
            elif not filecmp.cmp(reference, output, shallow=False):
                sys.exit(f"outputs differ: {SHAPES[0][0]} and {name}")
            files = [progress] if processes == 1 else [f"{progress}.{p}" for p in range(processes)]
            reports = [progress_snapshots(f) for f in files]
            biggest = max(b for _, b, _ in reports[0].values())
            for n, (ms, b, _) in sorted(reports[0].items()):
                if b >= 0.9 * biggest:
                    durations.append(ms)
                    states.append(sum(r[n][2] for r in reports if n in r))
                    follower += [r[n][0] for r in reports[1:] if n in r]
            snaps = poller.snapshots()
            big = max(sum(f.values()) for _, f in snaps)
            for ms, f in snaps:
                if sum(f.values()) >= 0.9 * big:
                    polled.append(ms)
                    sizes.append(sum(f.values()))
                    shares.append(by_process(f, workers))
        per = [median([s[p] for s in shares]) for p in range(processes)]
        rows.append((name, median(states), median(sizes), per, len(durations),
                     median(durations), max(durations), median(follower) if follower else None,
                     median(polled), max(polled)))
    say()
    say("| shape | state rows | snapshot bytes | bytes per process | full snapshots "
        "| median time | max time | median time, process 1 | median, polled | max, polled |")
    say("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, state, b, per, n, med, mx, fol, pmed, pmx in rows:
        share = " + ".join(f"{s / 1e6:.2f}" for s in per) + " MB" if len(per) > 1 else "-"
        say(f"| {name} | {state:,.0f} | {b / 1e6:.2f} MB | {share} | {n} | {med:.1f} ms "
            f"| {mx:.1f} ms | {f'{fol:.1f} ms' if fol is not None else '-'} | {pmed:.1f} ms "
            f"| {pmx:.1f} ms |")
    say()
    say("(times: process 0's progress reports, from the epoch's begin to the commit; process 1's"
        " from its begin to the commit's news; polled: the snapshot directory's creation to its"
        " MANIFEST.json)")
    say(f"(outputs of the three shapes are identical: {KEYS} keys, {count} records)")
    say()


def part_throughput(tmp):
    say(f"## Throughput: {COUNT} records unpaced, with and without a snapshot every 1 s")
    say()
    results = {}
    reference = None
    for run in range(RUNS):
        for name, prefix, workers, processes in SHAPES:
            for mode in ("none", "every 1 s"):
                ck = os.path.join(tmp, "ck")
                shutil.rmtree(ck, ignore_errors=True)
                output = os.path.join(tmp, "through.jsonl")
                extra = []
                if mode != "none":
                    extra = ["--checkpoint-dir", ck, "--snapshot-interval", "1s"]
                cmd = job(prefix, workers, 100_000_000, COUNT, "tumbling:1h", output, extra)
                if run == 0:
                    show(cmd)
                stderr = os.path.join(tmp, "stderr")
                wall, cpu = run_timed(cmd, stderr)
                lines = summary_lines(stderr)
                results.setdefault((name, mode), []).append((wall, cpu, lines))
                if reference is None:
                    reference = os.path.join(tmp, "through-reference.jsonl")
                    shutil.copy(output, reference)
                elif not filecmp.cmp(reference, output, shallow=False):
                    sys.exit(f"outputs differ: {name}, snapshots {mode}")
    say()
    say("| shape | snapshots | median wall | events/s | cost (wall) | median CPU | cost (CPU) "
        "| snapshots per run (process 0) | longest snapshot (median over runs) |")
    say("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, *_ in SHAPES:
        base_wall = median([w for w, _, _ in results[(name, "none")]])
        base_cpu = median([c for _, c, _ in results[(name, "none")]])
        for mode in ("none", "every 1 s"):
            runs = results[(name, mode)]
            wall = median([w for w, _, _ in runs])
            cpu = median([c for _, c, _ in runs])
            cost = "" if mode == "none" else f"{(wall / base_wall - 1) * 100:+.1f}%"
            cost_cpu = "" if mode == "none" else f"{(cpu / base_cpu - 1) * 100:+.1f}%"
            snaps = [l[0][0] for _, _, l in runs if l]
            longest = [l[0][2] for _, _, l in runs if l]
            say(f"| {name} | {mode} | {wall:.3f} s | {COUNT / wall / 1e6:.2f} M | {cost} "
                f"| {cpu:.2f} s | {cost_cpu} | {median(snaps) if snaps else ''} "
                f"| {f'{median(longest):.1f} ms' if longest else ''} |")
    say()
    for (name, mode), runs in results.items():
        say(f"{name}, {mode}: walls {[round(w, 3) for w, _, _ in runs]}, "
            f"CPU {[round(c, 2) for _, c, _ in runs]}")
    say("(outputs of every shape and mode are identical)")
    say()


class Stderr(threading.Thread):
    """Reads a process's stderr, timestamping each line (monotonic)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = []
        self.lock = threading.Lock()

    def run(self):
        for line in self.stream:
            with self.lock:
                self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))

    def since(self, moment):
        with self.lock:
            return [(t, l) for t, l in self.lines if t >= moment]


def size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


class Series:
    """One restart series: the job's processes (a cluster launcher, or one process started
    again after each kill) and their stderr lines."""

    def __init__(self, cmd, cluster):
        self.cmd = cmd
        self.cluster = cluster
        self.readers = []
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        reader = Stderr(self.proc.stderr)
        reader.start()
        self.readers.append(reader)

    def lines_since(self, moment):
        return sorted(line for r in self.readers for line in r.since(moment))

    def children(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(pid) for pid in f.read().split()]
        except FileNotFoundError:
            return []

    def process(self, index):
        """The pid of the launcher's process `index` (its --process-id)."""
        for pid in self.children():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            if args[args.index(b"--process-id") + 1] == str(index).encode():
                return pid
        sys.exit(f"no process {index} among the launcher's children")

    def kill(self):
        """SIGKILLs process 1 of the cluster, or the one process; returns the moment."""
        victim = self.process(1) if self.cluster else self.proc.pid
        moment = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        if not self.cluster:
            # The shell loop: once the process is gone, the same command again.
            self.proc.wait()
            self.start()
        return moment

    def wait(self):
        code = self.proc.wait()
        for reader in self.readers:
            reader.join()
        return code

    def stop(self):
        """Kills whatever still runs (a failed benchmark)."""
        if self.proc.poll() is None:
            for pid in self.children():
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()


def state_rows(progress, processes):
    """The state rows of the last progress report of each process, summed."""
    total = 0
    for path in [progress] if processes == 1 else [f"{progress}.{p}" for p in range(processes)]:
        with open(path) as f:
            lines = f.read().splitlines()
        total += sum(s["rows"] for s in json.loads(lines[-1])["state"].values())
    return total


def measure_kill(series, output, checkpoint, progress, processes):
    """SIGKILLs a process of the series; returns the moments (s after the kill) of process 0's
    'lost process' line and the launcher's restart line (None for the loop), 'resuming from
    the snapshot', the last 'restored N bytes of state' line of the `processes` processes and
    the first output written by the restarted job, with the restored bytes and the restore
    time the processes report."""
    before = size(output)
    rows = state_rows(progress, processes)
    kill = series.kill()

    # Every growth of the output from the kill until the first one after every process of the
    # new run restored its state.
    growths = []
    kinds = None
    last = before
    deadline = kill + 60
    while True:
        now = time.monotonic()
        current = size(output)
        if current > last:
            growths.append(now)
        last = current
        done = [(t, l) for t, l in series.lines_since(kill) if "bytes of state from epoch" in l]
        if len(done) >= processes and kinds is None:
            # Read at once: old snapshots are removed as new ones complete.
            epoch = int(re.search(r"from epoch (\d+)", done[-1][1]).group(1))
            kinds = restored_parts(checkpoint, epoch)
        if len(done) >= processes and growths and growths[-1] > done[-1][0]:
            break
        if now > deadline:
            sys.exit("timed out waiting for the restarted job's output")
        time.sleep(0.001)
    lines = series.lines_since(kill)
    lost = next((t - kill for t, l in lines if "lost process" in l), None)
    restart = next((t - kill for t, l in lines if "restarting all" in l), None)
    resuming = next((t - kill for t, l in lines if "resuming from the snapshot" in l), None)
    # Event time advances 1 ms per ms at the input's pace, from the epoch on after the restart
    # (stamps are event times in ms): the next window (every 1 s) closes (next end - epoch) ms
    # later.
    next_end = -(-epoch // 1000) * 1000
    return {
        "rows": rows,
        "kill": kill,
        "growths": growths,
        "lost": lost,
        "restart": restart,
        "resuming": resuming,
        "restored": done[-1][0] - kill,
        "replay": (next_end - epoch) / 1e3,
        # The restarted job's own first rows. Earlier growth: a commit of the old run (process
        # 0 after process 1's kill), or one the kill interrupted after its manifest, which
        # recovery finished before the job was built.
        "output": growths[-1] - kill,
        "finished_commit": len(growths) > 1,
        # After the window closed: the next snapshot, and its commit writing the rows.
        "commit": growths[-1] - done[-1][0] - (next_end - epoch) / 1e3,
        "bytes": int(re.search(r"restored (\d+) bytes", done[-1][1]).group(1)),
        "state_bytes": kinds.get("operators", 0),
        "staged_bytes": kinds.get("sink", 0),
        "restore_ms": max(float(re.search(r"in ([\d.]+) ms", l).group(1)) for _, l in done),
    }


def restored_parts(checkpoint, epoch):
    """The bytes of the snapshot at `epoch` by kind: the operators' state, the sinks' staged
    rows (output of the epoch, written when it commits), the sources' positions."""
    for name in os.listdir(checkpoint):
        if name.startswith(f"snapshot-{epoch:020d}-"):
            with open(os.path.join(checkpoint, name, "MANIFEST.json")) as f:
                parts = json.load(f)["parts"]
            kinds = {}
            for part in parts:
                kind = {"sink": "sink", "source": "source"}.get(part["kind"], "operators")
                kinds[kind] = kinds.get(kind, 0) + part["size"]
            return kinds
    return {}


def part_restart(tmp):
    say(f"## Restart: kill -> first new output, {KEYS} keys, {RESTART_RATE} records/s, "
        "2 s windows sliding by 1 s")
    say()
    rng = random.Random(SEED)
    seconds = int(KILLS * (WARM + 3) + 6)
    count = RESTART_RATE * seconds
    table = []
    for interval in INTERVALS:
        outputs = []
        for cluster in (True, False):
            ck = os.path.join(tmp, "ck")
            shutil.rmtree(ck, ignore_errors=True)
            name = "cluster" if cluster else "loop"
            output = os.path.join(tmp, f"restart-{name}-{interval}.jsonl")
            progress = os.path.join(tmp, "progress.jsonl")
            extra = ["--checkpoint-dir", ck, "--snapshot-interval", interval,
                     "--progress", progress, "--progress-interval", "100ms"]
            if cluster:
                prefix = [BIN, "cluster", "--local", "2", "--restart-attempts", str(KILLS),
                          "--restart-delay", "0ms", "--", "run"]
                cmd = job(prefix, 1, RESTART_RATE, count, RESTART_WINDOW, output, extra)
            else:
                cmd = job([BIN, "run"], 2, RESTART_RATE, count, RESTART_WINDOW, output, extra)
            show(cmd)
            series = Series(cmd, cluster)
            kills = []
            try:
                for k in range(KILLS):
                    # A few snapshots after the (re)start, at a random phase of the snapshot
                    # interval and of the windows (a row closes every second).
                    time.sleep(WARM + rng.random() * max(parse_seconds(interval), 1.0))
                    kills.append(measure_kill(series, output, ck, progress, 2 if cluster else 1))
                    m = kills[-1]
                    say(f"  kill {k + 1}: {m['rows']} state rows, lost {fmt_s(m['lost'])}, "
                        f"restart line {fmt_s(m['restart'])}, resuming "
                        f"{fmt_s(m['resuming'])}, restored {fmt_s(m['restored'])} ({m['bytes']} "
                        f"bytes in {m['restore_ms']} ms: {m['state_bytes']} of operator state, "
                        f"{m['staged_bytes']} of staged output), to the next window end "
                        f"{fmt_s(m['replay'])}, first new output "
                        f"{fmt_s(m['output'])}"
                        + (" (the output grew earlier, at "
                           + ", ".join(fmt_s(g - m["kill"]) for g in m["growths"][:-1])
                           + ": a commit of the old run or one recovery finished)"
                           if m["finished_commit"] else ""))
                code = series.wait()
            finally:
                series.stop()
            if code != 0:
                sys.exit(f"the job failed with exit code {code}")
            if cluster and not any(f"finished after {KILLS} restart" in l
                                   for _, l in series.lines_since(0)):
                sys.exit("the launcher did not say it finished after the restarts")
            outputs.append(output)
            table.append((interval, cluster, kills))
        if not filecmp.cmp(outputs[0], outputs[1], shallow=False):
            sys.exit(f"restart outputs differ at --snapshot-interval {interval}")
        say(f"  (outputs of the two series are identical, {count} records)")
    say()
    say("| snapshot interval | shape | kills | state rows at the kill "
        "| restored bytes (operator state + staged output) "
        "| kill -> 'lost process 1' | kill -> restart line "
        "| kill -> 'resuming' | kill -> all restored | restore (its own figure) "
        "| replay to the next window end | then to the commit | kill -> first new output |")
    say("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for interval, cluster, kills in table:
        def med(key):
            values = [k[key] for k in kills if k[key] is not None]
            return fmt_s(median(values)) if values else "-"
        name = ("2 processes x 1 worker, cluster --restart-attempts" if cluster
                else "1 process x 2 workers, started again by a loop")
        restored = " ".join(f"{median([k[key] for k in kills]) / 1e6:.2f}{sep}"
                            for key, sep in (("bytes", " MB ("), ("state_bytes", " +"),
                                             ("staged_bytes", ")")))
        say(f"| {interval} | {name} | {len(kills)} | {median([k['rows'] for k in kills]):,.0f} "
            f"| {restored} | {med('lost')} "
            f"| {med('restart')} | {med('resuming')} | {med('restored')} "
            f"| {median([k['restore_ms'] for k in kills]):.1f} ms | {med('replay')} "
            f"| {med('commit')} | {med('output')} |")
    say()
    for cluster in (True, False):
        kills = [k for _, c, ks in table if c == cluster for k in ks]
        say(f"{'cluster' if cluster else 'loop'}, every interval ({len(kills)} kills): "
            + "; ".join(
                f"kill -> {what} median {fmt_s(median(values))} "
                f"({fmt_s(min(values))} to {fmt_s(max(values))})"
                for what, key in (("'lost process 1'", "lost"), ("restart line", "restart"),
                                  ("'resuming'", "resuming"), ("all restored", "restored"),
                                  ("first new output", "output"))
                if (values := [k[key] for k in kills if k[key] is not None])))
    say()


def fmt_s(seconds):
    return f"{seconds * 1e3:.0f} ms" if seconds is not None else "-"


def parse_seconds(text):
    if text.endswith("ms"):
        return float(text[:-2]) / 1e3
    if text.endswith("s"):
        return float(text[:-1])
    sys.exit(f"INTERVALS: '{text}' is not 250ms or 1s")


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN}: not built (cargo build --release -p tideflow-cli)")
    machine()
    say(f"KEYS={KEYS} RUNS={RUNS} COUNT={COUNT} SNAP_RATE={SNAP_RATE} SNAP_SECONDS={SNAP_SECONDS} "
        f"RESTART_RATE={RESTART_RATE} KILLS={KILLS} INTERVALS={','.join(INTERVALS)} "
        f"WARM={WARM} SEED={SEED}")
    say()
    tmp = tempfile.mkdtemp(prefix="bench_cluster.")
    try:
        if "snapshots" in PARTS:
            part_snapshots(tmp)
        if "throughput" in PARTS:
            part_throughput(tmp)
        if "restart" in PARTS:
            part_restart(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("load average at the end: " + " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
