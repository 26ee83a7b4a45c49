"""CPU thread count of the engine's work: fixed, torch's own, or chosen from the free cores.

On a shared CPU, a torch thread pool as wide as the machine collapses when another process
takes a core: every parallel region (one per matmul, dozens per decode step) waits at its
barrier for the thread whose core is busy, so a decode step can take tens of times longer
than on one thread. ``num_threads="auto"`` counts the cores that are idle right now (from
``/proc/stat`` over a short window, before our own work starts) and runs the call on that
many threads: torch's own setting (its default is the physical cores; a user's
``torch.set_num_threads`` is a cap we keep), lowered to the free cores, at least one;
torch's setting is restored afterwards. A count is reused for calls less than a second apart.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

AUTO = "auto"
_REMEASURE_S = 1.0  # calls closer together than this reuse the last count (the window costs time)
_last: tuple[float, int] | None = None


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs, or None where ``/proc/stat`` is not there."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return idle, sum(ticks[:8])  # guest time is already inside user/nice


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_cores(window_s: float = 0.05) -> int:
    """Cores idle over the next ``window_s`` seconds (rounded; at least 1, at most the usable ones)."""
    cores = usable_cores()
    a = _cpu_times()
    time.sleep(window_s)
    b = _cpu_times()
    if a is None or b is None or b[1] <= a[1]:
        return cores
    machine = os.cpu_count() or cores
    idle_cpus = (b[0] - a[0]) / (b[1] - a[1]) * machine
    return max(1, min(cores, int(idle_cpus + 0.5)))


def auto_threads() -> int:
    """The thread count "auto" picks now: torch's setting, lowered to the free cores."""
    global _last
    now = time.monotonic()
    if _last is None or now - _last[0] > _REMEASURE_S:
        _last = (now, free_cores(0.03))
    return max(1, min(torch.get_num_threads(), _last[1]))


def check_num_threads(value, name: str = "num_threads"):
    """None (torch's setting), an int >= 1, or "auto"; anything else is an error that says so."""
    if value is None or value == AUTO:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: use an int >= 1, 'auto' (the cores idle when a call starts) "
                         "or None (torch's own setting)")
    return value


@contextmanager
def thread_count(value):
    """Run the block on ``value`` torch threads (see ``check_num_threads``); restore after."""
    value = check_num_threads(value)
    if value is None:
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    want = auto_threads() if value == AUTO else value
    if want != before:
        torch.set_num_threads(want)
    try:
        yield want
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
