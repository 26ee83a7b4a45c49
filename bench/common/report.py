"""Reports: the CSV, the plain-text and Markdown tables, a progress bar.

Nothing here imports matplotlib or tqdm at module load (``plot.py`` draws the PNG).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from .machine import DevicePeaks
from .results import OK, Result, floor_of, ratios, theory_ratios

CSV_FIELDS = ("stage", "method", "role", "status", "reason", "median_s", "num_repeats", "tokens_per_s",
              "episodes_per_s", "speedup_vs", "flop_ratio_vs", "peak_mem_mb", "flops", "min_flops", "min_bytes", "floor_s",
              "median_over_floor", "num_tokens", "num_episodes", "workload", "note", "times_s")
TABLE_HEADER = ("stage", "method", "median s", "tokens/s", "episodes/s", "speed-up vs baselines (FLOP ratio)",
                "peak MB", "x floor")


def result_rows(results: list[Result], peaks: DevicePeaks | None) -> list[dict]:
    rat, theo = ratios(results), theory_ratios(results)
    rows = []
    for r in results:
        floor = floor_of(r, peaks)
        sp = rat.get((r.stage, r.method), {})
        th = theo.get((r.stage, r.method), {})
        rows.append({
            "stage": r.stage, "method": r.method, "role": r.role, "status": r.status, "reason": r.reason,
            "median_s": _fmt(r.median_s, 6), "num_repeats": len(r.times_s),
            "tokens_per_s": _fmt(r.tokens_per_s, 2), "episodes_per_s": _fmt(r.episodes_per_s, 3),
            "speedup_vs": ";".join(f"{k}={v:.3f}" for k, v in sp.items()),
            "flop_ratio_vs": ";".join(f"{k}={v:.3f}" for k, v in th.items()),
            "peak_mem_mb": _fmt(None if r.peak_mem_bytes is None else r.peak_mem_bytes / 2**20, 1),
            "flops": _fmt(r.flops, 0, sci=True), "min_flops": _fmt(r.min_flops, 0, sci=True),
            "min_bytes": _fmt(r.min_bytes, 0, sci=True), "floor_s": _fmt(floor, 6),
            "median_over_floor": _fmt(r.median_s / floor if (floor and r.median_s) else None, 2),
            "num_tokens": r.num_tokens, "num_episodes": r.num_episodes, "workload": r.workload,
            "note": r.note, "times_s": " ".join(f"{t:.4f}" for t in r.times_s),
        })
    return rows


def _fmt(x, digits: int, sci: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:.{max(digits, 3)}e}" if sci else f"{x:.{digits}f}"


def write_csv(path: str | Path, results: list[Result], meta: dict, peaks: DevicePeaks | None) -> Path:
    """One row per (stage, method); the machine/version/dtype/device columns repeat on each
    row so that a single row stays meaningful when copied out of the file."""
    rows = [{**row, **meta} for row in result_rows(results, peaks)]
    return write_rows_csv(path, rows, list(CSV_FIELDS) + list(meta))


def write_rows_csv(path: str | Path, rows: list[dict], columns: list[str]) -> Path:
    """Rows of dicts as CSV, ``columns`` in order (missing keys empty, extra keys dropped)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def format_columns(header: Iterable[str], lines: list[tuple[str, ...]], *, sep: str = " | ",
                   rule: bool = True, pad_last: bool = False) -> str:
    """Text lines padded into columns (the last one unpadded unless ``pad_last``: it may be long)."""
    header = tuple(header)
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    if not pad_last:
        widths[-1] = len(header[-1])
    out = [sep.join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    if rule:
        out.append(sep.replace(" ", "-").join("-" * w for w in widths))
    out += [sep.join(c.ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines]
    return "\n".join(out)


def _cells(r: Result, results: list[Result], peaks: DevicePeaks | None, *, bold: bool) -> tuple[str, ...]:
    """The cells of one row under :data:`TABLE_HEADER`."""
    floor = floor_of(r, peaks)
    return (r.stage, r.method, _num(r.median_s, 3), _num(r.tokens_per_s, 1), _num(r.episodes_per_s, 2),
            _speedups(r, results, bold=bold),
            _num(None if r.peak_mem_bytes is None else r.peak_mem_bytes / 2**20, 0),
            _num(r.median_s / floor if (floor and r.median_s) else None, 1))


def format_table(results: list[Result], peaks: DevicePeaks | None = None) -> str:
    """A plain-text table: one line per (stage, method), ratios against every baseline."""
    lines = [_cells(r, results, peaks, bold=False)
             + (r.status if r.status == OK else f"{r.status}: {_one_line(r.reason)}",) for r in results]
    return format_columns(TABLE_HEADER + ("status",), lines)


def format_markdown(results: list[Result], peaks: DevicePeaks | None = None) -> str:
    """The same table as Markdown, for docs/benchmarks.md and the README."""
    out = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for r in results:
        if r.status != OK:
            out.append(f"| {r.stage} | {r.method} | {r.status}: {_one_line(r.reason).replace('|', '/')} | | | | | |")
        else:
            out.append("| " + " | ".join(_cells(r, results, peaks, bold=True)) + " |")
    return "\n".join(out)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _speedups(r: Result, results: list[Result], bold: bool = False) -> str:
    """"2.31x naive (FLOP 6.8x), 0.90x vLLM" for our rows; "baseline" for the others."""
    if r.role == "baseline":
        return "baseline"
    sp = ratios(results).get((r.stage, r.method), {})
    th = theory_ratios(results).get((r.stage, r.method), {})
    parts = []
    for k, v in sp.items():
        num = f"**{v:.2f}x**" if bold else f"{v:.2f}x"
        parts.append(f"{num} {k}" + (f" (FLOP {th[k]:.1f}x)" if k in th and abs(th[k] - 1) > 0.05 else ""))
    return ", ".join(parts) or "-"


def _num(x, digits: int) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr (a no-op object when tqdm is missing or disabled)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; keep the benchmark usable without it
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, leave=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_description(self, desc: str) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def write(self, s: str) -> None:
        print(s)
    def close(self) -> None: ...
