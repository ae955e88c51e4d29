"""Bytewax (from PyPI): its windowed count, one worker.

The job: a CSVSource (or a FileSource of JSON lines, parsed with json.loads), an EventClock on
ts (ms since the epoch) with wait_for_system_duration 0 and a constant now_getter (so the
watermark is the largest event time read, as in a replay), a TumblingWindower of 1 s aligned to
the epoch (so window id i starts at i * 1000 ms), count_window keyed by key, each (key, window,
count) written as a JSON line by a FileSink (which takes (key, line) pairs); run with bytewax.run.cli_main on one worker. At the
end of its input Bytewax closes every window.

Run by the driver as: VENV_PYTHON peer_bytewax.py INPUT_FILE FORMAT OUT_DIR (rows in OUT_DIR/rows)
"""

import sys

from engine import Peer

PEER = Peer("bytewax", "bytewax==0.21.1", "bytewax", "peer_bytewax.py", "1 worker", "Bytewax, {format}, 1 worker")
NAME, version, jobs = PEER.name, PEER.version, PEER.jobs


def job(input_file, fmt, out_dir):
    import json
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    import bytewax.operators as op
    from bytewax.connectors.files import CSVSource, FileSink, FileSource
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, count_window
    from bytewax.run import cli_main

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    flow = Dataflow("compare")
    if fmt == "csv":
        events = op.input("read", flow, CSVSource(Path(input_file)))
    else:
        events = op.map("parse", op.input("read", flow, FileSource(Path(input_file))), json.loads)
    # A constant now_getter: the watermark is the largest event time seen, not advanced by the
    # wall clock between records (which makes windows close early when a file is replayed).
    clock = EventClock(lambda e: epoch + timedelta(milliseconds=int(e["ts"])), wait_for_system_duration=timedelta(0),
                       now_getter=lambda: epoch)
    windows = count_window("count", events, clock, TumblingWindower(timedelta(seconds=1), epoch), lambda e: e["key"])
    lines = op.map("encode", windows.down,
                   lambda kv: (kv[0], json.dumps({"window_start": kv[1][0] * 1000, "key": kv[0], "count": kv[1][1]})))
    op.output("write", lines, FileSink(Path(out_dir) / "rows"))
    cli_main(flow, workers_per_process=1)


if __name__ == "__main__":
    job(*sys.argv[1:])
