"""Stage 6: the policy update, prefix-tree packed vs padded (issue 26; docs/packing.md).

Each row runs the trainer's own ``policy_update`` (plan, forward, loss, backward, clip; SGD at
lr 0 so the shared model is left as it was) on one batch both ways, interleaved, with peak
memory and the FLOP ratio (padded FLOPs / tree FLOPs: the speed-up the saved work predicts):

- ``grpo P=<n>``: GRPO groups, a prompt of n tokens and ``num_completions`` completions each;
- ``grpo P=<n> no-grad``: the old-policy / reference pass of the same batch (``batch_log_probs``);
- ``mrt_scalar``: per group a trace cut at a random token (prompt + prefix), forced continuations
  (termination text + a short answer: one more nested level) and continuations that reason on;
- ``step mrt_scalar``: one whole MRT-scalar training step (engine backend), ``optim.packing``
  tree vs padded; the note gives the update phase's share.

Inputs are random token ids: the packed layout depends on the lengths only.
"""
from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass

import torch

from bench.common.flops import ModelDims, attention_pairs_causal, forward_flops
from bench.common.results import OK, Result
from mrt_engine.config import AlgoConfig, OptimConfig
from mrt_engine.rl.rollout import Sample, pack
from mrt_engine.trainer import Trainer
from mrt_engine.trainer.dist import PolicyLogProbs
from mrt_engine.trainer.update import MicroBatch, batch_log_probs, plan_micro_batches, policy_update

from .base import QUICK, Context, measure, measure_with_memory
from .step import step_config, timed_step

TREE, PADDED = "tree-packed update", "padded update"


@dataclass(frozen=True)
class UpdateWorkload:
    prompt_lens: tuple[int, ...] = (128, 1024)   # GRPO rows, one per prompt length
    num_groups: int = 1                          # groups per batch
    num_completions: int = 4
    completion_tokens: int = 256
    nograd_prompt: int = 1024                    # the no-grad row's prompt length (0: no such row)
    # mrt_scalar: a prompt, a trace of trace_tokens cut at a random token, then num_terminate
    # forced answers (termination text + answer_tokens) and num_continue continuations
    mrt_prompt: int = 128
    trace_tokens: int = 1024
    num_terminate: int = 2
    num_continue: int = 2
    termination_tokens: int = 13
    answer_tokens: int = 16
    continuation_tokens: int = 256
    micro_batch_size: int = 4                    # the padded pass: a GRPO group per micro-batch


QUICK_UPDATE = UpdateWorkload(prompt_lens=(16, 48), num_groups=2, num_completions=3, completion_tokens=12,
                              nograd_prompt=48, mrt_prompt=12, trace_tokens=40, termination_tokens=4, answer_tokens=3,
                              continuation_tokens=10, micro_batch_size=3)
CPU_UPDATE = UpdateWorkload()
CUDA_UPDATE = UpdateWorkload(num_groups=8, nograd_prompt=1024, trace_tokens=4096, continuation_tokens=1024,
                             micro_batch_size=8)


def update_workload(ctx: Context) -> UpdateWorkload:
    if ctx.workload == QUICK:
        return QUICK_UPDATE
    return CUDA_UPDATE if ctx.device.type == "cuda" else CPU_UPDATE


# -- batches --------------------------------------------------------------------------------------
def _ids(rng: random.Random, n: int, vocab: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(n)]


def grpo_batch(w: UpdateWorkload, prompt_len: int, vocab: int, seed: int = 0):
    rng = random.Random(seed)
    samples = [Sample(None, g, prompt, _ids(rng, w.completion_tokens, vocab), "")
               for g in range(w.num_groups) for prompt in [_ids(rng, prompt_len, vocab)]
               for _ in range(w.num_completions)]
    return pack(samples, pad_id=0)


def mrt_scalar_batch(w: UpdateWorkload, vocab: int, seed: int = 0):
    rng = random.Random(seed)
    term = _ids(rng, w.termination_tokens, vocab)
    samples = []
    for g in range(w.num_groups):
        prompt = _ids(rng, w.mrt_prompt, vocab)
        prefix = _ids(rng, rng.randrange(w.trace_tokens), vocab)  # the trace cut at a random point
        samples += [Sample(None, g, prompt + prefix + term, _ids(rng, w.answer_tokens, vocab), "", terminated=True)
                    for _ in range(w.num_terminate)]
        samples += [Sample(None, g, prompt + prefix, _ids(rng, w.continuation_tokens, vocab), "")
                    for _ in range(w.num_continue)]
    return pack(samples, pad_id=0)


# -- FLOPs ------------------------------------------------------------------------------------------
def micro_batch_flops(dims: ModelDims, batch, micro: list[MicroBatch], *, backward: bool) -> float:
    """Model FLOPs of the passes over ``micro``: a tree micro-batch computes its packed tokens and
    the query-key pairs of its attention calls; a padded one rows x width tokens, causal pairs.
    The LM head runs on the trained tokens only (fused selective log-prob) either way."""
    total = 0.0
    for m in micro:
        trained = int(batch.loss_mask[m.start:m.end].sum())
        if m.tree is not None:
            pairs = sum(attention_pairs_causal(c.q_end - c.q_start) if c.mask is None else c.mask.numel()
                        for c in m.tree.attention.calls)
            total += forward_flops(dims, num_tokens=m.tree.num_tokens, attention_pairs=pairs, lm_head_tokens=trained)
        else:
            rows = m.end - m.start
            width = int(batch.attention_mask[m.start:m.end].sum(dim=1).max())
            total += forward_flops(dims, num_tokens=rows * width, attention_pairs=rows * attention_pairs_causal(width),
                                   lm_head_tokens=trained)
    return total * (3 if backward else 1)


