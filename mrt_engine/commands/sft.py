"""``mrt-engine sft``: supervised warm start on the synthetic tasks (multi-episode traces)."""
from __future__ import annotations

import json

from mrt_engine.commands.train import parse_overrides
from mrt_engine.config import SFTConfig, load_config
from mrt_engine.errors import user_input
from mrt_engine.trainer.sft import run_sft


def add_parser(sub):
    p = sub.add_parser("sft", help="supervised warm start on synthetic multi-episode solution traces")
    p.add_argument("--config", help="YAML file mapping onto SFTConfig (default: the demo warm start)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set steps=100")
    p.add_argument("--output-dir", help="where the checkpoint goes")
    p.add_argument("--export", help="also write compact fp16 weights to this path (e.g. the demo asset)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    overrides = parse_overrides(args.overrides)
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.export:
        overrides["export"] = args.export
    with user_input(args.config or "sft config"):
        cfg = load_config(SFTConfig, args.config, overrides)
    summary = run_sft(cfg)
    print(json.dumps(summary, indent=1))
    return 0
