"""Held-out evaluation: pass@1, mean completion tokens, mean episode progress, normalized regret."""
from __future__ import annotations

import torch

from mrt_engine.rl.branching import estimate_trace_progress
from mrt_engine.rl.generation import Sampling
from mrt_engine.rl.rollout import sample_groups


@torch.no_grad()
def evaluate(backend, tokenizer, problems, *, max_tokens: int, temperature: float, template, scheme: str,
             segment_options: dict, max_cuts: int, num_branches: int, answer_max_tokens: int,
             branch_temperature: float, seed: int, system=None, with_progress: bool = True) -> dict:
    """One completion per problem (greedy at ``temperature=0``).

    - ``pass@1``: fraction correct.
    - ``tokens``: mean completion tokens.
    - ``progress``: mean per-episode progress ``J_k - J_{k-1}`` from forced-termination branches.
    - ``regret``: mean normalized regret at budget C0 = prompt + ``max_tokens`` tokens
      (mrt.md section 7; comparator J* = 1), over the J curve at the cuts.
    """
    if not problems:
        return {}
    samples = sample_groups(backend, tokenizer, problems, n=1,
                            sampling=Sampling(max_tokens=max_tokens, temperature=temperature, seed=seed), system=system)
    out = {"pass@1": sum(s.reward for s in samples) / len(samples),
           "tokens": sum(s.num_completion_tokens for s in samples) / len(samples)}
    if with_progress:
        from mrt_engine.metrics import normalized_regret

        prog = estimate_trace_progress(backend, tokenizer, samples, template=template, scheme=scheme,
                                       segment_options=segment_options, max_cuts=max_cuts, num_branches=num_branches,
                                       answer_max_tokens=answer_max_tokens, temperature=branch_temperature,
                                       seed=seed + 7)
        out["progress"] = float(torch.cat([p.progress for p in prog]).mean())
        out["j_empty"] = sum(p.j[0] for p in prog) / len(prog)
        out["regret"] = sum(normalized_regret(p.tokens_at_cut, p.j, len(s.context_ids) + max_tokens)
                            for p, s in zip(prog, samples)) / len(prog)
        out["episodes"] = sum(len(p.episode_spans) for p in prog) / len(prog)
    return out
