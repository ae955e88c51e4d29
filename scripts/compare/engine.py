"""What the driver needs from each engine's file, and the venvs the Python peers run in.

An engine's file has NAME, version(ctx) and jobs(ctx), the list of Job configurations to
measure (raising NotRunnable, with one line saying why, when the engine cannot run here). A
Job's command(ctx, data, out) gives the argv and environment (or None: the driver's) that read
the dataset's file in the job's format and write its rows under the directory `out`.

A Python peer's file defines PEER = Peer(...) and its job(input, fmt, out) function, run in
the peer's venv as `VENV_PYTHON peer_X.py INPUT FMT OUT` (INPUT: the dataset's file, or its
directory for engines whose file sources read directories); the job writes its rows to
OUT/rows, a file or a directory of part files.
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


class Peer:
    """A peer engine from PyPI: how to install it, what its table rows are called."""

    def __init__(self, name, requirement, module, script, describe, label, reads_directory=False,
                 check=Job.CHECK_ALL, env=None):
        self.name, self.requirement, self.module, self.script = name, requirement, module, script
        self.describe, self.label, self.reads_directory, self.check = describe, label, reads_directory, check
        # Extra environment for a run, from the venv's python.
        self.env = env or (lambda python: {})

    def python(self, ctx):
        return peer_python(ctx, self.name, self.requirement, self.module)

    def version(self, ctx):
        distribution = self.requirement.split("==")[0]
        return f"{distribution} {installed_version(self.python(ctx), distribution)} ({self.describe})"

    def jobs(self, ctx):
        self.python(ctx)
        return [PeerJob(self, self.label.format(format=Job.FORMAT_NAMES[f]), f) for f in ctx.formats]


class PeerJob(Job):
    def __init__(self, peer, label, fmt):
        super().__init__(peer.name, label, fmt, 1, peer.check)
        self.peer = peer

    def command(self, ctx, data, out):
        python = self.peer.python(ctx)
        source = data.files[self.fmt].parent if self.peer.reads_directory else data.files[self.fmt]
        return [str(python), str(HERE / self.peer.script), str(source), self.fmt, str(out)], \
            peer_env(self.peer.env(python))

    def rows_path(self, out):
        return out / "rows"


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
