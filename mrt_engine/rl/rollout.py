"""Rollouts: sample completions on the live policy, grade them, and pack them for the update.

One :class:`Sample` is one trained sequence: ``context_ids`` (prompt, plus a prefix and maybe
the termination text for MRT continuations) followed by ``completion_ids`` (what the policy
sampled; only those tokens are trained on).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import torch

from mrt_engine.engine import GenerationOutput, SamplingParams
from mrt_engine.grading import grade
from mrt_engine.tasks import verifier_for
from mrt_engine.prompts import encode, prompt_ids
from mrt_engine.episodes import segment_ids


@dataclass
class Sample:
    problem: object                 # mrt_engine.tasks.Problem
    group: int                      # samples sharing a prompt (or a prefix) share a group
    context_ids: list[int]
    completion_ids: list[int]
    graded_text: str                # the text the grader reads
    finish_reason: str = "stop"
    reward: float = 0.0             # outcome score
    terminated: bool = False        # mrt_scalar: forced to answer right after the prefix
    prefix_tokens: int = 0          # mrt_scalar: tokens of the trace prefix inside context_ids
    extracted: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_completion_tokens(self) -> int:
        return len(self.completion_ids)


def grade_samples(samples: list[Sample]) -> None:
    """Fill ``reward`` (and ``extracted``) from the task's exact verifier, if it has one."""

    for s in samples:
        g = grade(s.graded_text, s.problem.answer, verifier=task_verifier(s.problem))
        s.reward = float(g.score)
        s.extracted = g.extracted


def task_verifier(problem):
    """The exact verifier of the problem's synthetic task, or None (math equivalence)."""

    return verifier_for(problem) if hasattr(problem, "task") and hasattr(problem, "meta") else None


def encode_prompts(tokenizer, problems, *, system=None) -> list[list[int]]:
    return [prompt_ids(tokenizer, p.problem, system=system) for p in problems]


def sample_groups(backend, tokenizer, problems, *, n: int, sampling: SamplingParams, system=None) -> list[Sample]:
    """``n`` completions per problem; group ``g`` = problem ``g``."""
    prompts = encode_prompts(tokenizer, problems, system=system)
    outs = backend.generate(prompts, replace(sampling, n=n))
    samples = []
    for g, (problem, prompt, group) in enumerate(zip(problems, prompts, outs)):
        for c in group:
            samples.append(Sample(problem, g, list(prompt), list(c.token_ids), c.text, c.finish_reason))
    grade_samples(samples)
    return samples


def sample_prefix_continuations(backend, tokenizer, problems, *, sampling: SamplingParams, num_continuations: int,
                                num_terminate: int, max_answer_tokens: int, template, scheme: str,
                                segment_options: dict, rng: random.Random, system=None) -> list[Sample]:
    """Scalar MRT-RL data (docs/method.md section 5): per problem, one prefix rollout cut after a
    random number of episodes k (uniform over 0..L-1 for a trace of L episodes), then
    ``num_terminate`` continuations forced to answer at once (termination text appended) and
    ``num_continuations - num_terminate`` that reason on. Group ``g`` = the prefix of problem g.
    """

    prompts = encode_prompts(tokenizer, problems, system=system)
    traces = backend.generate(prompts, replace(sampling, n=1))
    term_ids = encode(tokenizer, template.text)
    term_ctx, cont_ctx, prefixes = [], [], []
    for prompt, (trace,) in zip(prompts, traces):
        ids = strip_eos(trace.token_ids, tokenizer)
        episodes = segment_ids(tokenizer, ids, scheme, **segment_options)
        k = rng.randrange(len(episodes))  # episodes kept in the prefix (never the whole trace)
        cut = episodes[k - 1].token_end if k > 0 else 0
        prefix = ids[:cut]
        prefixes.append((prefix, tokenizer.decode(prefix, skip_special_tokens=False), k, len(episodes),
                         len(trace.token_ids)))
        term_ctx.append(prompt + prefix + term_ids)
        cont_ctx.append(prompt + prefix)
    seed2 = None if sampling.seed is None else sampling.seed + 1
    num_continue = num_continuations - num_terminate
    term_outs = backend.generate(term_ctx, replace(sampling, n=num_terminate, max_tokens=max_answer_tokens, seed=seed2))
    cont_budget = [max(1, sampling.max_tokens - len(p[0])) for p in prefixes]
    cont_outs = _generate_varying_budget(backend, cont_ctx, cont_budget, num_continue, sampling, seed2)
    samples = []
    for g, problem in enumerate(problems):
        prefix, prefix_text, k, num_ep, trace_len = prefixes[g]
        # trace_tokens: the whole prefix rollout was generated (then cut): it counts toward a token budget
        meta = {"prefix_episodes": k, "num_episodes": num_ep, "trace_tokens": trace_len}
        for c in term_outs[g]:
            samples.append(Sample(problem, g, term_ctx[g], list(c.token_ids), template.text + c.text, c.finish_reason,
                                  terminated=True, prefix_tokens=len(prefix), meta=meta))
        for c in cont_outs[g]:
            samples.append(Sample(problem, g, cont_ctx[g], list(c.token_ids), prefix_text + c.text, c.finish_reason,
                                  terminated=False, prefix_tokens=len(prefix), meta=meta))
    grade_samples(samples)
    return samples


