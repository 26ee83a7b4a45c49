"""Reproducible "under load" runs: spinning processes beside the benchmark (``--busy N``).

A user on a shared machine runs beside other jobs; how a runtime's thread pool reacts to a
core being taken (OpenMP spin-waits, a thread pinned to a busy core) decides whether it
slows by half or collapses. ``busy_cores(n)`` starts ``n`` pure-Python spin loops for the
duration of the block (each takes one core, like a second single-threaded job) and stops
them after, also on error.
"""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

SPIN = "while True:\n    pass\n"


@contextmanager
def busy_cores(n: int):
    if n < 0:
        raise ValueError(f"busy_cores(n={n}): need n >= 0 spinning processes")
    procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
