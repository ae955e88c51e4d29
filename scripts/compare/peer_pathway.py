"""Pathway (from PyPI): its windowed count.

The job: pw.io.csv.read (or pw.io.jsonlines.read) of the dataset's file with a schema, in
static mode (the whole file, then the end), windowby(ts, window=pw.temporal.tumbling(1000)
(ms, origin 0), instance=key, behavior=exactly_once_behavior(): each window's row once, when
the event time passes its end) reduced to (window_start, key, count), written with
pw.io.jsonlines.write; monitoring off, one process, PATHWAY_THREADS=1.

Run by the driver as: VENV_PYTHON peer_pathway.py INPUT_FILE FORMAT OUT_DIR (rows in OUT_DIR/rows)
"""

import sys

from engine import Peer

PEER = Peer("pathway", "pathway==0.33.0", "pathway", "peer_pathway.py", "1 thread", "Pathway, {format}, 1 thread",
            env=lambda python: {"PATHWAY_THREADS": "1"})
NAME, version, jobs = PEER.name, PEER.version, PEER.jobs


def job(input_file, fmt, out_dir):
    import pathway as pw

    class Event(pw.Schema):
        ts: int
        key: str
        value: int

    if fmt == "csv":
        events = pw.io.csv.read(input_file, schema=Event, mode="static")
    else:
        events = pw.io.jsonlines.read(input_file, schema=Event, mode="static")
    counts = events.windowby(
        events.ts, window=pw.temporal.tumbling(duration=1000), instance=events.key,
        behavior=pw.temporal.exactly_once_behavior(),
    ).reduce(window_start=pw.this._pw_window_start, key=pw.this._pw_instance, count=pw.reducers.count())
    pw.io.jsonlines.write(counts, f"{out_dir}/rows")
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    job(*sys.argv[1:])
