"""One benchmark row (:class:`Result`) and the ratios between rows of the same stage."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .machine import DevicePeaks

OK, UNAVAILABLE, ERROR = "ok", "unavailable", "error"


@dataclass
class Result:
    """One row of a benchmark: one method of one stage, measured ``len(times_s)`` times.

    ``role`` is ``"ours"`` or ``"baseline"``; ratios are ours-vs-each-baseline of the same
    stage. ``status`` says why a row has no numbers (``unavailable`` = a component or
    baseline is not installed or not merged yet; ``error`` = it raised), with ``reason``.
    """

    stage: str
    method: str
    role: str
    status: str = OK
    reason: str = ""
    times_s: list[float] = field(default_factory=list)
    num_tokens: int = 0          # tokens processed per call (generated, scored or trained on)
    num_episodes: int = 0        # episodes (cuts) scored, traces generated, ... per call
    peak_mem_bytes: int | None = None  # above what was resident before the call
    flops: float | None = None   # model FLOPs this method's algorithm does (theory ratio = base / ours)
    min_flops: float | None = None  # fewest FLOPs the task needs (the floor; default: flops)
    min_bytes: float | None = None  # fewest bytes the task must move
    compare: str = "auto"        # "time": ratio of medians; "auto": tokens/s when token counts differ
    workload: str = ""           # short description of the inputs
    note: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None

    @property
    def tokens_per_s(self) -> float | None:
        m = self.median_s
        return self.num_tokens / m if m and self.num_tokens else None

    @property
    def episodes_per_s(self) -> float | None:
        m = self.median_s
        return self.num_episodes / m if m and self.num_episodes else None


def ratios(results: list[Result]) -> dict[tuple[str, str], dict[str, float]]:
    """{(stage, our method): {baseline method: speed-up}}.

    Speed-up = baseline median / our median when both did the same work; when their token
    counts differ (a generator that stopped early), the ratio of tokens per second.
    """
    out: dict[tuple[str, str], dict[str, float]] = {}
    for ours in results:
        if ours.role != "ours" or ours.median_s is None:
            continue
        r = {}
        for base in results:
            if base.stage == ours.stage and base.role == "baseline" and base.median_s is not None:
                per_token = "time" not in (ours.compare, base.compare)
                if per_token and ours.num_tokens and base.num_tokens and ours.num_tokens != base.num_tokens:
                    r[base.method] = ours.tokens_per_s / base.tokens_per_s
                else:
                    r[base.method] = base.median_s / ours.median_s
        out[(ours.stage, ours.method)] = r
    return out


def theory_ratios(results: list[Result]) -> dict[tuple[str, str], dict[str, float]]:
    """{(stage, our method): {baseline: baseline FLOPs / our FLOPs}}: the speed-up that the
    work saved alone predicts (when both are compute-bound), to hold the measured one against."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for ours in results:
        if ours.role != "ours" or not ours.flops:
            continue
        out[(ours.stage, ours.method)] = {b.method: b.flops / ours.flops for b in results
                                          if b.stage == ours.stage and b.role == "baseline" and b.flops}
    return out


def floor_of(r: Result, peaks: DevicePeaks | None) -> float | None:
    if peaks is None:
        return None
    return peaks.floor_s(r.min_flops if r.min_flops is not None else r.flops, r.min_bytes)

