"""Configuration dataclasses of the generator: the engine itself and one request's sampling."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mrt_engine.threads import check_num_threads


@dataclass
class SamplingParams:
    """How to sample one request (the names follow vLLM where they mean the same thing).

    ``temperature=0`` is greedy. ``seed`` makes a request reproducible whatever else is in
    the batch and whether it was preempted: sample ``i`` of a request draws its uniform at
    output position ``t`` from a counter-based hash of ``(seed, i, t)``. One ``seed`` given to
    ``generate`` for many prompts is first mixed with each prompt's tokens
    (:func:`~mrt_engine.engine.sampler.prompt_seed`), so distinct prompts draw independently
    and the same prompt with the same seed still gives the same completions (vLLM instead
    gives every prompt the seed itself; our vLLM backend mixes it the same way). With ``seed=None``
    a seed is drawn from torch's global RNG when the request is submitted, so
    ``torch.manual_seed`` makes whole runs reproducible.

    ``logprobs=True`` returns, per sampled token, its log-probability under the model's raw
    distribution (``log_softmax`` of the logits, before temperature/top-k/top-p), which is
    what a plain forward of the model gives and what the trainer scores.

    ``stop`` strings end a sample when its decoded text contains one; the returned text is
    cut before the stop string (the token ids keep the token that completed it).
    The tokenizer's EOS id always stops a sample unless ``ignore_eos=True``.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    ignore_eos: bool = False

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"SamplingParams.n={self.n!r}: need an int >= 1 samples per prompt")
        if not (self.temperature >= 0.0):  # also rejects NaN
            raise ValueError(f"SamplingParams.temperature={self.temperature!r}: need >= 0 (0 means greedy)")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"SamplingParams.top_p={self.top_p!r}: need 0 < top_p <= 1 (1 disables it)")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k={self.top_k!r}: need an int >= 0 (0 disables it)")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens={self.max_tokens!r}: need an int >= 1")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"SamplingParams.stop={self.stop!r}: stop strings must be non-empty str")
        self.stop_token_ids = tuple(int(t) for t in self.stop_token_ids)
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"SamplingParams.seed={self.seed!r}: need an int or None")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class EngineConfig:
    """Sizes of the generator.

    ``num_blocks=None`` sizes the KV cache from ``kv_cache_bytes`` (2 GiB by default; the
    pages are only touched when used). ``max_num_batched_tokens`` is the token budget of
    one step (prefill chunks are cut to fit it); ``max_num_seqs`` caps the decode batch.
    """

    block_size: int = 16
    num_blocks: int | None = None
    kv_cache_bytes: int = 2 << 30
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 4096
    max_model_len: int | None = None  # None: the model's max_position_embeddings
    enable_prefix_caching: bool = True
    cascade: bool = True  # read each forked group's shared blocks once per decode step
    # attention: "ops" (decode: cascade through mrt_engine.ops; prefill: ops.paged_prefill_attention,
    # one launch per layer; Triton on CUDA), "torch" (the cascade reference), "sdpa" (flat decode
    # and per-chunk prefill on fused SDPA: the fastest on CPU); "auto" = ops on CUDA, sdpa on CPU
    attention_backend: str = "auto"
    # "ops" where Triton runs: each decode step's cascade as one launch over a host-built,
    # load-balanced work list plus one merge launch (ops.plan_cascade_work), instead of a
    # grouped shared pass, a tail pass and torch merges; off until a GPU run measures it
    cascade_work_list: bool = False
    # CPU threads of a generate call: "auto" = torch's setting lowered to the cores idle when
    # the call starts (a second job on the machine must not collapse us), an int, or None
    # (leave torch's setting); see mrt_engine/threads.py. Ignored on CUDA.
    num_threads: int | str | None = "auto"

    def __post_init__(self):
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size={self.block_size!r}: need an int >= 1 (16 is usual)")
        if self.num_blocks is not None and (not isinstance(self.num_blocks, int) or self.num_blocks < 2):
            raise ValueError(f"num_blocks={self.num_blocks!r}: need an int >= 2 or None to size from kv_cache_bytes")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs={self.max_num_seqs!r}: need >= 1")
        if self.max_num_batched_tokens < 1:
            raise ValueError(f"max_num_batched_tokens={self.max_num_batched_tokens!r}: need >= 1")
        check_num_threads(self.num_threads, "EngineConfig.num_threads")
        if self.attention_backend not in ("auto", "torch", "ops", "sdpa"):
            raise ValueError(f"attention_backend={self.attention_backend!r}: use 'auto', 'torch', 'ops' or 'sdpa'")

    def resolve_num_blocks(self, num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        if self.num_blocks is not None:
            return self.num_blocks
        itemsize = torch.empty(0, dtype=dtype).element_size()
        per_block = 2 * num_layers * self.block_size * num_kv_heads * head_dim * itemsize
        return max(2, self.kv_cache_bytes // per_block)
