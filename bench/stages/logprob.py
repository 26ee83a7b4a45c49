"""Stage 4: policy log-prob + loss + backward, fused ``selective_log_prob`` vs the plain path.

First the LM head alone (M rows), then the whole policy forward + backward (B x T tokens),
each with the peak memory of one call.
"""
from __future__ import annotations

import torch

from bench.common.flops import logprob_loss_bytes, logprob_loss_flops, policy_pass_counts
from bench.common.machine import dtype_name
from bench.common.results import Result
from mrt_engine.ops import selective_log_prob

from .base import Context, measure_with_memory, unavailable

PLAIN, FUSED = "plain log_softmax.gather", "fused selective_log_prob"


def plain_logprob(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The usual path: materialise [M, V] logits (model dtype), fp32 log_softmax, gather the targets."""
    logits = hidden @ weight.T  # [M, V]
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)  # [M]


def pg_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Token-level policy-gradient loss, the same on both sides of the comparison."""
    return -(advantages * logp).sum() / logp.numel()


def _cases(run, meta: dict) -> tuple[dict, dict]:
    """(cases, meta): the plain baseline and the fused op, on the same inputs."""
    cases = {PLAIN: ("baseline", run(plain_logprob)), FUSED: ("ours", run(lambda h, w, t: selective_log_prob(h, w, t)))}
    return cases, {PLAIN: meta, FUSED: {k: v for k, v in meta.items() if k != "note"}}


def stage_logprob(ctx: Context) -> list[Result]:
    stage = ctx.label("logprob")
    dims, M = ctx.dims, ctx.workload.logprob_tokens
    V, Hd = dims.vocab_size, dims.hidden_size
    g = torch.Generator(device="cpu").manual_seed(0)
    # The LM head as the policy sees it (a copy, so the model's own weights stay untouched).
    weight = ctx.model.lm_head.weight.detach().clone().requires_grad_(True)  # [V, H]
    hidden = (torch.randn(M, Hd, generator=g) * 1.0).to(ctx.device, ctx.dtype).requires_grad_(True)  # [M, H]
    targets = torch.randint(0, V, (M,), generator=g).to(ctx.device)  # [M]
    adv = torch.randn(M, generator=g).to(ctx.device)  # [M]

    def run(logprob_fn):
        def call():
            hidden.grad = None
            weight.grad = None
            pg_loss(logprob_fn(hidden, weight, targets), adv).backward()
        return call

    meta = dict(num_tokens=M, flops=logprob_loss_flops(M, Hd, V),
                workload=f"M={M} rows, H={Hd}, V={V}, {dtype_name(ctx.dtype)}",
                min_bytes=logprob_loss_bytes(M, Hd, V, ctx.dtype_bytes, materialise_logits=False),
                note="bytes of the materialised path: %.3g" % logprob_loss_bytes(M, Hd, V, ctx.dtype_bytes,
                                                                                   materialise_logits=True))
    cases, meta = _cases(run, meta)
    return measure_with_memory(ctx, stage + " head", cases, meta) + stage_policy_pass(ctx, stage)


def stage_policy_pass(ctx: Context, stage: str) -> list[Result]:
    """The whole policy forward + backward over B x T tokens, head fused or plain."""
    w = ctx.workload
    B, T = w.policy_batch, w.policy_seq_len
    model, dims = ctx.model, ctx.dims
    g = torch.Generator(device="cpu").manual_seed(1)
    vocab = min(dims.vocab_size, len(ctx.tokenizer))
    input_ids = torch.randint(0, vocab, (B, T), generator=g).to(ctx.device)  # [B, T]
    adv = torch.randn(B * (T - 1), generator=g).to(ctx.device)  # [B*(T-1)]
    body = getattr(model, "model", None)
    if body is None or not hasattr(model, "lm_head"):
        return [unavailable(stage + " policy", "both", "ours", f"{type(model).__name__} has no .model/.lm_head")]
    params = [p for p in model.parameters()]
    was_requires = [p.requires_grad for p in params]

    def run(head_fn):
        def call():
            model.zero_grad(set_to_none=True)
            hidden = body(input_ids=input_ids).last_hidden_state[:, :-1].reshape(-1, dims.hidden_size)  # [B*(T-1), H]
            targets = input_ids[:, 1:].reshape(-1)  # [B*(T-1)]
            pg_loss(head_fn(hidden, model.lm_head.weight, targets), adv).backward()
        return call

    flops, min_bytes = policy_pass_counts(dims, batch=B, seq_len=T, dtype_bytes=ctx.dtype_bytes)
    meta = dict(num_tokens=B * T, flops=flops, min_bytes=min_bytes, workload=f"{B} x {T} tokens, whole model fwd+bwd")
    cases, meta = _cases(run, meta)
    try:
        for p in params:
            p.requires_grad_(True)
        measured = measure_with_memory(ctx, stage + " policy", cases, meta)
    finally:
        model.zero_grad(set_to_none=True)
        for p, req in zip(params, was_requires):
            p.requires_grad_(req)
    return measured
