"""Pure-torch reference of the fused selective log-prob (the CPU path and the test oracle).

``logp[i] = log_softmax((hidden[i] @ weight.T + bias) / temperature)[targets[i]]`` (natural
log), optionally with the entropy of that distribution. Work is chunked over tokens so the
full ``[M, V]`` logits never exist: forward keeps only per-token ``lse`` and entropy, and
backward recomputes each chunk's logits. Peak extra memory is about
``3 * chunk_size * V * 4`` bytes, independent of M.
"""
from __future__ import annotations

import torch

from ._dispatch import check
from .head import head_logits

# Rows per chunk: aim at ~24 MiB of fp32 logits per chunk (128 rows of SmolLM2's vocabulary),
# at least 16 rows. Larger chunks run the products faster and hold more: on SmolLM2's head
# (M=1024, 2-core CPU) 16 MiB gave 0.64-0.71x the plain path's speed at 36 MB peak, 24 MiB
# 0.77-0.82x at 50 MB (0.09x the plain path's 585 MB), 32 MiB 0.90x at 68 MB (over 0.1x).
_TARGET_CHUNK_BYTES = 24 << 20


def default_chunk_size(vocab_size: int) -> int:
    return max(16, _TARGET_CHUNK_BYTES // (4 * max(1, vocab_size)))


def check_logprob_inputs(hidden, weight, targets, bias, temperature):
    check(hidden.dim() == 2, f"hidden must be [M, H]; got shape {tuple(hidden.shape)}")
    check(weight.dim() == 2, f"weight must be [V, H]; got shape {tuple(weight.shape)}")
    check(hidden.shape[1] == weight.shape[1],
          f"hidden [M, H={hidden.shape[1]}] and weight [V, H={weight.shape[1]}] disagree on H")
    check(targets.dim() == 1 and targets.shape[0] == hidden.shape[0],
          f"targets must be [M={hidden.shape[0]}]; got shape {tuple(targets.shape)}")
    check(not targets.is_floating_point(), f"targets must be integer token ids; got {targets.dtype}")
    check(targets.device == hidden.device == weight.device,
          f"hidden ({hidden.device}), weight ({weight.device}) and targets ({targets.device}) must share a device")
    check(bias is None or tuple(bias.shape) == (weight.shape[0],),
          f"bias must be [V={weight.shape[0]}]; got {None if bias is None else tuple(bias.shape)}")
    check(float(temperature) > 0.0, f"temperature must be > 0; got {temperature}")
    if targets.numel():
        lo, hi = int(targets.min()), int(targets.max())
        check(0 <= lo and hi < weight.shape[0],
              f"targets must lie in [0, V={weight.shape[0]}); got min {lo}, max {hi} (mask padding before scoring)")


def _chunk_logits(h, w, b, temperature):
    """Scaled logits of one chunk: z [c, V] fp32 (a fresh tensor: callers work on it in place,
    since each pass over a [c, V] chunk is what the CPU path pays for)."""
    z = head_logits(h.float(), w)  # [c, V]; on CPU in vocabulary slices (ops/head.py)
    if b is not None:
        z += b
    if temperature != 1.0:
        z /= temperature
    return z


def _entropy(z, lse):
    """H = lse - sum p z (natural log); one exp pass over the chunk."""
    p = torch.exp(z - lse[:, None])
    return lse - torch.einsum("cv,cv->c", p, z)  # row dots without a [c, V] product


class _SelectiveLogProbReference(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size, with_entropy):
        m = hidden.shape[0]
        w = weight.float()  # no-op when already fp32
        b = None if bias is None else bias.float()
        logp = torch.empty(m, dtype=torch.float32, device=hidden.device)  # [M]
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if with_entropy else torch.empty(0, device=hidden.device)
        for i in range(0, m, chunk_size):
            j = min(m, i + chunk_size)
            z = _chunk_logits(hidden[i:j], w, b, temperature)
            lse[i:j] = torch.logsumexp(z, dim=-1)
            logp[i:j] = z.gather(1, targets[i:j, None]).squeeze(1) - lse[i:j]
            if with_entropy:
                entropy[i:j] = _entropy(z, lse[i:j])
        ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
        ctx.temperature = temperature
        ctx.chunk_size = chunk_size
        ctx.set_materialize_grads(False)  # an unused entropy output costs nothing in backward
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        temperature, chunk_size = ctx.temperature, ctx.chunk_size
        w = weight.float()
        b = None if bias is None else bias.float()
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if grad_logp is None and grad_entropy is None:
            return (None,) * 7
        grad_h = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b else None
        m = hidden.shape[0]
        for i in range(0, m, chunk_size):
            j = min(m, i + chunk_size)
            z = _chunk_logits(hidden[i:j], w, b, temperature)
            ent = entropy[i:j] if grad_entropy is not None else None
            # d / d logits = (d / d z) / temperature: folded into the incoming gradients
            g = grad_z_(z, lse[i:j], ent, targets[i:j], _slice(grad_logp, i, j, temperature),
                        _slice(grad_entropy, i, j, temperature))
            if need_h:
                grad_h[i:j] = g @ w
            if need_w:
                grad_w.addmm_(g.T, hidden[i:j].float())
            if need_b:
                grad_b += g.sum(0)
        return (
            None if grad_h is None else grad_h.to(hidden.dtype),
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype),
            None, None, None, None,
        )


def _slice(g, i, j, temperature=1.0):
    if g is None:
        return None
    g = g[i:j].float()
    return g / temperature if temperature != 1.0 else g


def grad_z_(z, lse, entropy, targets, g_logp, g_entropy):
    """d loss / d z for scaled logits z [c, V], computed in z's storage (z is consumed); natural log.

    With p = softmax(z) and log p = z - lse: d logp_t / d z = onehot(t) - p and
    d H / d z = -p * (log p + H), so  g = onehot(t) * g_logp - p * (g_logp + (log p + H) * g_entropy).
    Two or three passes over the chunk, no [c, V] temporaries besides p when the entropy
    has a gradient.
    """
    logp = z.sub_(lse[:, None])  # log p, in place
    if g_entropy is None:
        g = logp.exp_()  # p
        if g_logp is None:
            return g.zero_()
        g.mul_(-g_logp[:, None])
    else:
        p = logp.exp()
        coef = logp.add_(entropy[:, None]).mul_(g_entropy[:, None])  # (log p + H) * g_entropy
        if g_logp is not None:
            coef.add_(g_logp[:, None])
        g = p.mul_(coef).neg_()
    if g_logp is not None:
        g.scatter_add_(1, targets[:, None], g_logp[:, None])
    return g


def selective_log_prob_reference(hidden, weight, targets, *, bias=None, temperature=1.0,
                                 return_entropy=False, chunk_size=None):
    """Per-token log-probs [M] fp32 (and entropy [M] if asked); chunked, differentiable.

    hidden [M, H], weight [V, H] (the LM head), optional bias [V], targets [M] int.
    Gradients flow to hidden, weight and bias; logits are recomputed chunk by chunk.
    """
    check_logprob_inputs(hidden, weight, targets, bias, temperature)
    chunk = int(chunk_size or default_chunk_size(weight.shape[0]))
    check(chunk > 0, f"chunk_size must be > 0; got {chunk_size}")
    logp, entropy = _SelectiveLogProbReference.apply(hidden, weight, bias, targets.long(), float(temperature), chunk,
                                                     bool(return_entropy))
    return (logp, entropy) if return_entropy else logp
