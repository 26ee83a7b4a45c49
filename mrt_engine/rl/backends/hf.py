"""``rollout.backend: hf``: plain transformers ``model.generate`` on the policy's own
parameters (any causal LM; slower than the engine)."""
from __future__ import annotations

import torch

from mrt_engine.engine import GenerationOutput, SamplingParams


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
