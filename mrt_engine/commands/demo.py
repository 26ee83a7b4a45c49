"""``mrt-engine demo``: MRT end to end on CPU in a few minutes (see docs/training.md)."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("demo", help="warm-started small model -> short MRT run -> before/after table and PNG")
    p.add_argument("--output-dir", default="runs/demo", help="where metrics, checkpoints and the PNG go")
    p.add_argument("--steps", type=int, help="MRT steps (default: the demo config's)")
    p.add_argument("--algo", help="algorithm (default mrt_dense); e.g. grpo for the baseline")
    p.add_argument("--from-scratch", action="store_true",
                   help="run the SFT warm start first instead of loading the shipped weights (adds minutes)")
    p.add_argument("--sft-steps", type=int, help="SFT steps with --from-scratch")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from mrt_engine.rl.demo import run_demo

    run_demo(output_dir=args.output_dir, steps=args.steps, algo=args.algo, from_scratch=args.from_scratch,
             sft_steps=args.sft_steps)
    return 0
