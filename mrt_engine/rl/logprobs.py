"""Per-token log-probs under a causal LM, through the fused selective log-prob (never
materialises ``[tokens, vocab]`` logits): of a padded batch (:func:`token_log_probs`), or of
the same rows packed as prefix trees (:func:`tree_log_probs`, every shared prefix once)."""
from __future__ import annotations

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from mrt_engine.ops import selective_log_prob, tree_attention
from mrt_engine.rl.packing import TreeBatch


def _selective_log_prob(hidden, weight, targets, *, temperature=1.0, bias=None):
    return selective_log_prob(hidden, weight, targets, bias=bias, temperature=temperature)


def token_log_probs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor, *,
                    temperature: float = 1.0) -> torch.Tensor:
    """``logp[i, t] = log p(input_ids[i, t] | input_ids[i, :t])`` where ``loss_mask[i, t]``, else 0.

    ``input_ids, attention_mask, loss_mask [N, T]`` (right padded; ``loss_mask[:, 0]`` must be 0
    since the first token has no context). Returns fp32 ``[N, T]``; differentiable w.r.t. the
    model's parameters. Only the masked rows go through the LM head.
    """
    if input_ids.shape != attention_mask.shape or input_ids.shape != loss_mask.shape:
        raise ValueError("input_ids, attention_mask and loss_mask must share one [N, T] shape")
    if bool(loss_mask[:, 0].any()):
        raise ValueError("loss_mask[:, 0] must be 0: the first token has no context to predict it from")
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [N, T, H]
    select = loss_mask[:, 1:].bool()                      # [N, T-1]: position t predicts t+1
    rows = hidden[:, :-1][select]                         # [M, H]
    targets = input_ids[:, 1:][select]                    # [M]
    head = model.get_output_embeddings()
    logp_rows = _selective_log_prob(rows, head.weight, targets, temperature=temperature,
                                    bias=getattr(head, "bias", None))  # [M] fp32
    out = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    out_tail = out[:, 1:].masked_scatter(select, logp_rows)
    return torch.cat([out[:, :1], out_tail], dim=1)


# -- prefix-tree packed rows ---------------------------------------------------------------------
#: Attention implementations named ``mrt_tree_<inner>``: a call that carries a tree plan runs
#: ``ops.tree_attention``; every other call goes to ``<inner>``, the model's own implementation.
TREE_ATTENTION_PREFIX = "mrt_tree_"


def use_tree_attention(model) -> None:
    """Let ``model``'s attention layers run prefix-tree calls (transformers' registered-attention
    mechanism; idempotent). Calls without a tree plan still run the model's implementation, with
    its own masks: generation, padded log-probs and gradient-checkpoint recomputes are unchanged.
    ``eager`` becomes ``sdpa`` (the same attention; eager's function is private to each model file)."""
    inner = model.config._attn_implementation or "sdpa"
    if inner.startswith(TREE_ATTENTION_PREFIX):
        return
    inner = "sdpa" if inner == "eager" else inner
    if inner not in ALL_ATTENTION_FUNCTIONS._global_mapping:
        raise NotImplementedError(f"attn_implementation={inner!r}: packing 'tree' wraps sdpa, eager, flash or flex "
                                  "attention; use optim.packing: padded")
    name = TREE_ATTENTION_PREFIX + inner
    if name not in ALL_ATTENTION_FUNCTIONS._global_mapping:
        ALL_ATTENTION_FUNCTIONS.register(name, _tree_or(inner))
        if inner in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
            ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner])
    model.set_attn_implementation(name)


def _tree_or(inner: str):
    def attention(module, query, key, value, attention_mask, *args, tree_attention_plan=None, **kwargs):
        if tree_attention_plan is None:
            return ALL_ATTENTION_FUNCTIONS[inner](module, query, key, value, attention_mask, *args, **kwargs)
        if kwargs.get("dropout") or kwargs.get("sliding_window") or kwargs.get("softcap"):
            raise NotImplementedError("tree-packed attention has no dropout, sliding window or soft-capping: "
                                      "use optim.packing: padded for this model")
        scale = kwargs.get("scaling") or query.shape[-1] ** -0.5
        out = tree_attention(query[0], key[0], value[0], plan=tree_attention_plan, scale=scale)  # [Hq, L, D]
        return out.transpose(0, 1)[None], None  # [1, L, Hq, D], as transformers' attention returns it

    return attention


def tree_log_probs(model, tree: TreeBatch, *, temperature: float = 1.0) -> torch.Tensor:
    """:func:`token_log_probs` of the rows ``tree`` packs, from one pass over its packed tokens.

    Returns fp32 ``[tree.num_rows, tree.width]`` (the layout of ``Batch.rows``), 0 off the trained
    tokens; differentiable w.r.t. the model's parameters. The model's own decoder layers run on
    ``[1, L]`` packed tokens with the tree's position ids; attention goes through
    :func:`use_tree_attention`. The 4-D placeholder mask makes transformers skip building one.
    """
    use_tree_attention(model)
    device = tree.input_ids.device
    decoder = model.get_decoder()
    hidden = decoder(input_ids=tree.input_ids[None], position_ids=tree.position_ids[None],
                     attention_mask=torch.ones((1, 1, 1, 1), dtype=torch.bool, device=device), use_cache=False,
                     tree_attention_plan=tree.attention).last_hidden_state[0]  # [L, H]
    head = model.get_output_embeddings()
    logp_rows = _selective_log_prob(hidden.index_select(0, tree.pred_index), head.weight, tree.targets,
                                    temperature=temperature, bias=getattr(head, "bias", None))  # [M] fp32
    out = torch.zeros((tree.num_rows, tree.width), dtype=torch.float32, device=device)
    return out.index_put((tree.out_rows, tree.out_cols), logp_rows)
