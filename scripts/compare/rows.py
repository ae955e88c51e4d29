"""Every engine's output as the same sorted (window_start_ms, key, count) rows, and the check.

Engines write JSON lines (Spark and Flink as part files in a directory, with their own metadata
files beside them), one object per (window, key) holding `window_start` (integer ms since the
epoch, or a timestamp string 'YYYY-MM-DD HH:MM:SS[.fff]' read as UTC), `key` and `count`; other
fields (Tideflow's window_end, Pathway's time) are ignored, and a `diff` field (Pathway) must be
1: a retraction would mean the engine wrote a row it later took back.
"""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

WINDOW_MS = 1_000


class Mismatch(Exception):
    """An engine's rows differ from the expected ones."""


def window_start_ms(value):
    """A window start as integer ms since the epoch."""
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.replace("T", " ").rstrip("Z")
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return round(stamp.timestamp() * 1000)
    raise ValueError(f"window_start {value!r} is neither ms nor a timestamp")


def output_files(path):
    """The data files of an output: the file itself, or a directory's visible files, recursively
    (names starting with '.' or '_' are an engine's bookkeeping: Spark's _spark_metadata and
    _SUCCESS, .crc checksums)."""
    path = Path(path)
    if not path.exists():
        raise Mismatch(f"no output at {path}")
    if path.is_file():
        return [path]
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found += [Path(folder) / f for f in sorted(files) if not f.startswith((".", "_"))]
    return found


def read_rows(path):
    """The rows an engine wrote under `path`, normalised and sorted."""
    rows = []
    for file in output_files(path):
        with open(file) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if row.get("diff", 1) != 1:
                    raise Mismatch(f"{file}:{number}: a retraction (diff {row['diff']}): {line.strip()}")
                rows.append((window_start_ms(row["window_start"]), str(row["key"]), int(row["count"])))
    rows.sort()
    return rows


def closed_by_watermark(rows, last_ts):
    """The rows of windows that a watermark equal to the last event time (delay 0) has closed:
    those an engine that does not close its windows at the end of the input still writes."""
    return [row for row in rows if row[0] + WINDOW_MS <= last_ts]


def check(actual, expected, name):
    """Raises Mismatch, naming the first difference, unless the rows are equal."""
    if actual == expected:
        return
    got, want = set(actual), set(expected)
    missing, extra = sorted(want - got), sorted(got - want)
    detail = [f"{name}: {len(actual)} rows, expected {len(expected)}"]
    if missing:
        detail.append(f"{len(missing)} expected rows missing, first {missing[:3]}")
    if extra:
        detail.append(f"{len(extra)} unexpected rows, first {extra[:3]}")
    if not missing and not extra:
        detail.append("the same rows, but some written more than once")
    raise Mismatch("; ".join(detail))
