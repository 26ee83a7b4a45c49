"""The one timer of every benchmark: interleaved rounds, medians.

Cases run interleaved (A B C, B C A, C A B, ...) so that load from other processes on a
shared machine hits every side alike, each ``repeats`` times, and the median is reported.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

import torch


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_interleaved(cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
                    device: str | torch.device = "cpu", on_step: Callable[[str], None] | None = None,
                    on_error: Callable[[str, BaseException], None] | None = None,
                    before: dict[str, Callable[[], object]] | None = None,
                    settle: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """Time each zero-argument callable ``repeats`` times, interleaved; returns seconds per case.

    The order rotates every round (A B C, B C A, C A B) so that no case always runs right
    after the same neighbour (cache and clock-boost effects). ``warmup`` untimed rounds go
    first (compilation, allocator growth, lazy imports). A case that raises is dropped from
    later rounds and reported through ``on_error`` (raised when there is none); the others
    carry on. ``before[name]``, when given, runs untimed before each call of that case (e.g.
    to empty a prefix cache, so that a repeat does not find the previous round's work cached).
    ``settle``, when given, runs untimed before every call after that: it waits out work a
    previous case left running in another process (a vLLM engine core winding down).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    failed: set[str] = set()
    for rnd in range(warmup + repeats):
        shift = rnd % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if name in failed:
                continue
            try:
                if before and name in before:
                    before[name]()
                if settle is not None:
                    settle()
                synchronize(device)
                t0 = time.perf_counter()
                cases[name]()
                synchronize(device)
                dt = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
                failed.add(name)
                if on_error is None:
                    raise
                on_error(name, exc)
                continue
            if rnd >= warmup:
                times[name].append(dt)
            if on_step is not None:
                on_step(name)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """{case: median seconds} of what :func:`run_interleaved` returned."""
    return {name: statistics.median(ts) for name, ts in times.items() if ts}


def best_time(fn: Callable[[], object], device: torch.device | str, seconds: float) -> float:
    """Fastest of as many calls as fit in ``seconds`` (after one untimed call): a peak, not a median."""
    fn()
    best, deadline = math.inf, time.perf_counter() + seconds
    while True:
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            return best


def cuda_graph_time(fn: Callable[[], object], *, replays: int = 20) -> float | None:
    """Median seconds of one replay of ``fn`` captured in a CUDA graph: the device time of its
    kernels without Python or launch overhead (what an engine that replays graphs pays). None
    when ``fn`` cannot be captured (a host sync or a CPU tensor inside)."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up off the capture: compilation, allocator pools
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    except Exception:  # noqa: BLE001 - not capturable: the caller reports call time only
        torch.cuda.synchronize()
        return None
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)
