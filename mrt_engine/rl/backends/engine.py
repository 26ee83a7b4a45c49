"""``rollout.backend: engine``: the in-process :class:`mrt_engine.engine.Generator` on the
policy's own parameter tensors (no copy), so the rollout after an optimizer step samples from
the updated policy."""
from __future__ import annotations

from mrt_engine.engine import GenerationOutput, Generator, SamplingParams


class EngineBackend:
    """:class:`mrt_engine.engine.Generator` (paged KV cache, continuous batching)."""

    def __init__(self, model, tokenizer, **engine_kwargs):
        self.generator = Generator(model, tokenizer, **engine_kwargs)
        self.tokenizer = tokenizer

    def shares_weights_with(self, model) -> bool:
        fwd = self.generator.forward
        return fwd.embed_tokens.weight is model.get_input_embeddings().weight

    def weights_updated(self) -> None:
        """Cached prefix KV was computed with the old weights: drop it after every update."""
        self.generator.reset_prefix_cache()

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[GenerationOutput]]:
        return self.generator.generate(prompts, params)
