"""Kernels and their torch references.

Every op ``<op>`` dispatches on device (CUDA -> Triton kernel, CPU -> a torch path: the
fused-SDPA ``prefix_suffix_attention_sdpa`` for scoring, the pure-torch reference for the
rest; ``backend="triton"|"torch"`` forces the kernel or the reference) and has
``<op>_reference`` with the same signature (fp32 accumulate, natural-log LSE). Planning (index tensors built once per step)
is in ``mrt_engine.ops.plan``. See docs/kernels.md.
"""
from ._dispatch import triton_on_cpu
from .attention import branch_decode_attention, paged_decode_attention, paged_prefill_attention, prefix_suffix_attention
from .attention_sdpa import paged_decode_attention_sdpa, prefix_suffix_attention_sdpa
from .attention_ref import (
    branch_decode_attention_reference,
    branch_decode_attention_with_lse,
    paged_decode_attention_reference,
    paged_decode_attention_with_lse,
    paged_prefill_attention_reference,
    paged_prefill_attention_with_lse,
    prefix_suffix_attention_reference,
    prefix_suffix_attention_with_lse,
)
from .attention_tree import (
    TreeAttentionPlan,
    plan_tree_attention,
    tree_attention,
    tree_attention_reference,
    tree_attention_sdpa,
)
from .logprob import selective_log_prob
from .logprob_ref import selective_log_prob_reference
from .merge import merge_state, merge_states
from .plan import CascadeWork, DecodePlan, ScoringPlan, plan_cascade_work, plan_decode, plan_scoring

__all__ = [
    "selective_log_prob", "selective_log_prob_reference",
    "prefix_suffix_attention", "prefix_suffix_attention_reference", "prefix_suffix_attention_sdpa", "paged_decode_attention_sdpa", "prefix_suffix_attention_with_lse",
    "paged_decode_attention", "paged_decode_attention_reference", "paged_decode_attention_with_lse",
    "paged_prefill_attention", "paged_prefill_attention_reference", "paged_prefill_attention_with_lse",
    "branch_decode_attention", "branch_decode_attention_reference", "branch_decode_attention_with_lse",
    "merge_state", "merge_states",
    "tree_attention", "tree_attention_reference", "tree_attention_sdpa", "TreeAttentionPlan", "plan_tree_attention",
    "ScoringPlan", "DecodePlan", "plan_scoring", "plan_decode", "CascadeWork", "plan_cascade_work", "triton_on_cpu",
]
