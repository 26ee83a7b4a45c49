"""Held-out evaluation: pass@1, mean completion tokens, mean episode progress, normalized regret."""
from __future__ import annotations

import torch

from mrt_engine.engine import SamplingParams
from mrt_engine.metrics import normalized_regret
from mrt_engine.progress import token_curve
from mrt_engine.rl.rollout_progress import estimate_progress
from mrt_engine.rl.rollout import sample_groups


@torch.no_grad()
def evaluate(backend, tokenizer, problems, *, estimator, max_tokens: int, temperature: float, seed: int,
             system=None, with_progress: bool = True, first_index: int = 0) -> dict:
    """One completion per problem (greedy at ``temperature=0``).

    - ``pass@1``: fraction correct; ``tokens``: mean completion tokens.
    - ``progress``: mean per-episode progress ``J_k - J_{k-1}``; ``j_empty``: mean J at the
      empty prefix; ``episodes``: mean episodes per trace (J from ``estimator``, the trainer's).
    - ``regret``: mean normalized regret at budget C0 = prompt + ``max_tokens`` tokens
      (docs/method.md section 7; comparator J* = 1), over each trace's token curve.
    ``first_index``: global index of ``problems[0]`` when each rank evaluates its share.
    """
    if not problems:
        return {}
    samples = sample_groups(backend, tokenizer, problems, n=1, system=system,
                            sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed))
    out = {"pass@1": sum(s.reward for s in samples) / len(samples),
           "tokens": sum(s.num_completion_tokens for s in samples) / len(samples)}
    if with_progress:
        results = estimate_progress(estimator, tokenizer, samples, seed=seed + 7, first_index=first_index)
        progress = [p for r in results for p in r.progress]
        out["progress"] = sum(progress) / len(progress) if progress else 0.0
        out["j_empty"] = sum(r.j[0] for r in results) / len(results)
        out["regret"] = sum(normalized_regret(*token_curve(r), len(s.context_ids) + max_tokens)
                            for r, s in zip(results, samples)) / len(results)
        out["episodes"] = sum(r.num_episodes for r in results) / len(results)
    return out
