"""Tables in the docs generated from committed ``report.json`` files, so a table cannot disagree
with its data (``mrt-engine results``).

A published comparison keeps its ``report.json`` under ``docs/results/<name>/`` (small: the
summary, the verdicts and each run's curve, no weights). A markdown file shows it through a
block that only this module writes::

    <!-- results: docs/results/<name>/report.json -->
    (the generated tables)
    <!-- /results -->

:func:`update_blocks` rewrites every block from its file; with ``check=True`` it changes
nothing and returns the blocks whose text differs from what their file gives (the test suite
runs that over README.md and docs/).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from mrt_engine.experiments.exact_j_toy import ToyResult, format_table
from mrt_engine.experiments.gates import gates_table

from .report import markdown_table
from .rule import secondary_lines, verdict_lines
from .run import _outcome, _verdict_lines

# The demo's rows (`mrt-engine demo`): (key in the measurement, label, format); measurements
# from experiments.compare.evaluate
DEMO_ROWS = (("pass@1", "pass@1 (4 samples)", "{:.3f}"), ("tokens", "mean tokens", "{:.1f}"),
             ("episodes", "episodes per trace", "{:.2f}"), ("progress", "mean episode progress", "{:+.3f}"),
             ("j_empty", "J at empty prefix", "{:.3f}"), ("regret", "normalized regret", "{:.3f}"),
             ("split_half_r", "progress split-half r", "{:.2f}"),
             ("spearman_brown", "progress Spearman-Brown", "{:.2f}"))

BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def results_markdown(report: dict) -> str:
    """The tables of one ``report.json``: every arm (mean ± 95% t-interval half-width over
    seeds), then the decision rule's outcome and paired differences where its arms ran (and a regime's
    preregistered verdict). A report of the exact-J toy (``mrt-engine toy``) gives the toy's table, one of
    ``mrt-engine gates`` its gates."""
    if "paired_vs_grpo" in report:
        return format_table(ToyResult(**report)) + f"\n\n{len(report['runs'])} runs in {report['seconds']:.1f} s."
    if "columns" in report:  # `mrt-engine demo`: one seed, a column per policy
        return demo_markdown(report)
    if "gates" in report:  # `mrt-engine gates`: a warm start's gates, before any RL
        return gates_table(report)
    runs = report.get("runs", [])
    arms = list(report["summary"])
    seeds = sorted({r["seed"] for r in runs})
    minutes = sum(r["seconds"] for r in runs) / 60
    head = (f"{len(runs)} run{'s' * (len(runs) != 1)} ({len(arms)} arm{'s' * (len(arms) != 1)} x seed"
            f"{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))}{', --quick' if report.get('quick') else ''}), "
            f"{minutes:.1f} run-minutes; mean ± 95% t-interval half-width over seeds; "
            f"{report.get('eval_spec', {}).get('num_samples', '?')} samples per held-out problem.")
    extra = [tuple(c) for c in report.get("mechanism_columns", [])]  # a regime's mechanism metrics
    lines = [head, "", markdown_table(report["summary"], budgets=report["eval_spec"]["budgets"], extra=extra)]
    for key in ("verdict", "secondary_verdict"):
        decision = report.get(key)
        if decision and any(res.get("available") for res in decision["against"].values()):
            lines += ["", f"{decision['arm']} against {', '.join(decision['controls'])}: {_outcome(decision)}"]
            lines += _verdict_lines(decision)
    regime = report.get("regime_verdict")  # the prereg's rule (docs/prereg/doubt_bisect.md)
    if regime:
        lines += ["", *verdict_lines(regime)]
        more = secondary_lines(report.get("secondary", {}), regime["mechanism"])
        lines += ["", *more] if more else []
    return "\n".join(lines)


def demo_markdown(report: dict) -> str:
    """The demo's table (one seed: the warm start, then each algorithm) as markdown."""
    columns = report["columns"]
    lines = ["| metric | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for key, label, fmt in DEMO_ROWS:
        if all(key in c for c in columns.values()):
            lines.append(f"| {label} | " + " | ".join(fmt.format(c[key]) for c in columns.values()) + " |")
    steps = ", ".join(f"{a} {n} steps / {report['train_tokens'][a]:,} tokens" for a, n in report["steps"].items())
    return "\n".join(lines) + f"\n\nOne seed; {steps}; {report['seconds']:.0f} s in the demo."


def update_blocks(text: str, *, root: Path, check: bool = False) -> tuple[str, list[str]]:
    """``text`` with every results block regenerated from its ``report.json`` (paths relative to
    ``root``), and the paths of the blocks whose text differed."""
    stale: list[str] = []

    def fill(match: re.Match) -> str:
        path = root / match["path"]
        if not path.exists():
            raise FileNotFoundError(f"results block names {match['path']}, which does not exist under {root}")
        body = results_markdown(json.loads(path.read_text())) + "\n"
        if body != match["body"]:
            stale.append(match["path"])
        return match.group(1) + (match["body"] if check else body) + match.group(4)

    return BLOCK.sub(fill, text), stale


def update_files(files, *, root: Path, check: bool = False) -> list[str]:
    """Regenerate (or with ``check`` only compare) the results blocks of ``files``; returns
    ``"file: report.json"`` for each block that was (or would be) rewritten."""
    changed = []
    for f in files:
        f = Path(f)
        text = f.read_text()
        new, stale = update_blocks(text, root=root, check=check)
        changed += [f"{f}: {p}" for p in stale]
        if not check and new != text:
            f.write_text(new)
    return changed
