"""``mrt-engine results``: regenerate the tables of published comparisons in the docs from their
committed ``report.json`` (docs/compare.md, "Publishing a result")."""
from __future__ import annotations

import sys
from pathlib import Path

from mrt_engine.errors import MRTUserError
from mrt_engine.experiments.compare.publish import update_files


def add_parser(sub):
    p = sub.add_parser("results", help="regenerate the docs' result tables from docs/results/*/report.json",
                       description=__doc__)
    p.add_argument("files", nargs="*", help="markdown files (default: README.md and docs/*.md under --root)")
    p.add_argument("--root", default=".", help="repository root the blocks' paths are relative to (default .)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its data")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    root = Path(args.root)
    files = args.files or [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    missing = [str(f) for f in files if not Path(f).exists()]
    if missing:
        raise MRTUserError(f"no such file: {', '.join(missing)}")
    try:
        changed = update_files(files, root=root, check=args.check)
    except FileNotFoundError as exc:
        raise MRTUserError(str(exc)) from None
    for line in changed:
        print(("stale: " if args.check else "rewritten: ") + line)
    if args.check and changed:
        print("run `mrt-engine results` to regenerate them", file=sys.stderr)
        return 1
    return 0
