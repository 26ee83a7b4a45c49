"""``mrt-engine compare``: MRT against GRPO, a placebo and baselines over several seeds (docs/compare.md)."""
from __future__ import annotations

from mrt_engine.experiments.compare.arms import ARMS, DEFAULT_ARMS
from mrt_engine.commands.train import parse_overrides
from mrt_engine.experiments.compare import run_compare


def add_parser(sub):
    p = sub.add_parser("compare", help="MRT vs GRPO vs controls: several seeds per arm, equal token budgets, "
                                       "intervals, the prior decision rule, a report and a PNG")
    p.add_argument("--out", default="runs/compare", help="output folder (a rerun reuses finished arms)")
    p.add_argument("--arms", nargs="+", choices=sorted(ARMS),
                   help=f"arms to run (default: {' '.join(DEFAULT_ARMS)})")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="first seed (default 0): a hypothesis from one run is tested on seeds it did not use")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny settings: checks the machinery in about a minute")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the shared config (mrt_engine/config/presets/compare.yaml), e.g. optim.lr=2e-4")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress line on stderr (default: shown on a terminal)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    run_compare(out_dir=args.out, arms=args.arms, seeds=args.seeds, first_seed=args.first_seed, jobs=args.jobs, quick=args.quick,
                overrides=parse_overrides(args.set), progress=args.progress)
    return 0
