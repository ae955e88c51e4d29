"""The one input every engine reads, and the rows every engine must write.

`generate(n, rate, seed, root)` writes N records, in event-time order, to
ROOT/data/n{N}-r{RATE}-s{SEED}/csv/events.csv (with a header) and .../jsonl/events.jsonl (the
same records), plus expected.tsv: the keyed 1 s tumbling count of those records, one
`window_start_ms<TAB>key<TAB>count` line per (window, key), sorted. Each file format has a
directory of its own because Spark's and Flink's file sources read directories. Files already
there are reused (written to a temporary name, then renamed, so an interrupted run leaves none).

Record i: ts = START_MS + i * 1000 // RATE (integer ms since the epoch; event time advances
1 ms every RATE / 1000 records), key = "k" + a number in 0..999 and value in 0..999, both from
random.Random(SEED), so a rerun writes the same bytes.
"""

import os
import random
from collections import Counter
from pathlib import Path

# 2023-11-14T22:13:20Z, a whole second.
START_MS = 1_700_000_000_000
KEYS = 1_000
WINDOW_MS = 1_000
BATCH = 100_000


class Dataset:
    """Where one generated input lives."""

    def __init__(self, root, n, rate, seed):
        self.n, self.rate, self.seed = n, rate, seed
        self.dir = Path(root) / "data" / f"n{n}-r{rate}-s{seed}"
        self.files = {"csv": self.dir / "csv" / "events.csv", "jsonl": self.dir / "jsonl" / "events.jsonl"}
        self.expected = self.dir / "expected.tsv"

    def ready(self):
        return self.expected.exists() and all(f.exists() for f in self.files.values())

    def last_ts(self):
        """The event time of the last record."""
        return START_MS + (self.n - 1) * 1000 // self.rate


def generate(root, n, rate, seed):
    """The dataset for (n, rate, seed), written on first use."""
    data = Dataset(root, n, rate, seed)
    if data.ready():
        return data
    if rate <= 0 or n <= 0:
        raise ValueError(f"N and RATE must be positive, not N={n} RATE={rate}")
    for f in data.files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = [f"k{k}" for k in range(KEYS)]
    counts = Counter()
    tmp = {fmt: f.with_name(f.name + ".tmp") for fmt, f in data.files.items()}
    with open(tmp["csv"], "w") as csv, open(tmp["jsonl"], "w") as jsonl:
        csv.write("ts,key,value\n")
        for first in range(0, n, BATCH):
            rows = [
                (START_MS + i * 1000 // rate, names[int(rng.random() * KEYS)], int(rng.random() * 1000))
                for i in range(first, min(n, first + BATCH))
            ]
            csv.write("".join(f"{ts},{key},{value}\n" for ts, key, value in rows))
            jsonl.write("".join(f'{{"ts":{ts},"key":"{key}","value":{value}}}\n' for ts, key, value in rows))
            counts.update((ts - ts % WINDOW_MS, key) for ts, key, _ in rows)
    expected = data.expected.with_name("expected.tsv.tmp")
    with open(expected, "w") as out:
        out.write("".join(f"{start}\t{key}\t{count}\n" for (start, key), count in sorted(counts.items())))
    for fmt, f in data.files.items():
        os.replace(tmp[fmt], f)
    os.replace(expected, data.expected)
    return data


def read_expected(data):
    """The expected rows, as sorted (window_start_ms, key, count) tuples."""
    with open(data.expected) as f:
        return [(int(start), key, int(count)) for start, key, count in (line.rstrip("\n").split("\t") for line in f)]
