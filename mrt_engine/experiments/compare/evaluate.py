"""The held-out measurements of one trained arm (every arm measured alike).

On ``num_samples`` sampled completions per held-out problem:
- ``pass@1`` (mean grade), ``tokens`` (mean completion tokens), ``truncated``;
- J at every episode cut from one *measuring* estimator, the same for every arm (sample mode,
  ``num_branches`` forced answers per cut, J at the natural end = the outcome), whatever
  estimator the arm trained with: ``episodes`` per trace, ``progress`` per episode, ``j_empty``,
  normalized ``regret`` at each completion budget, ``accuracy_at_budget`` (J at the last cut
  that fits the budget: forced termination there), and the progress ``reliability``;
- budget forcing past the natural end: a trace that closed is extended with ``"\\n\\nWait,"``
  (a truncated one just goes on) up to ``forcing_budget`` completion tokens, then graded on
  its last answer: ``forced_accuracy`` and ``forced_tokens`` (skipped with
  ``forcing_budget=None``: it generates past every trace, the costliest measurement here);
- ``maj@k``: the majority answer of the first k samples of a problem, against k x tokens.
- ``mechanism`` (a task with a ``mechanism`` hook: ``doubt``, ``bisect``): ``{"num_traces", "sums"}``,
  each key of ``task.mechanism(problem, completion)`` summed over the sampled completions; the
  regime turns the sums into its preregistered rate (``experiments.regimes.MechanismMetric``).
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import Sequence

import torch

from mrt_engine.config import EstimatorConfig
from mrt_engine.engine import SamplingParams
from mrt_engine.metrics import normalized_regret
from mrt_engine.progress import progress_reliability, token_curve
from mrt_engine.rl.rollout_progress import build_estimator, estimate_progress
from mrt_engine.rl.rollout import Sample, sample_groups, strip_eos, task_verifier
from mrt_engine.grading import grade
from mrt_engine.prompts import encode
from mrt_engine.tasks import get_task

WAIT = "\n\nWait,"


def measuring_estimator_config(train_cfg, num_branches: int) -> EstimatorConfig:
    """The arm's own estimator settings in sample mode with ``num_branches``: one yardstick."""
    return dataclasses.replace(train_cfg.algo.progress, mode="sample", method="fast", num_branches=num_branches,
                               natural_end="outcome", show_progress=False)


@torch.no_grad()
def evaluate_policy(trainer, problems, *, num_samples: int, seed: int, budgets: Sequence[int],
                    forcing_budget: int | None, num_branches: int) -> dict:
    """The measurements above for ``trainer``'s current policy on ``problems``."""
    cfg, tok, backend = trainer.cfg, trainer.tok, trainer.backend
    samples, results = sample_and_estimate(trainer, problems, num_samples=num_samples, seed=seed,
                                           num_branches=num_branches)
    sampling = eval_sampling(cfg, seed)
    num = len(samples)
    out = {"num_problems": len(problems), "num_samples": num_samples,
           "pass@1": sum(s.reward for s in samples) / num,
           "tokens": sum(s.num_completion_tokens for s in samples) / num,
           "truncated": sum(s.finish_reason == "length" for s in samples) / num,
           "episodes": sum(r.num_episodes for r in results) / num,
           "j_empty": sum(r.j[0] for r in results) / num}
    progress = [p for r in results for p in r.progress]
    out["progress"] = sum(progress) / len(progress) if progress else 0.0
    out["regret"], out["accuracy_at_budget"] = {}, {}
    for b in budgets:
        out["regret"][str(b)] = sum(normalized_regret(*token_curve(r), len(s.context_ids) + b)
                                    for r, s in zip(results, samples)) / num
        out["accuracy_at_budget"][str(b)] = sum(j_within(r, len(s.context_ids) + b)
                                                for r, s in zip(results, samples)) / num
    out["reliability"] = progress_reliability(results).to_json()
    if forcing_budget is not None:
        forced = budget_forcing(backend, tok, samples, forcing_budget=forcing_budget, sampling=sampling)
        out["forced_budget"] = forcing_budget
        out["forced_accuracy"] = sum(g for g, _ in forced) / num
        out["forced_tokens"] = sum(t for _, t in forced) / num
    out["maj"] = majority_curve(samples, num_samples)
    task = None if cfg.data.path else get_task(cfg.data.task)  # loaded data has no task hooks
    if task is not None and task.mechanism is not None:
        out["mechanism"] = mechanism_sums(task, samples)
    return out


def eval_sampling(cfg, seed: int) -> SamplingParams:
    """How held-out completions are drawn: the rollout budget at the eval temperature."""
    return SamplingParams(max_tokens=cfg.rollout.max_tokens, temperature=cfg.rollout.eval_temperature,
                          top_p=cfg.rollout.top_p, seed=seed)


