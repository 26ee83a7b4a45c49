"""Triton kernels of mrt_engine (``@triton.jit`` code and constexpr constants only).

Installed as ``mrt_engine.kernels``; from a checkout, ``mrt_engine.ops._kernels.load()``
loads this directory under that name. Launchers, checks and autograd live in
``mrt_engine/ops/``.
"""
from .attention import grouped_paged_decode_kernel, prefix_suffix_attention_kernel
from .logprob import logprob_bwd_kernel, logprob_fwd_kernel, logprob_rows_bwd_kernel, logprob_rows_fwd_kernel

__all__ = ["logprob_fwd_kernel", "logprob_bwd_kernel", "logprob_rows_fwd_kernel", "logprob_rows_bwd_kernel",
           "prefix_suffix_attention_kernel", "grouped_paged_decode_kernel"]
