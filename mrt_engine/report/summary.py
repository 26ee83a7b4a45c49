"""Numbers the viewer shows: token budgets, per-trace regret and progress, the colour scale."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from mrt_engine import metrics
from mrt_engine.progress.result import token_curve

from .load import TraceRecord

PAPER_BUDGETS = (4096.0, 8192.0, 12288.0, 16384.0)  # the authors' budgets (mrt.md section 7)
BUDGET_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@dataclass
class TraceSummary:
    """What the index table shows for one trace."""

    tokens: list[float]              # token_curve x axis (non-decreasing)
    j: list[float]
    regret: dict[float, float]       # {budget: normalized regret}
    mean_progress: float | None      # None for an empty trace
    num_positive: int                # episodes with progress > 0


def nice_ceil(x: float, *, digits: int = 2) -> float:
    """``x`` rounded up to ``digits`` significant figures (237.4 -> 240): readable budgets."""
    if x <= 0:
        raise ValueError(f"nice_ceil needs x > 0, got {x}")
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.ceil(x / step - 1e-9) * step


def choose_budgets(records: Sequence[TraceRecord]) -> list[float]:
    """The paper's 4K/8K/12K/16K when the longest trace reaches 4K tokens; otherwise a quarter,
    half, three quarters and all of the longest trace (rounded up), so short traces (tests,
    toy tasks) get budgets where their J curves still change."""
    longest = max(token_curve(r.result)[0][-1] for r in records)
    if longest >= PAPER_BUDGETS[0] or longest <= 0:
        return list(PAPER_BUDGETS)
    return sorted({nice_ceil(longest * f) for f in BUDGET_FRACTIONS})


def parse_budgets(text: str) -> list[float]:
    """``"4096,8192"`` -> [4096.0, 8192.0]; ValueError naming the bad item."""
    budgets = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--budgets: {item.strip()!r} is not a number; give comma-separated "
                             "token budgets such as 4096,8192") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--budgets: {item.strip()!r} must be a positive number of tokens")
        budgets.append(value)
    return sorted(set(budgets))


def summarize_trace(record: TraceRecord, budgets: Sequence[float]) -> TraceSummary:
    tokens, j = token_curve(record.result)
    progress = record.result.progress
    return TraceSummary(
        tokens=tokens,
        j=j,
        regret={b: metrics.normalized_regret(tokens, j, b) for b in budgets},
        mean_progress=sum(progress) / len(progress) if progress else None,
        num_positive=sum(p > 0 for p in progress),
    )


def mean_regret(summaries: Sequence[TraceSummary], budgets: Sequence[float]) -> dict[float, float]:
    """Mean over traces per budget; the same numbers ``mrt-engine regret`` prints."""
    return metrics.mean_normalized_regret([(s.tokens, s.j) for s in summaries], budgets)


def progress_scale(records: Sequence[TraceRecord]) -> float:
    """Largest |progress| over all episodes: the colour scale's end, so colours compare across
    traces (score-mode J can be tiny, a fixed [-1, 1] scale would paint every episode white)."""
    top = max((abs(p) for r in records for p in r.result.progress), default=0.0)
    return top if top > 0 else 1.0


def budget_label(budget: float) -> str:
    """4096 -> '4K', 12288 -> '12K', 240 -> '240'."""
    if budget >= 1024 and budget % 1024 == 0:
        return f"{int(budget) // 1024}K"
    return f"{budget:g}"
