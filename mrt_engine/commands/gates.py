"""``mrt-engine gates``: the warm-start gates of a regime, measured before any RL
(docs/prereg/doubt_bisect.md, "Warm-start gates"; docs/compare.md, "Running a regime").

Loads the regime's warm start through a trainer built from its compare preset (the comparison's
own held-out problems), samples, estimates J at every cut, checks the six gates, prints a table
(gate, measured, threshold, pass/FAIL), writes ``report.json`` and exits 1 when a gate fails."""
from __future__ import annotations

from mrt_engine.commands.train import parse_overrides
from mrt_engine.errors import user_input
from mrt_engine.experiments.gates import check_measure_args, gate_trainer, gates_table, measure_gates, write_gates_report
from mrt_engine.experiments.regimes import REGIMES, get_regime

GATED = sorted(name for name, r in REGIMES.items() if r.j_profile is not None)


def add_parser(sub):
    p = sub.add_parser("gates", help="check a regime's warm start against its preregistered gates before any RL",
                       description=__doc__)
    p.add_argument("--regime", required=True, choices=GATED, help="the regime whose warm start is checked")
    p.add_argument("--num-eval", type=int, default=None,
                   help="held-out problems (default: the preset's data.num_eval, the comparison's own)")
    p.add_argument("--samples", type=int, default=4, help="completions per held-out problem (default 4, the prereg's)")
    p.add_argument("--branches", type=int, default=8, help="forced answers per cut (default 8, the prereg's)")
    p.add_argument("--seed", type=int, default=20_000, help="sampling seed (default 20000)")
    p.add_argument("--out", default=None, help="folder for report.json (default docs/results/gates_<regime>/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the regime's compare preset (the gates then measure another setting: "
                        "say so where you quote them)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    regime = get_regime(args.regime)
    overrides = parse_overrides(args.set)
    with user_input(f"mrt-engine gates --regime {args.regime}"):
        check_measure_args(args.samples, args.branches)
        trainer = gate_trainer(regime, num_eval=args.num_eval, overrides=overrides, work_dir=f"runs/gates_{regime.name}")
    report = measure_gates(regime, trainer, num_samples=args.samples, num_branches=args.branches, seed=args.seed)
    report["overrides"] = overrides
    path = write_gates_report(report, args.out or f"docs/results/gates_{regime.name}")
    print(gates_table(report))
    print(f"report: {path}")
    return 0 if report["passed"] else 1