@torch.no_grad()
def sample_and_estimate(trainer, problems, *, num_samples: int, seed: int, num_branches: int):
    """``(samples, results)``: ``num_samples`` graded completions per problem from ``trainer``'s
    policy and J at each of their cuts from the measuring estimator (branches seeded from
    ``seed + 7``). The measurement every arm gets, and ``mrt-engine gates`` on a warm start."""
    cfg, tok, backend = trainer.cfg, trainer.tok, trainer.backend
    trainer.model.eval()
    samples = sample_groups(backend, tok, problems, n=num_samples, sampling=eval_sampling(cfg, seed),
                            system=cfg.data.system_prompt)
    estimator = build_estimator(trainer.model, tok, measuring_estimator_config(cfg, num_branches), backend)
    return samples, estimate_progress(estimator, tok, samples, seed=seed + 7)


def mechanism_sums(task, samples: list[Sample]) -> dict:
    """``{"num_traces", "sums"}``: each key of ``task.mechanism(problem, completion)`` summed over
    the samples' completions (the text the grader reads). Every trace must give the same keys and
    numbers: the hook is the preregistered metric, so a malformed value is an error, not a zero."""
    sums: dict[str, float] = {}
    keys = None
    for i, s in enumerate(samples):
        counts = task.mechanism(s.problem, s.graded_text)
        if not isinstance(counts, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   and math.isfinite(v) for v in counts.values()):
            raise ValueError(f"task {task.name!r}: mechanism() of sample {i} gave {counts!r:.120}; it must "
                             "return a dict of finite numbers (Task.mechanism in tasks/base.py)")
        if keys is None:
            keys = sorted(counts)
        elif sorted(counts) != keys:
            raise ValueError(f"task {task.name!r}: mechanism() of sample {i} gave keys {sorted(counts)}, "
                             f"sample 0 gave {keys}; every trace must give the same keys")
        for k, v in counts.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {"num_traces": len(samples), "sums": sums}


def j_within(result, budget: float) -> float:
    """J at the last cut whose token count fits ``budget`` (0 when not even the first does)."""
    tokens, j = token_curve(result)
    fit = [v for t, v in zip(tokens, j) if t <= budget]
    return fit[-1] if fit else 0.0


def budget_forcing(backend, tokenizer, samples: list[Sample], *, forcing_budget: int,
                   sampling: SamplingParams) -> list[tuple[float, int]]:
    """(grade, completion tokens) of each sample carried on to ``forcing_budget`` tokens.

    One batched generation of ``forcing_budget - max_tokens`` more tokens per sample; each
    continuation is cut to what its own budget leaves (the first r tokens of a longer draw are
    a draw of r tokens).
    """

    wait_ids = encode(tokenizer, WAIT)
    contexts, heads = [], []
    for s in samples:
        ids = strip_eos(s.completion_ids, tokenizer)
        closed = s.finish_reason != "length"
        head = ids + (wait_ids if closed else [])
        contexts.append(list(s.context_ids) + head)
        heads.append((head, s.graded_text + (WAIT if closed else "")))
    extra = max(1, forcing_budget - sampling.max_tokens)
    outs = backend.generate(contexts, dataclasses.replace(sampling, n=1, max_tokens=extra, seed=sampling.seed + 11))
    graded = []
    for s, (head, text), (out,) in zip(samples, heads, outs):
        room = max(0, forcing_budget - len(head))
        new = strip_eos(list(out.token_ids)[:room], tokenizer)
        full = text + tokenizer.decode(new, skip_special_tokens=True)
        g = grade(full, s.problem.answer, verifier=task_verifier(s.problem))
        graded.append((float(g.score), len(head) + len(new)))
    return graded


def majority_curve(samples: list[Sample], num_samples: int) -> dict:
    """``{k: {"accuracy", "tokens"}}`` for k = 1, 2, 4, ... <= num_samples: majority vote of the
    first k samples of each problem (ties: the answer seen first), tokens = their sum."""
    groups = collections.defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    out, k = {}, 1
    while k <= num_samples:
        acc = tok = 0.0
        for group in groups.values():
            first = group[:k]
            votes = collections.Counter(s.extracted for s in first if s.extracted is not None)
            if votes:
                best = max(votes.values())
                answer = next(s.extracted for s in first if votes.get(s.extracted) == best)
                acc += next(s.reward for s in first if s.extracted == answer)
            tok += sum(s.num_completion_tokens for s in first)
        out[str(k)] = {"accuracy": acc / len(groups), "tokens": tok / len(groups)}
        k *= 2
    return out
