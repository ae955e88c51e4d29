#!/usr/bin/env python3
"""A/B: what the dashboard costs a running job. `tideflow demo` at RATE events/s for DUR, in
turn without --ui, with --ui and no page open, and with --ui and the page open in headless
chromium (Debian's; scripts/browser-tools.sh installs it); ROUNDS rounds, medians.

Usage: scripts/bench_ui.py BINARY RATE DURATION ROUNDS [WORKERS]

Prints, per arm, the median events/s the demo reports ("done: N events in S s (R events/s)")
and the median CPU seconds (user + sys) of the tideflow process alone (the browser's are not
counted), then the load average. The browser is started before the demo and killed by its
process id after it, whatever happens.
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo(binary, rate, duration, workers, port, page):
    """One run; returns (events/s, CPU seconds of the tideflow process alone)."""
    args = [binary, "demo", "--rate", rate, "--duration", duration, "--workers", workers]
    if port:
        args += ["--ui", str(port)]
    job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    browser, profile, code = None, None, None
    try:
        if page:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(200):
                try:
                    urllib.request.urlopen(url, timeout=5).read()
                    break
                except OSError:
                    time.sleep(0.05)
            profile = tempfile.mkdtemp(prefix="tideflow-bench-chromium-")
            browser = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                        "--remote-debugging-port=0", url],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = job.stdout.read()
        # wait4: the demo's own CPU time, not the browser's.
        _, status, usage = os.wait4(job.pid, 0)
        job.returncode = code = os.waitstatus_to_exitcode(status)
    finally:
        if code is None:
            job.kill()
            job.wait()
        if browser is not None:
            os.kill(browser.pid, signal.SIGKILL)
            browser.wait()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
    if code != 0:
        sys.exit(f"the demo failed: {code}")
    match = re.search(r"done: \d+ events in [\d.]+s \(([\d.]+) events/s\)", out)
    if not match:
        sys.exit(f"no throughput in the demo's output: {out[-300:]}")
    return float(match.group(1)), usage.ru_utime + usage.ru_stime


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__.strip().splitlines()[3])
    binary, rate, duration, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    workers = sys.argv[5] if len(sys.argv) == 6 else "1"
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"{CHROMIUM} is missing: run scripts/browser-tools.sh install")
    arms = [("no --ui", False, False), ("--ui, no page", True, False), ("--ui, page open", True, True)]
    results = {name: [] for name, _, _ in arms}
    for _ in range(rounds):
        for name, ui, page in arms:
            port = free_port() if ui else None
            results[name].append(demo(binary, rate, duration, workers, port, page))
    base = statistics.median(r for r, _ in results["no --ui"])
    for name, values in results.items():
        median = statistics.median(r for r, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:16} median {median:,.0f} events/s ({(median / base - 1) * 100:+.2f}%), "
              f"CPU {cpu:.2f} s; runs {', '.join(f'{r:,.0f}' for r, _ in values)}")
    print("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
