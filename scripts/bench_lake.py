#!/usr/bin/env python3
"""Parquet and Delta outputs against JSON lines: rows/s and bytes written (docs/BENCHMARKS.md,
issue 17).

One job, `tideflow run` on the rate generator of --records records with --keys keys, at
100,000,000 records per second of event time (far above what a worker reads, so it runs as
fast as it goes; 100,000 records per ms of event time), a keyed tumbling 1 ms count + sum +
avg (so up to --keys rows per window), exactly-once with a checkpoint directory
and a snapshot every 1 s, on 1 worker, written as JSON lines (a file), Parquet (snappy, then
zstd) and a Delta table. Each run gets a fresh output and checkpoint directory; --runs
interleaved rounds, medians. Reports wall time, input records/s, output rows/s, the bytes
the output holds (data files, logs included) and bytes per row. Every run's row count is
checked against the JSON lines run's.

A second table reads --input-records records (`ts` advancing 1 ms per 100 records, `key` of
1,000, `value`) from one JSON lines file and from the same rows as one Parquet file (written
by pyarrow through scripts/lake-tools.sh, row groups of 100,000), a keyed tumbling 1 s count +
sum to a JSON lines file, without checkpoints: input records/s of each format.

Usage: scripts/bench_lake.py [--records N] [--keys K] [--runs R] [--input-records N] [--tideflow PATH]
(build first: cargo build --release). Prints a Markdown table on stdout, progress on stderr.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = [
    ("JSON lines file", "out.jsonl", []),
    ("Parquet, snappy", "out", ["--output-format", "parquet"]),
    ("Parquet, zstd", "out", ["--output-format", "parquet", "--parquet-compression", "zstd"]),
    ("Delta table (snappy)", "delta:out", []),
]


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


def run(tideflow, records, keys, output, extra, work):
    ck = os.path.join(work, "ck")
    target = os.path.join(work, output.removeprefix("delta:"))
    out_arg = ("delta:" + target) if output.startswith("delta:") else target
    args = [
        tideflow, "run",
        "--input", f"rate:rows_per_sec=100000000,keys={keys},count={records},seed=1",
        "--time-field", "ts", "--key-field", "key",
        "--window", "tumbling:1ms",
        "--agg", "count", "--agg", "sum:value", "--agg", "avg:value",
        "--output", out_arg,
        "--checkpoint-dir", ck, "--snapshot-interval", "1s",
    ] + extra
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"bench_lake.py: {' '.join(args)} failed:\n{done.stderr}")
    rows = int(re.search(r"(\d+) window rows written", done.stderr).group(1))
    return wall, rows, size_of(target)


def read_inputs(opts):
    """The input table: JSON lines against Parquet as --input."""
    work = tempfile.mkdtemp(prefix="bench-lake-input-")
    try:
        jsonl = os.path.join(work, "in.jsonl")
        with open(jsonl, "w") as f:
            for i in range(opts.input_records):
                f.write(f'{{"ts":{i // 100},"key":"k{i % 1000}","value":{i % 997}}}\n')
        parquet = os.path.join(work, "in.parquet")
        subprocess.run([os.path.join(ROOT, "scripts/lake-tools.sh"), "read", "write-parquet",
                        jsonl, parquet, "100000"], check=True)
        walls = {"JSON lines": [], "Parquet": []}
        for _ in range(opts.runs):
            for name, path in (("JSON lines", jsonl), ("Parquet", parquet)):
                args = [opts.tideflow, "run", "--input", path, "--time-field", "ts",
                        "--key-field", "key", "--window", "tumbling:1s", "--agg", "count",
                        "--agg", "sum:value", "--output", os.path.join(work, "out.jsonl")]
                start = time.monotonic()
                done = subprocess.run(args, capture_output=True, text=True)
                wall = time.monotonic() - start
                if done.returncode != 0:
                    sys.exit(f"bench_lake.py: {' '.join(args)} failed:\n{done.stderr}")
                print(f"input {name}: {wall:.2f} s", file=sys.stderr, flush=True)
                walls[name].append(wall)
        sizes = {"JSON lines": os.path.getsize(jsonl), "Parquet": os.path.getsize(parquet)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| input ({opts.input_records:,} records) | file bytes | wall s | records/s |")
    print("|---|---:|---:|---:|")
    for name, runs in walls.items():
        wall = statistics.median(runs)
        print(f"| {name} | {sizes[name] / 1e6:,.1f} MB | {wall:.2f} | "
              f"{opts.input_records / wall / 1e3:,.0f} k |")
    singles = "; ".join(f"{n} " + "/".join(f"{w:.2f}" for w in r) for n, r in walls.items())
    print(f"\n(Single runs, wall s: {singles}.)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=4_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--input-records", type=int, default=2_000_000)
    parser.add_argument("--tideflow", default=os.path.join(ROOT, "target/release/tideflow"))
    opts = parser.parse_args()
    results = {name: [] for name, _, _ in VARIANTS}
    for round_ in range(opts.runs):
        for name, output, extra in VARIANTS:
            work = tempfile.mkdtemp(prefix="bench-lake-")
            try:
                wall, rows, size = run(opts.tideflow, opts.records, opts.keys, output, extra, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(f"round {round_ + 1}: {name}: {wall:.2f} s, {rows} rows, {size} bytes",
                  file=sys.stderr, flush=True)
            results[name].append((wall, rows, size))
    counts = {rows for runs in results.values() for _, rows, _ in runs}
    if len(counts) != 1:
        sys.exit(f"bench_lake.py: the variants wrote different row counts: {counts}")
    print("| output | wall s | input records/s | output rows/s | bytes written | bytes/row |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, _ in VARIANTS:
        runs = results[name]
        wall = statistics.median(w for w, _, _ in runs)
        rows = runs[0][1]
        size = statistics.median(s for _, _, s in runs)
        print(f"| {name} | {wall:.2f} | {opts.records / wall / 1e3:,.0f} k | "
              f"{rows / wall / 1e3:,.0f} k | {size / 1e6:,.1f} MB | {size / rows:.1f} |")
    singles = "; ".join(
        f"{name} " + "/".join(f"{w:.2f}" for w, _, _ in results[name]) for name, _, _ in VARIANTS
    )
    print(f"\n(Single runs, wall s: {singles}; {counts.pop()} rows each.)")
    read_inputs(opts)


if __name__ == "__main__":
    main()
