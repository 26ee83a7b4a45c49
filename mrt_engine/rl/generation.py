"""Generation on the live policy weights: the in-process engine, or plain transformers.

Both backends run the policy's own parameter tensors (no copy), so the next rollout after an
optimizer step samples from the updated policy. Both take the engine's
:class:`~mrt_engine.engine.SamplingParams` and return its
:class:`~mrt_engine.engine.GenerationOutput` (one sampling type, one output type).
"""
from __future__ import annotations

import torch

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


class HFBackend:
    """``model.generate`` with left padding (any transformers causal LM; slower)."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def shares_weights_with(self, model) -> bool:
        return self.model is model

    def weights_updated(self) -> None:
        pass

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], s: SamplingParams) -> list[list[GenerationOutput]]:
        """Only ``n``, ``max_tokens``, ``temperature``, ``top_p`` and ``seed`` of ``s`` apply here."""
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = self.model.get_input_embeddings().weight.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # [B, T] left padded
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            attn[i, width - len(p):] = 1
        greedy = s.temperature == 0
        kwargs = dict(max_new_tokens=s.max_tokens, do_sample=not greedy, num_return_sequences=s.n,
                      pad_token_id=pad, eos_token_id=tok.eos_token_id)
        if not greedy:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=0)
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if s.seed is not None:
                torch.manual_seed(s.seed)
            out = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs)
        self.model.train(was_training)
        new = out[:, width:].tolist()
        result = []
        for i in range(len(prompts)):
            group = []
            for row in new[i * s.n:(i + 1) * s.n]:
                finish = "length"
                if tok.eos_token_id in row:
                    row = row[:row.index(tok.eos_token_id) + 1]
                    finish = "stop"
                text = tok.decode([t for t in row if t != tok.eos_token_id], skip_special_tokens=False)
                group.append(GenerationOutput(list(prompts[i]), row, text, None, finish))
            result.append(group)
        return result


def make_backend(name: str, model, tokenizer):
    if name == "engine":
        return EngineBackend(model, tokenizer)
    if name == "hf":
        return HFBackend(model, tokenizer)
    raise ValueError(f"rollout.backend={name!r}; use 'engine' or 'hf'")
