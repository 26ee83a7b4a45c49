"""``mrt-engine toy``: the exact-J toy (docs/toy.md). A tabular policy over productive,
redundant and answer episodes, trained with the library's GRPO, dense-MRT and scalar-MRT
credit, with J exact or estimated from k forced answers per cut; mean and 95% interval over
seeds. Writes ``toy.json`` (every run), ``toy.md`` (the table) and ``report.json`` (each run's
final metrics: the form published under docs/results/) under ``--out``."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mrt_engine.errors import MRTUserError
from mrt_engine.experiments.exact_j_toy import ARMS, CREDIT_ARMS, ToyConfig, format_table, run_toy

QUICK_SEEDS, QUICK_STEPS = 3, 10


def add_parser(sub):
    p = sub.add_parser("toy", help="exact-J toy: GRPO vs dense/scalar MRT credit, no language model",
                       description=__doc__)
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per arm (default 30; --quick: 3)")
    p.add_argument("--steps", type=int, default=None, help="policy updates per run (default: ToyConfig.steps; --quick: 10)")
    p.add_argument("--out", default="runs/toy", help="directory for toy.json and toy.md")
    p.add_argument("--aggregation", default=None, choices=("grpo", "dr_grpo", "dapo"),
                   help="policy_loss reduction (default grpo, the trainer's default)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 seeds, 10 steps (unless given)")
    p.add_argument("--credit-forms", action="store_true",
                   help="run the dense credit forms and both placebos (exact J) instead of the J-estimate arms")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import torch


    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else 30)
    if seeds < 1:
        raise MRTUserError(f"--seeds {seeds}: give at least 1 seed")
    overrides = {}
    if args.steps is not None or args.quick:
        overrides["steps"] = args.steps if args.steps is not None else QUICK_STEPS
    if args.aggregation is not None:
        overrides["aggregation"] = args.aggregation
    try:
        cfg = ToyConfig(**overrides)
    except ValueError as exc:
        raise MRTUserError(f"toy config: {exc}") from None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few dozen entries: threads only add overhead
    try:
        result = run_toy(cfg, range(seeds), arms=CREDIT_ARMS if args.credit_forms else ARMS)
    finally:
        torch.set_num_threads(threads)
    table = format_table(result)
    print(table)
    print(f"\n{len(result.runs)} runs in {result.seconds:.1f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy.json").write_text(json.dumps(asdict(result), indent=1))
    (out / "toy.md").write_text(table + f"\n\n{len(result.runs)} runs in {result.seconds:.1f} s\n")
    # the publishable form (docs/results/, `mrt-engine results`): each run's final metrics, no histories
    compact = {**asdict(result), "runs": [{k: r[k] for k in ("arm", "seed", "final")} for r in result.runs]}
    (out / "report.json").write_text(json.dumps(compact, indent=1))
    print(f"written: {out / 'toy.json'}, {out / 'toy.md'}, {out / 'report.json'}")
    return 0
