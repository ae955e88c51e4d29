"""Tideflow: `tideflow run` from file to file, CSV and JSON lines, on 1 and 2 workers."""

import subprocess

from engine import Job, NotRunnable

NAME = "tideflow"


def binary(ctx):
    return ctx.root / "target" / "release" / "tideflow"


def version(ctx):
    head = subprocess.run(["git", "-C", str(ctx.root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ctx.root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"tideflow at {head}{' (with uncommitted changes)' if dirty else ''}, release build"


def build(ctx):
    """cargo build --release (a no-op when up to date)."""
    done = subprocess.run(["cargo", "build", "--release", "-p", "tideflow-cli"], cwd=ctx.root,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise NotRunnable(f"cargo build --release failed: {done.stderr.strip().splitlines()[-1:]}")


class Run(Job):
    def command(self, ctx, data, out):
        return [str(binary(ctx)), "run", "--input", str(data.files[self.fmt]), "--time-field", "ts",
                "--key-field", "key", "--agg", "count", "--window", "tumbling:1s",
                "--workers", str(self.workers), "--output", str(out / "rows.jsonl")], None


def jobs(ctx):
    if ctx.build:
        build(ctx)
    if not binary(ctx).exists():
        raise NotRunnable(f"{binary(ctx)} does not exist: run cargo build --release")
    return [Run(NAME, f"`tideflow run`, {Job.FORMAT_NAMES[fmt]}, {w} worker{'s' if w > 1 else ''}", fmt, w)
            for w in ctx.workers for fmt in ctx.formats]
