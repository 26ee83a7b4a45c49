"""Triton kernels of mrt_engine (``@triton.jit`` code and constexpr constants only).

Loaded lazily by ``mrt_engine.ops._kernels.load()`` (``TRITON_INTERPRET`` must be set
before the first import). Launchers, checks and autograd live in ``mrt_engine/ops/``.
"""
from .attention import (
    cascade_decode_kernel,
    grouped_paged_decode_kernel,
    merge_partials_kernel,
    paged_prefill_kernel,
    prefix_suffix_attention_kernel,
)
from .logprob import logprob_bwd_kernel, logprob_fwd_kernel, logprob_rows_bwd_kernel, logprob_rows_fwd_kernel

__all__ = ["logprob_fwd_kernel", "logprob_bwd_kernel", "logprob_rows_fwd_kernel", "logprob_rows_bwd_kernel",
           "prefix_suffix_attention_kernel", "grouped_paged_decode_kernel", "paged_prefill_kernel",
           "cascade_decode_kernel", "merge_partials_kernel"]
