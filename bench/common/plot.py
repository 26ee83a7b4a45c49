"""The PNG reports: speed-up bars (log scale, growing from 1x), peak memory, step shares.

matplotlib is imported inside the functions: the vLLM venv and minimal installs may lack it.
"""
from __future__ import annotations

from pathlib import Path

from .results import OK, Result, ratios

_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_bars(ax, labels: list[str], values: list[float], *, xlabel: str, title: str) -> None:
    """Horizontal bars from 1x (no change) towards each ratio: right = faster, left = slower."""
    if values:
        ypos = list(range(len(values)))
        colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
        ax.barh(ypos, [v - 1.0 for v in values], left=1.0, color=colors)
        ax.set_yticks(ypos, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        lo, hi = min(0.5, min(values) / 1.5), max(2.0, max(values) * 2.5)
        ax.set_xlim(lo, hi)
        ticks = [t for t in _TICKS if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.axvline(1.0, color="black", lw=0.8)
        for y, v in zip(ypos, values):
            ax.text(v, y, f" {v:.2f}x", va="center", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no ratio measured (components unavailable)", ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)


def _value_bars(ax, labels, values, *, color: str, xlabel: str, title: str, fmt: str | None, fontsize: int) -> None:
    ypos = list(range(len(values)))
    ax.barh(ypos, values, color=color)
    ax.set_yticks(ypos, labels, fontsize=fontsize)
    ax.invert_yaxis()
    if fmt:
        for y, v in zip(ypos, values):
            ax.text(v, y, format(v, fmt), va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)


def plot_png(path: str | Path, results: list[Result], *, title: str, shares: dict[str, float] | None = None) -> Path:
    """Bar chart: speed-up of each of our methods over each baseline, per stage (log scale),
    plus, when given, the share of an MRT step's time each stage takes."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bars = [(f"{stage}\n{ours} vs {base}", v) for (stage, ours), r in ratios(results).items() for base, v in r.items()]
    mem = [(f"{r.stage}\n{r.method}", r.peak_mem_bytes / 2**20) for r in results
           if r.peak_mem_bytes is not None and r.status == OK]
    ncols = 1 + bool(shares) + bool(mem)
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 0.55 * max(len(bars), len(mem), 4) + 1.5),
                             squeeze=False)
    labels, values = (list(x) for x in zip(*bars)) if bars else ([], [])
    speedup_bars(axes[0][0], labels, values, xlabel="speed-up (baseline median / ours), log scale",
                 title="ours vs baselines, same run, medians")
    if mem:
        labels, values = zip(*mem)
        _value_bars(axes[0][1], labels, values, color="tab:purple", xlabel="peak memory above resident, MB",
                    title="peak memory of one call", fmt=" ,.0f", fontsize=7)
    if shares:
        names, vals = zip(*shares.items())
        _value_bars(axes[0][ncols - 1], names, [100 * v for v in vals], color="tab:blue",
                    xlabel="% of one MRT training step", title="where an MRT step spends its time", fmt=None,
                    fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, plt, path, dpi=110)


def plot_speedups(path: str | Path, labels: list[str], values: list[float], *, xlabel: str, title: str) -> Path:
    """One panel of speed-up bars (the kernel benchmark's chart)."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(values) + 1))
    speedup_bars(ax, labels, values, xlabel=xlabel, title=title)
    return _save(fig, plt, path, dpi=100)


def _save(fig, plt, path: Path, *, dpi: int) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
