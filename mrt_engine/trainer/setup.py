"""Building what a run needs from its config: model, tokenizer, problems."""
from __future__ import annotations

import torch

from mrt_engine.models import load_model
from mrt_engine.trainer.checkpoint import load_weights
from mrt_engine import tasks


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(mcfg, *, seed: int = 0):
    """``(model, tokenizer)`` in train mode, fp32 master weights unless ``dtype`` says otherwise."""

    device = resolve_device(mcfg.device)
    model, tok = load_model(mcfg.name, dtype=mcfg.dtype, device=str(device), seed=seed,
                            tiny_config=mcfg.tiny_config)
    if mcfg.init_checkpoint:
        load_weights(model, mcfg.init_checkpoint)
    if mcfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    return model, tok


def build_problems(dcfg):
    """(train, eval) problem lists; synthetic eval problems use a different seed than train."""

    if dcfg.path:
        problems = tasks.load_problems(dcfg.path, problem_field=dcfg.problem_field, answer_field=dcfg.answer_field)
        if len(problems) < dcfg.num_eval + 1:
            raise ValueError(f"{dcfg.path} has {len(problems)} problems; need more than data.num_eval={dcfg.num_eval}")
        return problems[dcfg.num_eval:][:dcfg.num_train], problems[:dcfg.num_eval]
    train = tasks.make_problems(dcfg.task, dcfg.num_train, seed=dcfg.seed, difficulty=dcfg.difficulty)
    held = tasks.make_problems(dcfg.task, dcfg.num_eval, seed=dcfg.seed + 10_007,
                               difficulty=dcfg.difficulty) if dcfg.num_eval else []
    seen = {p.problem for p in train}
    return train, [p for p in held if p.problem not in seen]
