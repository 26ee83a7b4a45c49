"""Building what a run needs from its config: model, tokenizer, problems."""
from __future__ import annotations

import torch

from mrt_engine.config import SFTConfig, from_dict
from mrt_engine.config.presets import shipped_config
from mrt_engine.models import enable_activation_checkpointing, load_model
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
        enable_activation_checkpointing(model)
    model.train()
    return model, tok


# The SFT preset behind each shipped warm start (its weights: mrt_engine/models.py)
WARM_START_PRESETS = {"digit": "sft_digit", "demo": "sft_demo", "doubt": "sft_doubt", "bisect": "sft_bisect"}
# Held-out draws scanned for new problem texts, per problem asked for (plus a floor): the
# digit task has 2,970 texts, of which about 180 are in neither its SFT nor its RL problems.
_DRAWS_PER_EVAL, _MIN_DRAWS = 50, 2_000


def warm_start_problems(model_name: str) -> list:
    """The training problems of the SFT run that made the shipped warm start ``model_name``
    (its preset, rebuilt exactly: problem i depends only on the task, seed and i); [] for a
    model with no shipped SFT recipe."""
    preset = WARM_START_PRESETS.get(model_name)
    if preset is None:
        return []
    sft = from_dict(SFTConfig, shipped_config(preset), preset)
    return build_problems(sft.data)[0]


def build_problems(dcfg, *, exclude=()):
    """(train, eval) problem lists. Held-out problems share no text with the training problems
    nor with ``exclude`` (e.g. :func:`warm_start_problems`): synthetic ones are drawn with a
    different seed than train until ``num_eval`` new texts are found (an error if the task has
    too few); from a file they are the first ``num_eval`` records, less any such text."""

    if dcfg.path:
        problems = tasks.load_problems(dcfg.path, problem_field=dcfg.problem_field, answer_field=dcfg.answer_field)
        if len(problems) < dcfg.num_eval + 1:
            raise ValueError(f"{dcfg.path} has {len(problems)} problems; need more than data.num_eval={dcfg.num_eval}")
        train = problems[dcfg.num_eval:][:dcfg.num_train]
        seen = {p.problem for p in train} | {p.problem for p in exclude}
        return train, [p for p in problems[:dcfg.num_eval] if p.problem not in seen]
    train = tasks.make_problems(dcfg.task, dcfg.num_train, seed=dcfg.seed, difficulty=dcfg.difficulty)
    if not dcfg.num_eval:
        return train, []
    seen = {p.problem for p in train} | {p.problem for p in exclude}
    draws = tasks.make_problems(dcfg.task, max(_MIN_DRAWS, _DRAWS_PER_EVAL * dcfg.num_eval), seed=dcfg.seed + 10_007,
                                difficulty=dcfg.difficulty)
    held = []
    for p in draws:
        if p.problem not in seen:
            seen.add(p.problem)
            held.append(p)
            if len(held) == dcfg.num_eval:
                return train, held
    raise ValueError(f"data.num_eval={dcfg.num_eval}: only {len(held)} problems of task {dcfg.task!r} "
                     f"({dcfg.difficulty}) in {len(draws)} draws share no text with the {len(train)} training "
                     f"problems{' or the warm start' if exclude else ''}; lower data.num_eval")