def _generate_varying_budget(backend, contexts, budgets, n, sampling: SamplingParams, seed) -> list[list[GenerationOutput]]:
    # Continuations keep the whole trace within rollout.max_tokens: batch equal budgets together.
    out: list = [None] * len(contexts)
    for budget in sorted(set(budgets)):
        idx = [i for i, b in enumerate(budgets) if b == budget]
        res = backend.generate([contexts[i] for i in idx], replace(sampling, n=n, max_tokens=budget, seed=seed))
        for i, r in zip(idx, res):
            out[i] = r
    return out


def strip_eos(ids, tokenizer) -> list[int]:
    """The completion without its trailing EOS tokens (what the segmenter and estimator read)."""
    ids = list(ids)
    while ids and ids[-1] == tokenizer.eos_token_id:
        ids.pop()
    return ids


# -- packing ------------------------------------------------------------------------------------
@dataclass
class Batch:
    input_ids: torch.Tensor        # [N, T] right padded
    attention_mask: torch.Tensor   # [N, T]
    loss_mask: torch.Tensor        # [N, T] 1 on completion tokens
    completion_start: list[int]    # row i's completion begins at this column
    # the rollout's group of each row (rows of a group are adjacent); the prefix-tree update
    # (rl/packing.py) cuts micro-batches between groups. None: any row boundary.
    groups: list[int] | None = None

    @property
    def num_sequences(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, start: int, end: int) -> "Batch":
        width = int(self.attention_mask[start:end].sum(dim=1).max().item()) if end > start else 0
        return Batch(self.input_ids[start:end, :width], self.attention_mask[start:end, :width],
                     self.loss_mask[start:end, :width], self.completion_start[start:end],
                     None if self.groups is None else self.groups[start:end])


def pack(samples: list[Sample], pad_id: int) -> Batch:
    """Context + completion per row, right padded; completion tokens marked in ``loss_mask``."""
    if not samples:
        raise ValueError("no samples to pack")
    width = max(len(s.context_ids) + len(s.completion_ids) for s in samples)
    n = len(samples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)  # [N, T]
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.long)
    starts = []
    for i, s in enumerate(samples):
        if not s.context_ids:
            raise ValueError("a sample has an empty context: the first completion token needs a prompt before it")
        ids = s.context_ids + s.completion_ids
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention_mask[i, :len(ids)] = 1
        loss_mask[i, len(s.context_ids):len(ids)] = 1
        starts.append(len(s.context_ids))
    return Batch(input_ids, attention_mask, loss_mask, starts, [s.group for s in samples])
