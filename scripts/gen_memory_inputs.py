#!/usr/bin/env python3
"""Writes the inputs of the memory-per-key jobs (docs/BENCHMARKS.md, "Memory per key
(issue 16)"), CSV with the header `ts,key,value`, deterministic for a seed:

- session.csv: 2,000,000 records whose keys are drawn uniformly from 1,000,000 ids (about
  864,700 distinct keys, 1 - e^-2 of them), 4 records per ms (500 s of event time, so that with
  `--window session:10m` every session is still open when the input ends);
- tumbling.csv: 2,000,000 records, each of 1,000,000 keys twice in a shuffled order, over the
  same 500 s (one `--window tumbling:10m` window holds all 1,000,000 keys).

Keys are `user` and 7 digits (11 bytes); values are integers 0-999; times start at
1,699,999,800,000 ms (2023-11-14T22:10:00Z, a multiple of 10 minutes).

Usage: scripts/gen_memory_inputs.py [--out DIR] [--records N] [--keys K] [--seed S]
(defaults: target/memory-inputs, 2000000, 1000000, 16).
"""

import argparse
import os
import random

BASE_MS = 1_699_999_800_000
PER_MS = 4


def write(path, keys_of_records, rng):
    with open(path, "w", newline="") as out:
        out.write("ts,key,value\n")
        lines = []
        for i, key in enumerate(keys_of_records):
            lines.append(f"{BASE_MS + i // PER_MS},user{key:07d},{rng.randrange(1000)}\n")
            if len(lines) == 65536:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="target/memory-inputs")
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)

    drawn = [rng.randrange(args.keys) for _ in range(args.records)]
    write(os.path.join(args.out, "session.csv"), drawn, rng)
    print(f"session.csv: {args.records} records, {len(set(drawn))} distinct keys")

    each = [i % args.keys for i in range(args.records)]
    rng.shuffle(each)
    write(os.path.join(args.out, "tumbling.csv"), each, rng)
    print(f"tumbling.csv: {args.records} records, {len(set(each))} distinct keys")


if __name__ == "__main__":
    main()
