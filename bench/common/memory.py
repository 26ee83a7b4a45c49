"""The one peak-memory probe of every benchmark.

CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated just before the call.
CPU (Linux): the resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs)
above the resident set just before the call, measured in a forked child. The child tunes
glibc so that the mark tracks live tensors; that tuning cannot be undone in a process (a
fixed mmap threshold switches glibc's dynamic threshold off for good), so it must not touch
the benchmark's own process, where it would change the allocator for every later stage.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import traceback
import warnings
from typing import Callable

import torch

CHILD_TIMEOUT_S = 1800


def peak_memory(fn: Callable[[], object], device: str | torch.device) -> int | None:
    """Peak memory of one call of ``fn`` above what was in use just before, in bytes.

    ``fn`` also runs once in this process, untimed (on CPU after the child measured it), so
    that the caller finds the same state after the probe on every device: lazy imports done,
    caches warm, gradients written. Returns None where neither probe is available.
    """
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    peak = _peak_rss_in_child(fn)
    fn()
    return peak


def _peak_rss_in_child(fn: Callable[[], object]) -> int | None:
    """``fn``'s resident-set peak in a forked child (one torch thread), or None (no fork or /proc)."""
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/clear_refs"):
        return None
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: measure, answer, leave without running the parent's cleanup
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, str(_measure_here(fn)).encode())
            code = 0
        except BaseException:  # noqa: BLE001 - report, then exit the child whatever happened
            traceback.print_exc(file=sys.stderr)
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], CHILD_TIMEOUT_S)
        answer = os.read(read_end, 64) if ready else b""
        if not answer:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(read_end)
    return int(answer) if answer and int(answer) >= 0 else None


def _measure_here(fn: Callable[[], object]) -> int:
    """Run in the forked child only: tune glibc, return ``fn``'s RSS peak (-1: not readable)."""
    # GNU OpenMP's thread pool does not survive fork: a parallel region in the child hangs.
    torch.set_num_threads(1)
    try:
        libc = ctypes.CDLL("libc.so.6")
        # Hand big frees back to the OS (by default glibc raises its mmap threshold after
        # each large free and keeps freed heap resident, where a later peak hides), and give
        # back what the parent's heap holds free now, so that "before" is live memory.
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before, file_before = _proc_status_bytes("VmRSS"), _proc_status_bytes("RssFile")
    _in_fresh_thread(fn)
    peak, file_after = _proc_status_bytes("VmHWM"), _proc_status_bytes("RssFile")
    if before is None or peak is None:
        return -1
    # fork does not copy the page tables of file mappings (library code): the child faults
    # in, as new resident pages, the code the parent already had resident. Not fn's memory.
    paged_in = max(0, file_after - file_before) if file_before is not None and file_after is not None else 0
    return max(0, peak - before - paged_in)


def _in_fresh_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a new thread: glibc gives it an arena other than the main one, whose
    free chunks (the parent's heap, inherited) would otherwise serve ``fn``'s allocations
    and page back in, as new resident memory, chunks that ``fn`` never holds at once."""
    failure: list[BaseException] = []
    grad_enabled = torch.is_grad_enabled()  # thread-local in torch: carry the caller's over

    def run():
        try:
            with torch.set_grad_enabled(grad_enabled):
                fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
