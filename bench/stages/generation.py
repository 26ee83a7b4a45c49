"""Stage 1: trace generation, our ``Generator`` vs HF ``generate`` vs vLLM (when installed).

Every sample runs to exactly ``gen_max_tokens`` tokens (EOS ignored), so all make the same
number of tokens and the speed-up is the ratio of medians.
"""
from __future__ import annotations

import torch

from bench.common.flops import generation_counts
from bench.common.results import Result
from bench.common.traces import PROBLEMS, chat_prompt_ids
from mrt_engine.engine import Generator, SamplingParams

from .base import Context, measure, reset_prefix_cache, unavailable

TEMPERATURE = 0.7


def hf_generate_fn(model, tokenizer, prompts: list[list[int]], *, n: int, max_tokens: int, temperature: float,
                   device, seed: int):
    """Plain transformers ``generate``: left-padded batch, num_return_sequences=n, exact length."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # [B, W] left-padded
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)

    @torch.no_grad()
    def call():
        torch.manual_seed(seed)
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_p=1.0,
                             top_k=0, max_new_tokens=max_tokens, min_new_tokens=max_tokens, num_return_sequences=n,
                             pad_token_id=pad)
        return out[:, width:]
    return call


def stage_generation(ctx: Context) -> list[Result]:
    stage = ctx.label("generation")
    w = ctx.workload
    prompts = [chat_prompt_ids(ctx.tokenizer, PROBLEMS[i % len(PROBLEMS)][0]) for i in range(w.gen_num_prompts)]
    n, new, temp = w.gen_n, w.gen_max_tokens, TEMPERATURE
    num_tokens = len(prompts) * n * new
    flops, nbytes = generation_counts(ctx.dims, [len(p) for p in prompts], n, new, ctx.dtype_bytes)
    work = f"{len(prompts)} prompts x n={n} x {new} new tokens (EOS ignored), T={temp}"
    common = dict(num_tokens=num_tokens, num_episodes=len(prompts) * n, flops=flops, min_flops=flops,
                  min_bytes=nbytes, workload=work)
    cases = {"HF generate": ("baseline", hf_generate_fn(ctx.model, ctx.tokenizer, prompts, n=n, max_tokens=new,
                                                        temperature=temp, device=ctx.device, seed=0))}
    meta = {"HF generate": dict(common)}
    before = {}  # every timed call starts with empty prefix caches (ours and vLLM's)
    missing = []
    gen = Generator(ctx.model, ctx.tokenizer)
    params = SamplingParams(n=n, max_tokens=new, temperature=temp, seed=0, ignore_eos=True)
    cases["engine Generator"] = ("ours", lambda: gen.generate(prompts, params))
    meta["engine Generator"] = dict(common)
    before["engine Generator"] = lambda: reset_prefix_cache(gen)
    if ctx.vllm is not None:
        def vllm_call():
            rep = ctx.vllm.generate(prompts, n=n, max_tokens=new, temperature=temp, ignore_eos=True,
                                    seeds=list(range(len(prompts))))
            if rep["num_tokens"] != num_tokens:
                raise RuntimeError(f"vLLM generated {rep['num_tokens']} tokens, expected {num_tokens}")
        cases["vLLM"] = ("baseline", vllm_call)
        meta["vLLM"] = dict(common, note="subprocess, prefix caching on")
        before["vLLM"] = ctx.vllm.reset_prefix_cache
    else:
        missing.append(unavailable(stage, "vLLM", "baseline", ctx.vllm_reason, workload=work))
    ctx.bar.set_description(stage)
    return measure(ctx, stage, cases, meta, before) + missing
