"""Supervised warm start on the synthetic tasks (``mrt-engine sft``).

Examples are ``prompt -> solution_trace(problem)`` (multi-episode reasoning ending in
``\\boxed{answer}``) plus, with ``termination_fraction > 0``, meta-prover examples
``prompt + trace prefix + termination text -> answer}`` at episode cuts whose prefix already
states the answer. The latter teach the model to answer when forced to stop, so that J (and
hence progress) is measurable on a small model; a cut whose prefix does not yet contain the
answer gets no example (we never teach a guess). A task with a ``forced_answer`` hook (the
``doubt`` and ``bisect`` regimes) gets an example at any cut, answered with the state of the
work there (``forced_answer(problem, prefix)``: the held candidate or a guess among those left),
so J can be low, rise and fall; the paper's meta-prover never sees such guesses.
"""
from __future__ import annotations

import random
import re
import time
import torch

from mrt_engine.config import SFTConfig
from mrt_engine.rl.rollout import Sample, encode_prompts, pack
from mrt_engine.episodes import segment
from mrt_engine.prompts import encode, get_template
from mrt_engine.tasks import TASKS, solution_trace
from mrt_engine.trainer.checkpoint import save_checkpoint, save_weights
from mrt_engine.rl.backends import make_backend
from mrt_engine.trainer.logger import MetricsLogger
from mrt_engine.trainer.optim import build_optimizer, build_scheduler
from mrt_engine.trainer.setup import build_model, build_problems
from mrt_engine.trainer.dist import PolicyLogProbs
from mrt_engine.trainer.update import sft_update
from mrt_engine.engine import SamplingParams
from mrt_engine.rl.rollout import sample_groups


def _answer_stated(answer: str, text: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(str(answer)) + r"(?![\w.])", text) is not None


def build_examples(problems, tokenizer, *, seed: int, template, scheme: str = "r1", segment_options=None,
                   termination_fraction: float = 0.0, system=None) -> list[Sample]:
    """Teacher-forced examples (see the module docstring); deterministic in ``seed``."""

    rng = random.Random(seed)
    prompts = encode_prompts(tokenizer, problems, system=system)
    term_ids = encode(tokenizer, template.text)
    eos = [tokenizer.eos_token_id]
    examples: list[Sample] = []
    meta_pool: list[Sample] = []
    for i, (problem, prompt) in enumerate(zip(problems, prompts)):
        trace = solution_trace(problem, seed=seed * 100_003 + i)
        examples.append(Sample(problem, i, list(prompt), encode(tokenizer, trace) + eos, trace))
        if termination_fraction <= 0:
            continue
        episodes = segment(trace, scheme, **(segment_options or {}))
        cuts = [e.char_end for e in episodes[:-1]]
        task = TASKS.get(problem.task)
        forced = task.forced_answer if task is not None else None
        if forced is not None:  # the state of the work at every cut, wrong candidates and guesses too
            eligible = cuts
        else:  # only cuts whose prefix already holds the answer: never a guess
            found = task.answer_found if task is not None and task.answer_found is not None else None
            eligible = [c for c in cuts if (found(problem, trace[:c]) if found else _answer_stated(problem.answer, trace[:c]))]
        if eligible:
            c = rng.choice(eligible)
            text = (forced(problem, trace[:c]) if forced is not None else str(problem.answer)) + (template.answer_suffix or "")
            meta_pool.append(Sample(problem, i, list(prompt) + encode(tokenizer, trace[:c]) + term_ids,
                                    encode(tokenizer, text) + eos, template.text + text))
    num_meta = min(len(meta_pool), int(round(termination_fraction / (1 - termination_fraction) * len(examples))))
    return examples + rng.sample(meta_pool, num_meta)


def run_sft(cfg: SFTConfig, *, log=None) -> dict:
    """Train, evaluate (greedy pass@1 on held-out problems), save; returns a summary."""

    log = log or (lambda text: print(text, flush=True))
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    model, tok = build_model(cfg.model, seed=cfg.seed)
    train_problems, eval_problems = build_problems(cfg.data)
    template = get_template(cfg.template)
    examples = build_examples(train_problems, tok, seed=cfg.seed, template=template, scheme=cfg.scheme,
                              segment_options=cfg.segment_options, termination_fraction=cfg.termination_fraction,
                              system=cfg.data.system_prompt)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.steps)
    backend = make_backend("engine", model, tok)
    logger = MetricsLogger(cfg.output_dir, total_steps=cfg.steps, progress_bar=False, tensorboard=False)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rng = random.Random(cfg.seed)
    order: list[int] = []
    t0 = time.perf_counter()
    summary: dict = {"num_examples": len(examples)}
    for step in range(1, cfg.steps + 1):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(examples)), len(examples))
        chosen, order = order[:cfg.batch_size], order[cfg.batch_size:]
        out = sft_update(PolicyLogProbs(model), optimizer, pack([examples[i] for i in chosen], pad),
                         micro_batch_size=cfg.optim.micro_batch_size, grad_clip=cfg.optim.grad_clip,
                         precision=cfg.precision)
        scheduler.step()
        backend.weights_updated()
        logger.log(step, {"loss": out["loss"], "lr": scheduler.get_last_lr()[0]})
        if step % max(1, cfg.steps // 20) == 0:
            log(f"sft step {step}/{cfg.steps} loss {out['loss']:.4f} ({time.perf_counter() - t0:.0f}s)")
        if eval_problems and (step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
            acc = sft_eval(backend, tok, eval_problems, max_tokens=cfg.eval_max_tokens, system=cfg.data.system_prompt)
            logger.log(step, {"pass@1": acc}, prefix="eval/")
            log(f"sft step {step}: held-out greedy pass@1 {acc:.3f}")
            summary["pass@1"] = acc
            if step < cfg.steps:  # an intermediate checkpoint at each evaluation
                save_checkpoint(cfg.output_dir, step, model=model)
                if cfg.export:
                    save_weights(model, cfg.export, dtype=torch.float16)
    summary["loss"] = out["loss"]
    summary["checkpoint"] = str(save_checkpoint(cfg.output_dir, cfg.steps, model=model))
    if cfg.export:
        save_weights(model, cfg.export, dtype=torch.float16)  # compact for shipping; loads back into fp32
        summary["export"] = cfg.export
    logger.close()
    return summary


def sft_eval(backend, tok, problems, *, max_tokens: int, system=None) -> float:
    samples = sample_groups(backend, tok, problems, n=1, system=system,
                            sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))
    return sum(s.reward for s in samples) / len(samples)
