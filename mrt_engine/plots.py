"""Plots of progress and regret (matplotlib, Agg backend, PNG). Pure functions: data in, file out."""
from __future__ import annotations

from typing import Sequence

from mrt_engine.progress.result import token_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(results: Sequence, path: str, *, regret: dict[float, float] | None = None,
                  max_traces: int = 20, title: str | None = None) -> str:
    """One PNG: J vs episode and J vs tokens per trace (up to ``max_traces``), and, when
    ``regret`` ({budget: mean normalized regret}) is given, regret vs budget.

    ``results`` are ``ProgressResult``s (or anything with ``j``, ``tokens_at_cut``, ``j_stderr``).
    """

    if not results:
        raise ValueError("plot_progress: no results to plot")
    plt = _pyplot()
    panels = 3 if regret else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    ax_ep, ax_tok = axes[0][0], axes[0][1]
    for i, r in enumerate(list(results)[:max_traces]):
        xs = list(range(len(r.j)))
        err = [0.0 if e is None or e != e else e for e in r.j_stderr]
        line, = ax_ep.plot(xs, r.j, marker="o", ms=3, lw=1, label=f"trace {i}")
        if any(err):
            ax_ep.fill_between(xs, [j - e for j, e in zip(r.j, err)], [j + e for j, e in zip(r.j, err)],
                               color=line.get_color(), alpha=0.15)
        tokens, j = token_curve(r)
        ax_tok.plot(tokens, j, marker="o", ms=3, lw=1, color=line.get_color())
    ax_ep.set_xlabel("episodes completed (0 = empty prefix)")
    ax_ep.set_ylabel("J (success under forced termination)")
    ax_ep.set_title("J vs episode")
    ax_tok.set_xlabel("tokens at cut")
    ax_tok.set_title("J vs tokens")
    for ax in (ax_ep, ax_tok):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    if len(results) <= 10:
        ax_ep.legend(fontsize=7)
    if regret:
        ax = axes[0][2]
        budgets = sorted(regret)
        ax.plot(budgets, [regret[b] for b in budgets], marker="s")
        ax.set_xlabel("token budget C0")
        ax.set_ylabel("normalized regret")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("regret vs budget")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
