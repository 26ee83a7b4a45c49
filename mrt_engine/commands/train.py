"""``mrt-engine train --config configs/<name>.yaml``: RL / STaR training (see docs/training.md)."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("train", help="train a policy with MRT (scalar/dense), GRPO, length penalty, STaR or MRT-STaR")
    p.add_argument("--config", required=True, help="YAML file mapping onto TrainConfig (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set algo.alpha=0.5 --set steps=20 (value parsed as YAML)")
    p.add_argument("--output-dir", help="where checkpoints and metrics go (overrides output_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    p.set_defaults(func=run)
    return p


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. --set algo.alpha=0.5")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args) -> int:
    from mrt_engine.train import TrainConfig, train

    overrides = parse_overrides(args.overrides)
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.resume:
        overrides["resume"] = True
    cfg = TrainConfig.from_yaml(args.config, overrides)
    result = train(cfg)
    print(json.dumps({"output_dir": result.output_dir, "steps": result.steps, "checkpoint": result.checkpoint,
                      "eval_before": result.eval_before, "eval_after": result.eval_after}, indent=1))
    return 0
