#!/usr/bin/env python3
"""A/B: two `tideflow` binaries run alternately on the same generated files, medians.

Usage: scripts/compare/ab.py BEFORE AFTER N RUNS [WORKERS]

Runs `tideflow run --input F --time-field ts --key-field key --agg count --window tumbling:1s`
on target/compare/data/n{N}-r10000-s1/{csv/events.csv,jsonl/events.jsonl} (written by
`scripts/compare/run.py` or gen.py), RUNS times per binary and format, the binaries in turn so
that both see the same load; checks that both write the same bytes; prints the median wall
and CPU (user + sys) seconds of each. Start-up is not subtracted (a few ms).
"""

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(binary, path, workers, out):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run([binary, "run", "--input", str(path), "--time-field", "ts", "--key-field", "key",
                    "--agg", "count", "--window", "tumbling:1s", "--workers", workers,
                    "--output", str(out)], check=True, stderr=subprocess.DEVNULL)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__.strip().splitlines()[2])
    before, after, n, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    workers = sys.argv[5] if len(sys.argv) == 6 else "1"
    data = ROOT / "target" / "compare" / "data" / f"n{n}-r10000-s1"
    out = ROOT / "target" / "compare" / "ab"
    out.mkdir(parents=True, exist_ok=True)
    for fmt, name in [("csv", "csv/events.csv"), ("jsonl", "jsonl/events.jsonl")]:
        if not (data / name).exists():
            sys.exit(f"{data / name} does not exist: run scripts/compare/run.py with N={n} first")
        times = {"before": [], "after": []}
        for _ in range(runs):
            for label, binary in (("before", before), ("after", after)):
                times[label].append(run(binary, data / name, workers, out / f"{label}.out"))
            if (out / "before.out").read_bytes() != (out / "after.out").read_bytes():
                sys.exit(f"{fmt}: the two binaries wrote different rows")
        for label, runs_ in times.items():
            wall = statistics.median(t[0] for t in runs_)
            cpu = statistics.median(t[1] for t in runs_)
            print(f"{fmt} {label}: wall {wall:.3f} s, CPU {cpu:.3f} s ({n} records, {workers} workers)")
    print("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
