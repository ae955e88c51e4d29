"""Wall time and CPU time (user + sys) of one command and every process it starts.

The driver makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so a process that the
command starts and does not wait for (PySpark's and PyFlink's JVM, started by their Python
process) is handed to the driver when its parent exits, and reaped here with its rusage: the
CPU time counts every process of the job, whoever waited for it. Wall time runs from the start
of the command to its exit.
"""

import ctypes
import os
import signal
import subprocess
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
# How long processes left behind by a command may take to exit before they are killed.
LINGER_S = 60


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def cpu_s(rusage):
    return rusage.ru_utime + rusage.ru_stime


class Run:
    """What one command took."""

    def __init__(self, wall, cpu, code):
        self.wall, self.cpu, self.code = wall, cpu, code


def run(argv, env, log_path, timeout_s):
    """Runs argv (stdout and stderr to log_path) until it and what it left behind exit."""
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        group = proc.pid
        timer = threading.Timer(timeout_s, kill_group, (group,))
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = cpu_s(rusage) + reap_left_behind(group)
    return Run(wall, cpu, proc.returncode)


def kill_group(group):
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def reap_left_behind(group):
    """CPU seconds of the processes handed to this subreaper, once they exit (their process
    group is killed after LINGER_S)."""
    cpu, started = 0.0, time.monotonic()
    while True:
        try:
            pid, _, rusage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return cpu
        if pid:
            cpu += cpu_s(rusage)
            continue
        waited = time.monotonic() - started
        if waited > 2 * LINGER_S:
            raise RuntimeError(f"processes left behind by a job still run {waited:.0f} s after it: see `ps -ef`")
        if waited > LINGER_S:
            kill_group(group)
        time.sleep(0.02)
