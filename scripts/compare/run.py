#!/usr/bin/env python3
"""Side by side: the same keyed 1 s tumbling event-time count on Tideflow and its peers.

One generated input (gen.py: fields ts, key of 1,000, value; in event-time order, RATE events
per second of event time), file in -> file out, on each engine:

  tideflow  `tideflow run` (target/release), CSV and JSON lines, on WORKERS workers
  raw       the hand-written timely operator of benches/window_count.rs (in memory: the bound)
  spark     Spark Structured Streaming, available-now, local[1]      (peer_spark.py)
  flink     Flink SQL, TUMBLE window TVF, parallelism 1              (peer_flink.py)
  bytewax   Bytewax count_window, 1 worker                           (peer_bytewax.py)
  pathway   Pathway windowby tumbling, 1 thread                      (peer_pathway.py)

The Python peers are installed from PyPI into target/compare/venv/ENGINE on first use; an engine
that cannot be installed or run is reported on one line and its table row says so. For each
job: RUNS runs on a tiny input (TINY records, its start-up) and RUNS runs on N records; the
medians are subtracted, giving the job's own wall time and CPU time (user + sys of every
process the job starts, measure.py). The rows of each job's first run on each input are
checked equal to the expected rows (the count computed by gen.py, which Tideflow's rows equal
too); a mismatch stops the script with exit code 1.

Prints a Markdown report (machine, versions, table) on stdout, progress on stderr, and keeps
it in target/compare/results-DATE.md; logs of every run in target/compare/logs/.

Environment (defaults in brackets):
  N        records, a comma list, 2M style suffixes allowed [2M]
  RUNS     runs per job and input [3]
  ENGINES  comma list of tideflow,raw,spark,flink,bytewax,pathway [all]
  FORMATS  csv,jsonl [both]           WORKERS  Tideflow's and raw's worker counts [1,2]
  RATE     events per second of event time [10000]    SEED [1]    TINY [10]
  BUILD    1: cargo build --release and cargo bench --no-run first [1]
  TIMEOUT_S  a run still going after this is killed [3600]

Example: ENGINES=tideflow,raw N=2M scripts/compare/run.py
"""

import importlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402
import measure  # noqa: E402
import rows  # noqa: E402
from engine import Job, NotRunnable  # noqa: E402

ENGINES = {"tideflow": "tideflow", "raw": "raw_timely", "spark": "peer_spark", "flink": "peer_flink",
           "bytewax": "peer_bytewax", "pathway": "peer_pathway"}


def progress(text):
    print(text, file=sys.stderr, flush=True)


def count(text):
    """'2M' -> 2000000, '500k' -> 500000, '1000' -> 1000."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def env_list(name, default):
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


class Context:
    """The knobs, and where things are."""

    def __init__(self):
        self.root = HERE.parent.parent
        self.work = self.root / "target" / "compare"
        self.sizes = [count(n) for n in env_list("N", "2M")]
        self.runs = int(os.environ.get("RUNS", "3"))
        self.engines = env_list("ENGINES", ",".join(ENGINES))
        self.formats = env_list("FORMATS", "csv,jsonl")
        self.workers = [int(w) for w in env_list("WORKERS", "1,2")]
        self.rate = count(os.environ.get("RATE", "10000"))
        self.seed = int(os.environ.get("SEED", "1"))
        self.tiny = count(os.environ.get("TINY", "10"))
        self.build = os.environ.get("BUILD", "1") != "0"
        self.timeout_s = float(os.environ.get("TIMEOUT_S", "3600"))
        unknown = [e for e in self.engines if e not in ENGINES] + [f for f in self.formats if f not in Job.FORMAT_NAMES]
        if unknown or self.runs < 1:
            sys.exit(f"run.py: unknown ENGINES or FORMATS {unknown} (engines: {', '.join(ENGINES)}; "
                     "formats: csv, jsonl), or RUNS < 1")


class Row:
    """A line of the table."""

    def __init__(self, job, n):
        self.job, self.label, self.n, self.workers = job, job.label, n, job.workers
        self.wall = self.cpu = self.startup_wall = self.startup_cpu = None
        self.checked = self.problem = None

    def per_core(self):
        return None if not self.wall or self.wall <= 0 else self.n / self.wall / self.workers

    def per_cpu_s(self):
        return None if not self.cpu or self.cpu <= 0 else self.n / self.cpu


def self_check():
    """The normalisation's unit tests (test_rows.py), before anything is measured."""
    suite = unittest.defaultTestLoader.loadTestsFromName("test_rows")
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(suite)
    if not result.wasSuccessful():
        sys.exit("run.py: the self-check of the row normalisation (test_rows.py) failed")


