"""Measure a command: wall seconds and three peaks of the memory of its whole process tree (the
runner, its workers and every notebook kernel), sampled every 0.1 s.

    python benchmarks/measure.py -- python -m analysis run --data D --out O

prints one JSON line: {"seconds": ..., "peak_gb": ..., "peak_pss_gb": ..., "peak_process_gb": ...,
"returncode": ...}.

- ``peak_pss_gb``: the summed proportional set size (Linux ``Pss``, sampled once a second, see
  ``measure``): each process's private pages plus its share of the pages it maps together with
  others. Summed over the tree it is the memory the machine holds for the command, counting the
  run's memory-mapped snapshot once however many kernels read it.
- ``peak_gb``: the summed resident set size (``Rss``), an upper bound that counts a shared page
  once per process mapping it (two kernels reading the same 1.3 GB of payments count 2.6 GB).
- ``peak_process_gb``: the largest RSS of any one process of the tree (what the issue-20 targets
  call the largest process).

``ru_maxrss`` would only give the largest single process; summing the tree is what the machine
must hold. Where ``Pss`` cannot be read (not Linux), ``peak_pss_gb`` is the RSS figure.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psutil


def tree_memory(proc: psutil.Process, with_pss: bool = True) -> tuple[int, int, int]:
    """(resident bytes, proportional bytes) of a process and all its descendants, and the
    resident bytes of the largest one; a process that vanishes counts 0, one whose PSS cannot
    be read (or ``with_pss`` False) its RSS."""
    rss = pss = largest = 0
    try:
        members = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    for p in members:
        try:
            r = p.memory_info().rss
        except psutil.Error:
            continue
        try:
            s = getattr(p.memory_full_info(), "pss", r) if with_pss else r
        except (psutil.Error, OSError):
            s = r
        rss, pss, largest = rss + r, pss + s, max(largest, r)
    return rss, pss, largest


def measure(cmd: list[str], interval: float = 0.1, pss_every: int = 10, **popen) -> dict:
    """Run ``cmd`` to completion; wall time, the peaks of the tree's summed RSS and summed PSS
    and of the largest single process's RSS (GB), and the return code.

    RSS is sampled every ``interval`` seconds, PSS every ``pss_every``-th sample (1 s): reading
    PSS walks the page tables of a process under its memory lock, and at 10 per second over
    kernels of 5 GB it slowed the run it measured (a 1M run went 176 s -> 208 s)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, **popen)
    proc = psutil.Process(child.pid)
    peak = [0, 0, 0]
    done = threading.Event()

    def sample():
        tick = 0
        while not done.is_set():
            with_pss = tick % pss_every == 0
            rss, pss, largest = tree_memory(proc, with_pss)
            peak[0], peak[2] = max(peak[0], rss), max(peak[2], largest)
            if with_pss:
                peak[1] = max(peak[1], pss)
            tick += 1
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = child.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"seconds": round(seconds, 2), "peak_gb": round(peak[0] / 2**30, 2),
            "peak_pss_gb": round(peak[1] / 2**30, 2), "peak_process_gb": round(peak[2] / 2**30, 2), "returncode": code}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    print(json.dumps(measure(args)))
