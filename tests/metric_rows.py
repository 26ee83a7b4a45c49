"""Comparing the logged metrics of two runs that should agree (a resumed run and an
uninterrupted one, two packings, two launchers).

A metric with no value this step (reliability over fewer than 3 episodes, say) is NaN in the
in-memory history and null (None) in the JSONL, so None and NaN equal each other and nothing
else; numbers agree within ``rel``/``abs``; anything else compares with ``==``. Wall-clock
metrics are left out: they differ run to run.
"""
from __future__ import annotations

import math

import pytest

WALL_CLOCK = ("tokens_per_s", "step_time_s")  # and every "time/..." key


def is_wall_clock(key: str) -> bool:
    return key in WALL_CLOCK or key.startswith("time/")


def _no_value(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def same_value(a, b, *, rel: float, abs: float) -> bool:
    if _no_value(a) or _no_value(b):
        return _no_value(a) and _no_value(b)
    if _is_number(a) and _is_number(b):
        return b == pytest.approx(a, rel=rel, abs=abs)
    return a == b


def metric_mismatches(ref: dict, got: dict, *, rel: float = 0.0, abs: float = 0.0) -> list[str]:
    """``"key: ref vs got"`` for every metric (wall clock aside) that differs or is in one row only."""
    keys = sorted({k for k in (*ref, *got) if not is_wall_clock(k)})
    out = []
    for k in keys:
        if k not in ref or k not in got:
            out.append(f"{k}: only in the {'first' if k in ref else 'second'} row")
        elif not same_value(ref[k], got[k], rel=rel, abs=abs):
            out.append(f"{k}: {ref[k]!r} vs {got[k]!r}")
    return out


def assert_same_metrics(ref: dict, got: dict, *, rel: float = 0.0, abs: float = 0.0, where: str = "") -> None:
    bad = metric_mismatches(ref, got, rel=rel, abs=abs)
    assert not bad, f"{where}: " + "; ".join(bad)