def expected_rows(job, data):
    expected = gen.read_expected(data)
    if job.check == Job.CHECK_CLOSED:
        return rows.closed_by_watermark(expected, data.last_ts()), f"closed windows, {{}} of {len(expected):,} rows"
    return expected, "{} rows"


def timed_runs(ctx, job, data, tag):
    """RUNS runs of the job on `data`; (walls, cpus, what the first run's rows were checked
    against)."""
    walls, cpus, checked = [], [], None
    for run in range(ctx.runs):
        out = ctx.work / "out" / tag
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        log = ctx.work / "logs" / f"{tag}-n{data.n}-{run}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv, env = job.command(ctx, data, out)
        done = measure.run(argv, env, log, ctx.timeout_s)
        if done.code != 0:
            raise NotRunnable(f"exit code {done.code} on {data.n:,} records (see {log})")
        walls.append(done.wall)
        cpus.append(done.cpu)
        if run == 0:
            expected, what = expected_rows(job, data)
            rows.check(rows.read_rows(job.rows_path(out)), expected, f"{job.label}, {data.n:,} records")
            checked = what.format(f"{len(expected):,}")
    shutil.rmtree(ctx.work / "out" / tag, ignore_errors=True)
    return walls, cpus, checked


def measure_job(ctx, job, data, tiny):
    row = Row(job, data.n)
    tag = f"{job.engine}-{job.fmt or 'mem'}-{job.workers}w"
    progress(f"{job.label}, {data.n:,} records ...")
    try:
        if hasattr(job, "measure"):
            logs = ctx.work / "logs" / f"{tag}-n{data.n}"
            logs.mkdir(parents=True, exist_ok=True)
            walls, row.cpu, row.checked = job.measure(ctx, data, ctx.runs, logs)
            row.wall = statistics.median(walls)
        else:
            tiny_walls, tiny_cpus, _ = timed_runs(ctx, job, tiny, tag)
            walls, cpus, row.checked = timed_runs(ctx, job, data, tag)
            row.startup_wall, row.startup_cpu = statistics.median(tiny_walls), statistics.median(tiny_cpus)
            row.wall = statistics.median(walls) - row.startup_wall
            row.cpu = statistics.median(cpus) - row.startup_cpu
    except NotRunnable as failed:
        row.problem = f"failed: {failed}"
        progress(f"{job.label}: {row.problem}")
    else:
        progress(f"  {row.wall:.2f} s, {row.cpu:.2f} CPU s after start-up; rows: {row.checked}")
    return row


def mega(value):
    return "n/a" if value is None else f"{value / 1e6:.3f} M"


def table(rows_done):
    lines = ["| engine | records | events/s per core (wall) | events per CPU-second | wall s, less start-up (start-up) "
             "| CPU s, less start-up (start-up) | rows checked |", "|---|---:|---:|---:|---:|---:|---|"]
    for row in rows_done:
        if row.problem:
            lines.append(f"| {row.label} | {row.n:,} | {row.problem} | | | | |")
            continue
        startup = lambda v: "" if v is None else f" ({v:.3f})"  # noqa: E731
        lines.append(f"| {row.label} | {row.n:,} | {mega(row.per_core())} | {mega(row.per_cpu_s())} "
                     f"| {row.wall:.3f}{startup(row.startup_wall)} | {row.cpu:.3f}{startup(row.startup_cpu)} "
                     f"| {row.checked} |")
    return "\n".join(lines)


