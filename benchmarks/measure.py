"""Measure a command: wall seconds and the peak of the summed resident memory of its whole
process tree (the runner, its workers and every notebook kernel), sampled every 0.1 s.

    python benchmarks/measure.py -- python -m analysis run --data D --out O

prints one JSON line: {"seconds": ..., "peak_gb": ..., "returncode": ...}. The summed tree is
what the machine must hold: ``ru_maxrss`` would only give the largest single process.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (processes that vanish count 0)."""
    total = 0
    try:
        members = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in members:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], interval: float = 0.1, **popen) -> dict:
    """Run ``cmd`` to completion; wall time, peak tree memory (GB) and the return code."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, **popen)
    proc = psutil.Process(child.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = child.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"seconds": round(seconds, 2), "peak_gb": round(peak[0] / 2**30, 2), "returncode": code}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    print(json.dumps(measure(args)))
