#!/usr/bin/env python3
"""Readiness helpers for bench/run (standard library only).

  ready.py wait URL TIMEOUT_S
      Poll URL until it answers 200; exit 0, or 1 after TIMEOUT_S seconds.

  ready.py startup URL TRIALS CPU PIDFILE -- CMD...
      TRIALS times: start CMD pinned to CPU, time from just before exec to the first 200 from URL
      (polled every millisecond), read the process's VmRSS, then SIGTERM it and wait (bounded).
      Prints one JSON object: {"ready_ms": [...], "ready_rss_kb": [...]}.
      The child's pid is written to PIDFILE while it runs, so bench/run's trap can reap it.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit


def probe(url, timeout=0.5):
    u = urlsplit(url)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        c.request("GET", u.path or "/")
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return None


def wait(url, timeout_s, interval=0.001, proc=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe(url) == 200:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(interval)
    return False


def vm(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stop(proc, grace_s=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def startup(url, trials, cpu, pidfile, cmd):
    ready_ms, rss = [], []
    for _ in range(trials):
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu >= 0 else None
        with open(pidfile + ".log", "ab") as log:
            t0 = time.monotonic_ns()
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, preexec_fn=pin)
        with open(pidfile, "w") as f:
            f.write(str(proc.pid))
        try:
            if not wait(url, 30, proc=proc):
                print(json.dumps({"error": f"not ready within 30 s (exit {proc.poll()})"}))
                return 1
            ready_ms.append(round((time.monotonic_ns() - t0) / 1e6, 1))
            rss.append(vm(proc.pid, "VmRSS"))
        finally:
            stop(proc)
            os.unlink(pidfile)
    print(json.dumps({"ready_ms": ready_ms, "ready_rss_kb": rss}))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "wait":
        return 0 if wait(argv[1], float(argv[2])) else 1
    if len(argv) >= 6 and argv[0] == "startup" and "--" in argv:
        i = argv.index("--")
        url, trials, cpu, pidfile = argv[1], int(argv[2]), int(argv[3]), argv[4]
        return startup(url, trials, cpu, pidfile, argv[i + 1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