def ratios(rows_done):
    """The issue's targets that the table answers, for each input size."""
    def find(n, engine, fmt, workers):
        return next((r for r in rows_done if r.n == n and not r.problem and r.job.engine == engine
                     and r.job.fmt == fmt and r.workers == workers), None)

    def ratio(a, b):
        return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"

    lines = []
    for n in sorted({r.n for r in rows_done}):
        raw = find(n, "raw", None, 1)
        for fmt in Job.FORMAT_NAMES:
            one, two = find(n, "tideflow", fmt, 1), find(n, "tideflow", fmt, 2)
            if one is None:
                continue
            name = f"{n:,} records, {Job.FORMAT_NAMES[fmt]}"
            if raw:
                lines.append(f"- {name}: CLI (1 worker) / hand-written timely operator (1 worker), per core: "
                             f"{ratio(one.per_core(), raw.per_core())} (target >= 0.20)")
            if two:
                lines.append(f"- {name}: 2 workers / 1 worker, events per CPU-second: "
                             f"{ratio(two.per_cpu_s(), one.per_cpu_s())} (target >= 0.80); wall time: "
                             f"{ratio(two.wall, one.wall)} (target < 1)")
            for peer in ["spark", "flink", "bytewax", "pathway"]:
                other = find(n, peer, fmt, 1)
                if other:
                    lines.append(f"- {name}: Tideflow (1 worker) / {peer}, per core: "
                                 f"{ratio(one.per_core(), other.per_core())}; per CPU-second: "
                                 f"{ratio(one.per_cpu_s(), other.per_cpu_s())}")
    return lines


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return f"{os.cpu_count()} CPUs ({cpu}), {int(mem) / 2**20:.1f} GiB memory, {platform.platform()}"


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    ctx = Context()
    self_check()
    measure.become_subreaper()
    modules = {name: importlib.import_module(ENGINES[name]) for name in ctx.engines}
    started, load_before = time.strftime("%Y-%m-%d %H:%M %Z"), load()
    jobs, versions, skipped = {}, [], []
    for name, module in modules.items():
        try:
            jobs[name] = module.jobs(ctx)
            versions.append(f"- {name}: {module.version(ctx)}")
        except NotRunnable as why:
            progress(f"{name}: not run: {why}")
            skipped.append(f"| {name} | | not run: {why} | | | | |")
    tiny = gen.generate(ctx.work, ctx.tiny, ctx.rate, ctx.seed)
    done = []
    for n in ctx.sizes:
        progress(f"input: {n:,} records, {ctx.rate:,} events per second of event time (cached in {ctx.work / 'data'})")
        data = gen.generate(ctx.work, n, ctx.rate, ctx.seed)
        for name in jobs:
            for job in jobs[name]:
                try:
                    done.append(measure_job(ctx, job, data, tiny))
                except rows.Mismatch as wrong:
                    print(table(done))
                    sys.exit(f"run.py: ROWS DIFFER: {wrong}")
    report = "\n".join([
        f"Side by side, {started} (load average before {load_before}, after {load()})",
        f"Machine: {machine()}",
        f"Input: N records in event-time order, {ctx.rate:,} events per second of event time, 1,000 keys, "
        f"seed {ctx.seed}; start-up measured on {ctx.tiny} records; medians of {ctx.runs} runs",
        "Versions:", *versions, "",
        table(done) + ("\n" + "\n".join(skipped) if skipped else ""), "", *ratios(done), ""])
    print(report)
    saved = ctx.work / f"results-{time.strftime('%Y%m%d-%H%M%S')}.md"
    saved.write_text(report)
    progress(f"saved in {saved}")


if __name__ == "__main__":
    main()
