"""``mrt-engine compare``: MRT against GRPO, a placebo and baselines over several seeds (docs/compare.md).

``--regime`` picks the task and its preregistered rule (``mrt_engine/experiments/regimes.py``):
``digit`` (the default) is today's comparison; ``doubt`` and ``bisect`` are the regimes built for
progress credit, judged by docs/prereg/doubt_bisect.md."""
from __future__ import annotations

from mrt_engine.experiments.compare.arms import ARMS
from mrt_engine.commands.train import parse_overrides
from mrt_engine.experiments.compare import run_compare
from mrt_engine.experiments.regimes import REGIMES


def _regimes_help() -> str:
    return "; ".join(f"{r.name}: preset {r.preset}, arms {' '.join(r.arms)}, seeds {r.first_seed}-"
                     f"{r.first_seed + r.seeds - 1}, out {r.output}" for r in REGIMES.values())


def add_parser(sub):
    p = sub.add_parser("compare", help="MRT vs GRPO vs controls: several seeds per arm, equal token budgets, "
                                       "intervals, the prior decision rule, a report and a PNG",
                       description=__doc__)
    p.add_argument("--regime", default="digit", choices=sorted(REGIMES),
                   help="task, preset, measurement and preregistered rule (default digit: today's comparison). "
                        + _regimes_help())
    p.add_argument("--out", default=None,
                   help="output folder, a rerun reuses finished arms (default: runs/compare for digit, "
                        "runs/compare_<regime> otherwise)")
    p.add_argument("--arms", nargs="+", choices=sorted(ARMS),
                   help="arms to run (default: the regime's; digit: the six of its decision rule, doubt/bisect: "
                        "the primary arm and its three controls)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per arm (default: the regime's, 3 for digit, 10 for doubt/bisect; --quick: 2 there)")
    p.add_argument("--first-seed", type=int, default=None,
                   help="first seed (default: the regime's, 0 for digit, 100 for doubt/bisect; --quick: 0): a "
                        "hypothesis from one run is tested on seeds it did not use")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny settings: checks the machinery in about a minute")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the regime's shared config (mrt_engine/config/presets/compare.yaml for "
                        "digit, compare_<regime>.yaml otherwise), e.g. optim.lr=2e-4")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress line on stderr (default: shown on a terminal)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    run_compare(out_dir=args.out, arms=args.arms, seeds=args.seeds, first_seed=args.first_seed, jobs=args.jobs,
                quick=args.quick, overrides=parse_overrides(args.set), progress=args.progress, regime=args.regime)
    return 0
