"""The upper bound: the hand-written timely operator of benches/window_count.rs (raw path).

Its profile mode (WINDOW_COUNT_PROFILE=raw_timely) generates WINDOW_COUNT_EVENTS records in
memory (1,000 per ms of event time, 1,000 keys; no file, no parsing, no output encoding), then
runs the whole job WINDOW_COUNT_RUNS times, printing each run's wall time and row count. Wall
time: the median of the printed runs (so start-up is the job's own: starting the workers and
building the dataflow). CPU time per run: the process's CPU time less that of the same process
with WINDOW_COUNT_RUNS=0 (which only generates), divided by the runs (a mean, not a median).
Rows checked: every run wrote windows x 1,000 keys rows (the bench's own data, not the file).
"""

import os
import re
import subprocess

import measure
from engine import Job, NotRunnable, peer_env

NAME = "raw"
RUN_LINE = re.compile(r"^raw_timely (\d+)w: (\d+) rows in ([0-9.]+) ms")


def version(ctx):
    return "benches/window_count.rs raw_timely path, same build as tideflow (timely 0.31)"


def bench_binary(ctx):
    """Builds the bench (cargo bench --no-run) and returns its executable."""
    done = subprocess.run(["cargo", "bench", "--bench", "window_count", "--no-run"], cwd=ctx.root,
                          capture_output=True, text=True)
    found = re.search(r"Executable .*\((.*window_count-[0-9a-f]+)\)", done.stderr)
    if done.returncode != 0 or not found:
        raise NotRunnable(f"cargo bench --bench window_count --no-run failed: {done.stderr.strip().splitlines()[-1:]}")
    return ctx.root / found.group(1)


class Raw(Job):
    def __init__(self, workers, binary):
        super().__init__(NAME, f"hand-written timely operator, in memory, {workers} worker{'s' if workers > 1 else ''}",
                         None, workers)
        self.binary = binary

    def measure(self, ctx, data, runs, logs):
        """(wall seconds of each run, CPU seconds per run, what was checked)."""
        def process(count, log):
            env = peer_env({"WINDOW_COUNT_PROFILE": "raw_timely", "WINDOW_COUNT_EVENTS": str(data.n),
                            "WINDOW_COUNT_RUNS": str(count), "WINDOW_COUNT_WORKERS": str(self.workers)})
            done = measure.run([str(self.binary)], env, log, ctx.timeout_s)
            if done.code != 0:
                raise NotRunnable(f"{self.binary.name} exited with {done.code} (see {log})")
            return done
        baseline = process(0, logs / "generate-only.log")
        timed = process(runs, logs / "runs.log")
        lines = [RUN_LINE.match(line) for line in (logs / "runs.log").read_text().splitlines()]
        lines = [m for m in lines if m]
        windows = -(-data.n // 1_000_000)
        if len(lines) != runs or any(int(m.group(2)) != windows * 1_000 for m in lines):
            raise NotRunnable(f"expected {runs} runs of {windows * 1_000} rows in {logs / 'runs.log'}")
        walls = [float(m.group(3)) / 1e3 for m in lines]
        return walls, (timed.cpu - baseline.cpu) / runs, f"{windows * 1_000:,} rows in every run (its own data)"


def jobs(ctx):
    binary = bench_binary(ctx) if ctx.build else None
    if binary is None:
        found = sorted((p for p in (ctx.root / "target" / "release" / "deps").glob("window_count-*")
                        if not p.suffix and os.access(p, os.X_OK)), key=lambda p: p.stat().st_mtime)
        if not found:
            raise NotRunnable("no target/release/deps/window_count-* : run cargo bench --bench window_count --no-run")
        binary = found[-1]
    return [Raw(w, binary) for w in ctx.workers]