# -- rows -------------------------------------------------------------------------------------------
def _update_cases(ctx: Context, batch, *, backward: bool, w: UpdateWorkload):
    """(cases, meta) of one batch: our tree-packed pass and the padded one."""
    policy = PolicyLogProbs(ctx.model)
    opt = torch.optim.SGD(ctx.model.parameters(), lr=0.0)  # the update runs whole; the weights stay
    algo = AlgoConfig()
    g = torch.Generator().manual_seed(0)
    adv = torch.randn(batch.input_ids.shape, generator=g) * batch.loss_mask
    dims, cases, meta = ctx.dims, {}, {}
    for method, role, packing in ((TREE, "ours", "tree"), (PADDED, "baseline", "padded")):
        optim = OptimConfig(micro_batch_size=w.micro_batch_size, packing=packing)
        micro = plan_micro_batches(batch, micro_batch_size=w.micro_batch_size, packing=packing)
        flops = micro_batch_flops(dims, batch, micro, backward=backward)

        def call(optim=optim):
            if backward:  # planning is part of the update: each call plans its own micro-batches
                policy_update(policy, opt, batch, adv, algo=algo, optim=optim, max_tokens=w.completion_tokens)
            else:
                batch_log_probs(policy, batch, micro_batch_size=w.micro_batch_size, packing=optim.packing)

        cases[method] = (role, call)
        meta[method] = dict(num_tokens=int(batch.attention_mask.sum()), flops=flops, compare="time",
                            note=f"{len(micro)} micro-batches, {computed_tokens(batch, micro)} tokens computed")
    return cases, meta


def computed_tokens(batch, micro: list[MicroBatch]) -> int:
    """Tokens the passes run through the model: packed, or rows x width with the padding."""
    return sum(m.tree.num_tokens if m.tree is not None
               else (m.end - m.start) * int(batch.attention_mask[m.start:m.end].sum(dim=1).max()) for m in micro)


def _row(ctx: Context, name: str, batch, workload: str, *, backward: bool, w: UpdateWorkload) -> list[Result]:
    cases, meta = _update_cases(ctx, batch, backward=backward, w=w)
    for m in meta.values():
        m["workload"] = workload
    min_flops = meta[TREE]["flops"]
    for m in meta.values():
        m["min_flops"] = min_flops
    stage = ctx.label("update") + " " + name
    was, was_training = [p.requires_grad for p in ctx.model.parameters()], ctx.model.training
    try:
        for p in ctx.model.parameters():
            p.requires_grad_(True)
        if backward:
            return measure_with_memory(ctx, stage, cases, meta)
        with torch.no_grad():
            ctx.bar.set_description(stage)
            return measure(ctx, stage, cases, meta)
    finally:
        ctx.model.zero_grad(set_to_none=True)
        for p, r in zip(ctx.model.parameters(), was):
            p.requires_grad_(r)
        ctx.model.train(was_training)


def _step_rows(ctx: Context) -> list[Result]:
    """One whole MRT-scalar step (engine backend), ``optim.packing`` tree vs padded."""
    w = ctx.workload
    stage = ctx.label("update") + " step mrt_scalar"
    tmp = tempfile.mkdtemp(prefix="mrt-bench-update-step-")
    trainers, update_s = {}, {}
    for method, packing in ((TREE, "tree"), (PADDED, "padded")):
        cfg = step_config(ctx, "engine", os.path.join(tmp, packing))
        cfg.algo.name = "mrt_scalar"
        cfg.optim.packing = packing
        trainers[method] = Trainer(cfg, model=ctx.model, tokenizer=ctx.tokenizer)
        update_s[method] = []

    def run(method):
        trainer = trainers[method]

        def call():
            metrics, seconds = timed_step(ctx, trainer, w.step_num_prompts)
            update_s[method].append((metrics["time/update_s"], seconds))
        return call

    cases = {TREE: ("ours", run(TREE)), PADDED: ("baseline", run(PADDED))}
    work = f"mrt_scalar step: {w.step_num_prompts} prompts x 4 continuations, {w.step_max_tokens}-token rollouts"
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, {m: dict(workload=work, compare="time") for m in cases})
    for r in results:
        pairs = update_s[r.method][ctx.warmup:] or update_s[r.method]
        if r.status == OK and pairs:
            upd = sorted(u for u, _ in pairs)[len(pairs) // 2]
            r.note = f"update phase {upd:.2f} s ({100 * upd / max(r.median_s, 1e-9):.0f}% of the step)"
    return results


def stage_update(ctx: Context) -> list[Result]:
    w = update_workload(ctx)
    vocab = min(ctx.dims.vocab_size, len(ctx.tokenizer))
    rows: list[Result] = []
    shape = f"{w.num_groups} group(s) x {w.num_completions} x {w.completion_tokens} tokens"
    for p in w.prompt_lens:
        rows += _row(ctx, f"grpo P={p}", grpo_batch(w, p, vocab), f"GRPO: prompt {p}, {shape}", backward=True, w=w)
    if w.nograd_prompt:
        rows += _row(ctx, f"grpo P={w.nograd_prompt} no-grad", grpo_batch(w, w.nograd_prompt, vocab),
                     f"old/ref log-probs: prompt {w.nograd_prompt}, {shape}", backward=False, w=w)
    mrt = (f"mrt_scalar: {w.num_groups} group(s), prompt {w.mrt_prompt} + a {w.trace_tokens}-token trace cut at random, "
           f"{w.num_terminate} x ({w.termination_tokens} + {w.answer_tokens}) forced, {w.num_continue} x "
           f"{w.continuation_tokens} continuing")
    rows += _row(ctx, "mrt_scalar", mrt_scalar_batch(w, vocab), mrt, backward=True, w=w)
    return rows + _step_rows(ctx)
