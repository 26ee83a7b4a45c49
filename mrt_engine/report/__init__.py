"""Trace viewer: ``progress.jsonl`` -> one self-contained HTML page (``mrt-engine report``).

``write_report(progress_path, out_path, budgets=None) -> Report`` reads and checks the records
(``read_progress``; one-line ``ReportInputError`` naming file, line and field), computes the
normalized regret of every trace at the budgets (``mrt_engine.metrics.normalized_regret``
over ``mrt_engine.progress.token_curve``) and writes the page (``build_report``).
"""
from __future__ import annotations

import os

from .load import ReportInputError, TraceRecord, check_record, read_progress
from .page import Report, build_report
from .summary import PAPER_BUDGETS, choose_budgets, parse_budgets


def write_report(progress_path: str, out_path: str, *, budgets=None, title: str | None = None) -> Report:
    """Read ``progress_path``, write the viewer page to ``out_path`` (UTF-8), return the ``Report``."""
    records = read_progress(progress_path)
    report = build_report(records, budgets=budgets, source=os.path.basename(progress_path),
                          title=title or f"MRT trace viewer: {os.path.basename(progress_path)}")
    # A lone surrogate (a JSON "\\ud800" escape in a trace) cannot be UTF-8: show it as text.
    with open(out_path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(report.html)
    return report


__all__ = ["PAPER_BUDGETS", "Report", "ReportInputError", "TraceRecord", "build_report", "check_record",
           "choose_budgets", "parse_budgets", "read_progress", "write_report"]
