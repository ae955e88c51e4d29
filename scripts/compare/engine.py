"""What the driver needs from each engine's file, and the venvs the Python peers run in.

An engine's file has NAME, version(ctx) and jobs(ctx), the list of Job configurations to
measure (raising NotRunnable, with one line saying why, when the engine cannot run here). A
Job's command(ctx, data, out) gives the argv (and environment additions, or None) that reads
the dataset's file in the job's format and writes its rows under the directory `out`.
"""

import os
import subprocess
import sys
from pathlib import Path


class NotRunnable(Exception):
    """The engine cannot be installed or run on this machine; the message says why."""


class Job:
    """One configuration of one engine: a row of the table."""

    FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSON lines"}
    # Rows checked against every expected row, or only those of windows that a watermark at
    # the last event time has closed (for an engine that does not close windows at the end of
    # its input).
    CHECK_ALL, CHECK_CLOSED = "all", "closed"

    def __init__(self, engine, label, fmt, workers, check=CHECK_ALL):
        self.engine, self.label, self.fmt, self.workers, self.check = engine, label, fmt, workers, check

    def command(self, ctx, data, out):
        raise NotImplementedError

    def rows_path(self, out):
        """Where under `out` the job's rows are (by default, all of it)."""
        return out


def peer_python(ctx, name, requirement, module):
    """The python of the venv ctx.work/venv/NAME holding `requirement` from PyPI, installed on
    first use; NotRunnable if pip fails or the package does not import."""
    venv = ctx.work / "venv" / name
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    if marker.exists() and marker.read_text().strip() == requirement:
        return python
    log = ctx.work / "venv" / f"{name}.install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{name}: installing {requirement} from PyPI into {venv} (log: {log})", file=sys.stderr, flush=True)
    with open(log, "w") as out:
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", requirement],
                 [str(python), "-c", f"import {module}"]]
        for step in steps:
            if not python.exists() and step[0] == str(python):
                break
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise NotRunnable(f"`{' '.join(step[-3:])}` failed (see {log})")
    marker.write_text(requirement + "\n")
    return python


def peer_env(extra):
    env = dict(os.environ)
    env.update(extra)
    return env


def installed_version(python, distribution):
    done = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version('{distribution}'))"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


HERE = Path(__file__).resolve().parent
