"""Rollout backends: the in-process engine, plain transformers, or vLLM, behind one
:func:`make_backend`.

``engine`` (:mod:`.engine`) and ``hf`` (:mod:`.hf`) run the policy's own parameter tensors (no
copy), so the next rollout after an optimizer step samples from the updated policy. ``vllm``
(:mod:`.vllm`) holds a copy that ``weights_updated()`` refreshes in memory after every step. All
take the engine's :class:`~mrt_engine.engine.SamplingParams` and return its
:class:`~mrt_engine.engine.GenerationOutput` (one sampling type, one output type).
"""
from __future__ import annotations

from mrt_engine.rl.backends.engine import EngineBackend
from mrt_engine.rl.backends.hf import HFBackend

__all__ = ["EngineBackend", "HFBackend", "make_backend"]


def make_backend(name, model, tokenizer, *, options: dict | None = None):
    """The backend called ``name`` (or a ``RolloutConfig``: its ``backend`` and ``vllm`` options).

    ``options``: the ``rollout.vllm`` mapping, for ``vllm`` only. vLLM is imported here, not
    at module import, so the other backends never need it.
    """
    if hasattr(name, "backend"):  # a RolloutConfig
        name, options = name.backend, (name.vllm or None) if options is None else options
    if name == "engine":
        return EngineBackend(model, tokenizer)
    if name == "hf":
        return HFBackend(model, tokenizer)
    if name == "vllm":
        from mrt_engine.rl.backends.vllm import VLLMBackend  # optional package: only this backend needs vllm

        return VLLMBackend(model, tokenizer, options=options)
    raise ValueError(f"rollout.backend={name!r}; use 'engine', 'hf' or 'vllm'")
