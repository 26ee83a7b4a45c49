"""``mrt-engine train --config configs/<name>.yaml``: RL / STaR training (see docs/training.md).

Nothing is silent about an existing run: ``--resume`` needs a checkpoint in the output
directory (``--resume=auto``: resume if there is one, else start fresh), and a fresh run
refuses a non-empty output directory unless ``--overwrite`` (which deletes the old run's
checkpoints, metrics and TensorBoard logs first).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from mrt_engine.errors import MRTUserError, user_input
from mrt_engine.trainer.checkpoint import latest_checkpoint
from mrt_engine.trainer import TrainConfig, Trainer

RUN_FILES = ("checkpoints", "metrics.jsonl", "tensorboard")  # what a training run writes


def add_parser(sub):
    p = sub.add_parser("train", help="train a policy with MRT (scalar/dense), GRPO, length penalty, STaR or MRT-STaR")
    p.add_argument("--config", required=True, help="YAML file mapping onto TrainConfig (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set algo.alpha=0.5 --set steps=20 (value parsed as YAML)")
    p.add_argument("--output-dir", help="where checkpoints and metrics go (overrides output_dir)")
    p.add_argument("--resume", nargs="?", const="required", choices=("required", "auto"), default=None,
                   help="continue from the latest checkpoint in output_dir (an error if there is none); "
                        "--resume=auto starts fresh when there is none")
    p.add_argument("--overwrite", action="store_true",
                   help="train into a non-empty output_dir, deleting its old checkpoints, metrics and logs")
    p.set_defaults(func=run)
    return p


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise MRTUserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set algo.alpha=0.5")
        key, value = item.split("=", 1)
        with user_input(f"--set {item}"):
            out[key.strip()] = yaml.safe_load(value)
    return out


def check_output_dir(output_dir: str | Path, *, resume: str | None, overwrite: bool) -> None:
    """Refuse to resume from nothing or to write over an existing run (see the module docstring)."""

    out = Path(output_dir)
    if resume is not None and overwrite:
        raise MRTUserError("--resume and --overwrite contradict each other; pick one")
    if resume is not None:
        if resume == "required" and latest_checkpoint(out) is None:
            raise MRTUserError(
                f"--resume: no checkpoint in {out / 'checkpoints'}; check --output-dir, or pass --resume=auto "
                "to start fresh when there is none")
        return
    if out.is_file():
        raise MRTUserError(f"output_dir {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            found = sorted(p.name for p in out.iterdir())[:5]
            raise MRTUserError(
                f"output_dir {out} is not empty (holds {found}); pass --resume to continue that run, "
                "--overwrite to replace it, or choose another --output-dir")
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def run(args) -> int:
    overrides = parse_overrides(args.overrides)
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.resume is not None:
        overrides["resume"] = True
    with user_input(args.config):
        cfg = TrainConfig.from_yaml(args.config, overrides)
    # `resume: true` in the YAML asks for a checkpoint as --resume does
    check_output_dir(cfg.output_dir, resume=args.resume or ("required" if cfg.resume else None),
                     overwrite=args.overwrite)
    with user_input(f"{args.config}: model or data", kinds=(OSError,)):
        trainer = Trainer(cfg)  # builds the model and data: a missing path is the user's to fix
    result = trainer.run()
    print(json.dumps({"output_dir": result.output_dir, "steps": result.steps, "checkpoint": result.checkpoint,
                      "eval_before": result.eval_before, "eval_after": result.eval_after}, indent=1))
    return 0
