"""Pathway (from PyPI): its windowed count.

The job: pw.io.csv.read (or pw.io.jsonlines.read) of the dataset's file with a schema, in
static mode (the whole file, then the end), windowby(ts, window=pw.temporal.tumbling(1000)
(ms, origin 0), instance=key, behavior=exactly_once_behavior(): each window's row once, when
the event time passes its end) reduced to (window_start, key, count), written with
pw.io.jsonlines.write; monitoring off, one process, PATHWAY_THREADS=1.

Run by the driver as: VENV_PYTHON peer_pathway.py INPUT_FILE FORMAT OUT_DIR
"""

import sys

from engine import HERE, Job, installed_version, peer_env, peer_python

NAME = "pathway"
REQUIREMENT = "pathway==0.33.0"


def python(ctx):
    return peer_python(ctx, NAME, REQUIREMENT, "pathway")


def version(ctx):
    return f"pathway {installed_version(python(ctx), 'pathway')}, 1 thread"


class Pathway(Job):
    def command(self, ctx, data, out):
        return [str(python(ctx)), str(HERE / "peer_pathway.py"), str(data.files[self.fmt]), self.fmt,
                str(out / "rows.jsonl")], peer_env({"PATHWAY_THREADS": "1"})


def jobs(ctx):
    python(ctx)
    return [Pathway(NAME, f"Pathway, {Job.FORMAT_NAMES[f]}, 1 thread", f, 1) for f in ctx.formats]


def job(input_file, fmt, out_file):
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
    pw.io.jsonlines.write(counts, out_file)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    job(*sys.argv[1:])
