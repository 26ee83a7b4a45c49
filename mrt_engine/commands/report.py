"""``mrt-engine report``: a progress.jsonl as one self-contained HTML page (the trace viewer).

Per trace: the problem, the episodes coloured by their progress, J over tokens and over
episodes, the normalized regret at token budgets and the outcome; an index table sortable
by any column. No network, no external assets (docs/report.md).
"""
from __future__ import annotations

import sys

from mrt_engine.report import parse_budgets, write_report


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="HTML trace viewer for progress.jsonl", description=__doc__.split("\n\n")[0])
    p.add_argument("--progress", required=True, help="progress.jsonl from `mrt-engine progress`")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--budgets", default=None,
                   help="comma-separated token budgets (default: 4096,8192,12288,16384 when the longest "
                        "trace reaches 4096 tokens, else quarters of the longest trace)")
    p.add_argument("--title", default=None, help="page title (default: from the file name)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        budgets = parse_budgets(args.budgets) if args.budgets else None
        report = write_report(args.progress, args.out, budgets=budgets, title=args.title)
    except ValueError as exc:  # ReportInputError and bad --budgets: one line, no traceback
        print(f"mrt-engine report: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mrt-engine report: error: cannot write {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    means = ", ".join(f"{b:g}: {v:.4f}" for b, v in report.mean_regret.items())
    print(f"wrote {args.out}: {report.num_traces} traces, {report.num_episodes} episodes; "
          f"mean normalized regret {means}", file=sys.stderr)
    return 0
