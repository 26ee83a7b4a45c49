#!/usr/bin/env python
"""The headline benchmark: the whole MRT workload, stage by stage, each against its baselines.

    python bench/throughput.py                 # embedded default model(s), all stages
    python bench/throughput.py --quick         # tiny model, tiny workloads (CI smoke run)
    python bench/throughput.py --stage logprob --repeats 5 --device cuda

Stages (each measured against its baselines in the same run, interleaved, medians):
  1 generation  trace generation: our Generator vs HF ``generate`` vs vLLM (when installed)
  2 score       progress estimation, score mode: fast vs naive (re-prefill every prefix)
  3 sample      progress estimation, sample mode: fast vs naive vs vLLM with prefix caching
  4 logprob     policy log-prob + loss + backward: fused selective log-prob vs
                ``log_softmax(x @ W.T).gather``, with peak memory (LM head alone, then the
                whole policy forward + backward)
  5 step        one whole MRT training step, and the share of its time each part takes

A stage whose component (or baseline) is not installed says so in its row (status
``unavailable``) instead of failing the run. Workload sizes, with their FLOP and byte
counts, are in ``docs/benchmarks.md``; each row also carries the FLOPs and bytes it must
do and its time over the floor (the larger of FLOPs/peak and bytes/bandwidth).

Outputs go to ``--out`` (default ``runs/throughput/``): ``throughput.csv`` (one row per
stage and method, machine/versions/dtype/device on every row), ``throughput.png`` (bar
chart of the ratios) and ``throughput.md`` (the table as Markdown).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))          # bench/harness.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # mrt_engine from a checkout

import harness as H  # noqa: E402
from harness import ERROR, OK, UNAVAILABLE, Result  # noqa: E402

STAGES = ("generation", "score", "sample", "logprob", "step")
STAGE_ALIASES = {str(i + 1): s for i, s in enumerate(STAGES)}

# A randomly initialised model with the shapes of DeepSeek-R1-Distill-Qwen-1.5B (its Qwen2
# config), for the GPU default: the timings of a 1.5B reasoner without downloading one.
R1_1P5B_SHAPES = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072,
    rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False)
RANDOM_MODELS = {"r1-1.5b-shapes": R1_1P5B_SHAPES}


# -- workload sizes -----------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """Sizes of every stage's inputs. ``docs/benchmarks.md`` lists them with FLOP/byte counts."""

    # 1 generation: num_prompts prompts, n samples each, exactly max_tokens new tokens each
    gen_num_prompts: int = 4
    gen_n: int = 4
    gen_max_tokens: int = 64
    # 2/3 progress: one synthetic R1-style trace of about trace_tokens tokens, num_episodes episodes
    trace_tokens: int = 1024
    num_episodes: int = 16
    num_traces: int = 1
    # 3 sample mode: num_samples answers of max_answer_tokens tokens at every cut
    sample_trace_tokens: int = 512
    sample_num_episodes: int = 8
    num_samples: int = 4
    max_answer_tokens: int = 16
    # 4 logprob: M = logprob_tokens rows through the LM head; the policy pass runs
    # policy_batch sequences of policy_seq_len tokens through the whole model
    logprob_tokens: int = 1024
    policy_batch: int = 2
    policy_seq_len: int = 512
    # 5 step: one MRT step over step_num_prompts prompts x step_n rollouts
    step_num_prompts: int = 2
    step_n: int = 2
    step_max_tokens: int = 64
    step_max_cuts: int = 3
    step_num_branches: int = 2
    step_answer_tokens: int = 8

    def __post_init__(self):
        for name, value in self.__dict__.items():
            if value < 1:
                raise ValueError(f"Workload.{name} must be >= 1, got {value}")
        if self.num_episodes > self.trace_tokens // 8 or self.sample_num_episodes > self.sample_trace_tokens // 8:
            raise ValueError("episodes need at least ~8 tokens each: lower num_episodes or raise trace_tokens")


QUICK = Workload(gen_num_prompts=2, gen_n=2, gen_max_tokens=8, trace_tokens=160, num_episodes=4,
                 sample_trace_tokens=160, sample_num_episodes=4, num_samples=2, max_answer_tokens=4,
                 logprob_tokens=64, policy_batch=2, policy_seq_len=32, step_num_prompts=2, step_n=2,
                 step_max_tokens=8, step_max_cuts=2, step_num_branches=2, step_answer_tokens=4)
DEFAULT_CPU = Workload()
DEFAULT_CUDA = Workload(gen_num_prompts=32, gen_n=8, gen_max_tokens=256, trace_tokens=4096, num_episodes=32,
                        num_traces=8, sample_trace_tokens=4096, sample_num_episodes=16, num_samples=8,
                        max_answer_tokens=32, logprob_tokens=8192, policy_batch=4, policy_seq_len=2048,
                        step_num_prompts=8, step_n=4, step_max_tokens=256, step_max_cuts=6, step_num_branches=4,
                        step_answer_tokens=32)


@dataclass
class Context:
    """What every stage needs; built once per model."""

    model_name: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    workload: Workload
    repeats: int
    warmup: int
    bar: object
    vllm: "H.VLLMWorker | None" = None
    vllm_reason: str = ""
    step_shares: dict = field(default_factory=dict)   # {model: {phase: fraction of the step}}
    step_phase_s: dict = field(default_factory=dict)  # {model: {phase: median seconds}}

    @property
    def dims(self) -> H.ModelDims:
        return H.ModelDims.from_config(self.model.config)

    @property
    def dtype_bytes(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    def label(self, stage: str) -> str:
        return f"{stage} [{self.model_name}]"


# -- helpers shared by the stages ---------------------------------------------------------

def unavailable(stage: str, method: str, role: str, why: str, *, workload: str = "") -> Result:
    return Result(stage=stage, method=method, role=role, status=UNAVAILABLE, reason=why, workload=workload)


def import_or_reason(what: str):
    """(object, None) if ``module:attr`` imports, else (None, one-line reason)."""
    module, _, attr = what.partition(":")
    try:
        mod = importlib.import_module(module)
        return (getattr(mod, attr) if attr else mod), None
    except Exception as exc:  # noqa: BLE001 - any import failure makes the component unavailable
        return None, f"{what} not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def reset_prefix_cache(generator) -> None:
    """Start the next call cold: forget the engine's cached prefix blocks."""
    if generator is not None:
        generator.reset_prefix_cache()


def measure(ctx: Context, stage: str, cases: dict[str, tuple[str, callable]], meta: dict[str, dict],
            before: dict[str, callable] | None = None) -> list[Result]:
    """Run ``cases`` {method: (role, fn)} interleaved; one Result per method.

    ``meta[method]`` holds Result fields (num_tokens, flops, ...). A case that raises gets
    status ``error`` with the exception, and the others are still measured.
    """
    errors: dict[str, str] = {}

    def on_error(name, exc):
        errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        ctx.bar.write(f"[{stage}] {name} raised:\n{traceback.format_exc(limit=4)}")

    def on_step(name):
        ctx.bar.set_postfix_str(f"{stage}: {name}")
        ctx.bar.update(1)

    times = H.run_interleaved({m: fn for m, (_, fn) in cases.items()}, repeats=ctx.repeats, warmup=ctx.warmup,
                              device=ctx.device, on_step=on_step, on_error=on_error, before=before)
    out = []
    for method, (role, _) in cases.items():
        r = Result(stage=stage, method=method, role=role, times_s=times[method], **meta.get(method, {}))
        if method in errors:
            r.status, r.reason, r.times_s = ERROR, errors[method], []
        out.append(r)
    return out


def bar_steps(num_cases: int, ctx: Context) -> int:
    return num_cases * (ctx.repeats + ctx.warmup)


# -- stage 4: policy log-prob + loss + backward -------------------------------------------

def plain_logprob(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The usual path: materialise [M, V] logits, fp32 log_softmax, gather the targets."""
    logits = hidden @ weight.T  # [M, V]
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)  # [M]


def pg_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Token-level policy-gradient loss, the same on both sides of the comparison."""
    return -(advantages * logp).sum() / logp.numel()


def stage_logprob(ctx: Context) -> list[Result]:
    stage = ctx.label("logprob")
    selective_log_prob, why = import_or_reason("mrt_engine.ops:selective_log_prob")
    dims, M = ctx.dims, ctx.workload.logprob_tokens
    V, Hd = dims.vocab_size, dims.hidden_size
    g = torch.Generator(device="cpu").manual_seed(0)
    # The LM head as the policy sees it (a copy, so the model's own weights stay untouched).
    weight = ctx.model.lm_head.weight.detach().clone().requires_grad_(True)  # [V, H]
    hidden = (torch.randn(M, Hd, generator=g) * 1.0).to(ctx.device, ctx.dtype).requires_grad_(True)  # [M, H]
    targets = torch.randint(0, V, (M,), generator=g).to(ctx.device)  # [M]
    adv = torch.randn(M, generator=g).to(ctx.device)  # [M]

    def run(logprob_fn):
        def call():
            hidden.grad = None
            weight.grad = None
            pg_loss(logprob_fn(hidden, weight, targets), adv).backward()
        return call

    flops = H.logprob_loss_flops(M, Hd, V)
    head_work = f"M={M} rows, H={Hd}, V={V}, {str(ctx.dtype).replace('torch.', '')}"
    cases = {"plain log_softmax.gather": ("baseline", run(plain_logprob))}
    meta = {"plain log_softmax.gather": dict(
        num_tokens=M, flops=flops, workload=head_work,
        min_bytes=H.logprob_loss_bytes(M, Hd, V, ctx.dtype_bytes, materialise_logits=False),
        note="bytes of the materialised path: %.3g" % H.logprob_loss_bytes(M, Hd, V, ctx.dtype_bytes,
                                                                           materialise_logits=True))}
    results = []
    if selective_log_prob is None:
        results.append(unavailable(stage + " head", "fused selective_log_prob", "ours", why, workload=head_work))
    else:
        cases["fused selective_log_prob"] = ("ours", run(lambda h, w, t: selective_log_prob(h, w, t)))
        meta["fused selective_log_prob"] = dict(num_tokens=M, flops=flops, workload=head_work,
                                                min_bytes=meta["plain log_softmax.gather"]["min_bytes"])
    ctx.bar.set_description(f"{stage} head")
    with torch.enable_grad():
        peaks = {m: H.measure_peak_memory(fn, ctx.device) for m, (_, fn) in cases.items()}
        measured = measure(ctx, stage + " head", cases, meta)
    for r in measured:
        r.peak_mem_bytes = peaks.get(r.method)
    results = measured + results

    results += stage_policy_pass(ctx, stage, selective_log_prob, why)
    return results


def stage_policy_pass(ctx: Context, stage: str, selective_log_prob, why: str | None) -> list[Result]:
    """The whole policy forward + backward over B x T tokens, head fused or plain."""
    w = ctx.workload
    B, T = w.policy_batch, w.policy_seq_len
    model, dims = ctx.model, ctx.dims
    g = torch.Generator(device="cpu").manual_seed(1)
    vocab = min(dims.vocab_size, len(ctx.tokenizer))
    input_ids = torch.randint(0, vocab, (B, T), generator=g).to(ctx.device)  # [B, T]
    adv = torch.randn(B * (T - 1), generator=g).to(ctx.device)  # [B*(T-1)]
    body = getattr(model, "model", None)
    if body is None or not hasattr(model, "lm_head"):
        return [unavailable(stage + " policy", "both", "ours", f"{type(model).__name__} has no .model/.lm_head")]
    params = [p for p in model.parameters()]
    was_requires = [p.requires_grad for p in params]

    def run(head_fn):
        def call():
            model.zero_grad(set_to_none=True)
            hidden = body(input_ids=input_ids).last_hidden_state[:, :-1].reshape(-1, dims.hidden_size)  # [B*(T-1), H]
            targets = input_ids[:, 1:].reshape(-1)  # [B*(T-1)]
            pg_loss(head_fn(hidden, model.lm_head.weight, targets), adv).backward()
        return call

    num_rows = B * (T - 1)
    flops = 3 * H.forward_flops(dims, num_tokens=B * T, attention_pairs=B * H.attention_pairs_causal(T),
                                lm_head_tokens=num_rows)
    min_bytes = 3.0 * dims.weight_params * ctx.dtype_bytes  # read weights fwd + bwd, write grads
    work = f"{B} x {T} tokens, whole model fwd+bwd"
    cases = {"plain log_softmax.gather": ("baseline", run(plain_logprob))}
    meta = {"plain log_softmax.gather": dict(num_tokens=B * T, flops=flops, min_bytes=min_bytes, workload=work)}
    results = []
    if selective_log_prob is None:
        results.append(unavailable(stage + " policy", "fused selective_log_prob", "ours", why, workload=work))
    else:
        cases["fused selective_log_prob"] = ("ours", run(lambda h, wt, t: selective_log_prob(h, wt, t)))
        meta["fused selective_log_prob"] = dict(meta["plain log_softmax.gather"])
    ctx.bar.set_description(f"{stage} policy")
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            peaks = {m: H.measure_peak_memory(fn, ctx.device) for m, (_, fn) in cases.items()}
            measured = measure(ctx, stage + " policy", cases, meta)
    finally:
        model.zero_grad(set_to_none=True)
        for p, req in zip(params, was_requires):
            p.requires_grad_(req)
    for r in measured:
        r.peak_mem_bytes = peaks.get(r.method)
    return measured + results


# -- workload inputs ---------------------------------------------------------------------

PROBLEMS = [("What is 17 * 23?", "391"), ("What is 144 / 12 + 5?", "17"), ("What is 2^10 - 24?", "1000"),
            ("What is 35 + 48 * 2?", "131"), ("What is 999 - 123?", "876"), ("What is 13 * 13?", "169"),
            ("What is 81 / 9 * 7?", "63"), ("What is 256 + 512?", "768")]
_FILLER = ("Let me write the numbers out carefully and keep track of each partial result as I go. ",
           "I will double-check the carry in each column before moving on to the next step. ",
           "Splitting the product into tens and units makes the arithmetic easier to verify. ")


def chat_prompt_ids(tokenizer, problem: str) -> list[int]:
    """The problem under the model's chat template, assistant turn open (no doubled BOS)."""
    messages = [{"role": "user", "content": problem + " Put the final answer in \\boxed{}."}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = messages[0]["content"] + "\n"
    return list(tokenizer.encode(text, add_special_tokens=False))


def make_trace(tokenizer, *, num_tokens: int, num_episodes: int, answer: str) -> str:
    """A synthetic R1-style trace of about ``num_tokens`` tokens and ``num_episodes`` episodes.

    Each episode is three paragraphs (the R1 rule skips a "Wait" paragraph within two
    paragraphs of the previous boundary), episodes after the first open with "Wait,", and
    filler sentences pad every paragraph to the token budget. The last one boxes the answer.
    """
    per_paragraph = max(1, num_tokens // (3 * num_episodes))
    paragraphs = []
    for e in range(num_episodes):
        heads = ["Wait, let me recompute this another way." if e else "Let me work this out step by step.",
                 f"Step {e + 1}: the partial results so far are consistent.",
                 f"So the answer is \\boxed{{{answer}}}." if e == num_episodes - 1 else "That settles this part."]
        for k, head in enumerate(heads):
            sentences = [head]
            while len(tokenizer.encode(" ".join(sentences), add_special_tokens=False)) < per_paragraph:
                filler = _FILLER[(e + k + len(sentences)) % len(_FILLER)].strip()
                # keep the opening word first (the R1 rule reads it) and the boxed answer last
                sentences.insert(0 if k == 2 else len(sentences), filler)
            paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def progress_inputs(ctx: Context, *, trace_tokens: int, num_episodes: int):
    """(problems, traces, answers) for ``num_traces`` traces, one problem each."""
    problems, traces, answers = [], [], []
    for i in range(ctx.workload.num_traces):
        problem, answer = PROBLEMS[i % len(PROBLEMS)]
        problems.append(problem + " Put the final answer in \\boxed{}.")
        traces.append(make_trace(ctx.tokenizer, num_tokens=trace_tokens, num_episodes=num_episodes, answer=answer))
        answers.append(answer)
    return problems, traces, answers


# -- stage 1: trace generation ------------------------------------------------------------

def generation_counts(dims: H.ModelDims, prompt_lens: list[int], n: int, new_tokens: int, dtype_bytes: int):
    """(FLOPs, fewest bytes) of sampling ``n`` x ``new_tokens`` tokens after each prompt.

    Prompts are prefilled once (shared by their n samples); each decode step reads the
    weights once for the whole batch and the KV of every context, a prompt's KV once per
    group (cascade) and each sample's own tail per sample.
    """
    prefill = sum(H.forward_flops(dims, num_tokens=p, attention_pairs=H.attention_pairs_causal(p), lm_head_tokens=1)
                  for p in prompt_lens)
    decode_tokens = len(prompt_lens) * n * new_tokens
    pairs = sum(n * (new_tokens * p + new_tokens * (new_tokens + 1) // 2) for p in prompt_lens)
    decode = H.forward_flops(dims, num_tokens=decode_tokens, attention_pairs=pairs, lm_head_tokens=decode_tokens)
    kv_read = sum(new_tokens * p + n * new_tokens * (new_tokens - 1) // 2 for p in prompt_lens)
    nbytes = H.decode_bytes(dims, num_steps=new_tokens, kv_tokens_read=kv_read, dtype_bytes=dtype_bytes)
    return prefill + decode, nbytes


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
    n, new, temp = w.gen_n, w.gen_max_tokens, 0.7
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
    Generator, why = import_or_reason("mrt_engine.engine:Generator")
    if Generator is None:
        missing.append(unavailable(stage, "engine Generator", "ours", why, workload=work))
    else:
        from mrt_engine.engine import SamplingParams

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


# -- stages 2 and 3: progress estimation --------------------------------------------------

def score_counts(dims: H.ModelDims, items) -> tuple[float, float, float]:
    """(fast FLOPs, naive FLOPs, fewest bytes) of scoring mode over prepared items.

    Fast: prompt + trace prefilled once; per cut, the suffix and answer tokens attend the
    prefix and themselves, LM head on the answer rows. Naive: every cut re-encodes
    prompt + prefix + suffix + answer, LM head on every row (a plain HF forward).
    """
    fast = naive = 0.0
    nbytes = 0.0
    for it in items:
        base = len(it.prompt_ids) + len(it.trace_ids)
        fast += H.forward_flops(dims, num_tokens=base, attention_pairs=H.attention_pairs_causal(base), lm_head_tokens=0)
        for c in range(it.num_cuts):
            ctx_len = it.context_len(c)
            for ans in it.answer_ids:
                tail = len(it.suffix_ids[c]) + len(ans)
                fast += H.forward_flops(dims, num_tokens=tail, attention_pairs=H.attention_pairs_causal(tail, ctx_len),
                                        lm_head_tokens=len(ans))
                total = ctx_len + tail
                naive += H.forward_flops(dims, num_tokens=total, attention_pairs=H.attention_pairs_causal(total),
                                         lm_head_tokens=len(ans) + 1)
        nbytes += dims.weight_params * 4  # weights read at least once (compute-bound: negligible)
    return fast, naive, nbytes


def stage_score(ctx: Context) -> list[Result]:
    stage = ctx.label("score")
    w = ctx.workload
    PE, why = import_or_reason("mrt_engine.progress:ProgressEstimator")
    work = f"{w.num_traces} trace(s) x ~{w.trace_tokens} tokens, {w.num_episodes} episodes"
    if PE is None:
        return [unavailable(stage, "fast", "ours", why, workload=work),
                unavailable(stage, "naive (re-prefill)", "baseline", why, workload=work)]
    problems, traces, answers = progress_inputs(ctx, trace_tokens=w.trace_tokens, num_episodes=w.num_episodes)
    fast = PE(ctx.model, ctx.tokenizer, mode="score", method="fast", show_progress=False)
    naive = PE(ctx.model, ctx.tokenizer, mode="score", method="naive", show_progress=False)
    items = fast.prepare(problems, traces, answers)
    num_cuts = sum(it.num_cuts for it in items)
    num_trace_tokens = sum(len(it.trace_ids) for it in items)
    f_fast, f_naive, nbytes = score_counts(ctx.dims, items)
    work = f"{len(items)} trace(s) x {num_trace_tokens // len(items)} tokens, {num_cuts} cuts"
    common = dict(num_tokens=num_trace_tokens, num_episodes=num_cuts, min_flops=f_fast, min_bytes=nbytes, workload=work)
    last = {}

    def run(est, key):
        def call():
            last[key] = est.estimate(problems, traces, answers)
        return call

    cases = {"fast": ("ours", run(fast, "fast")), "naive (re-prefill)": ("baseline", run(naive, "naive"))}
    meta = {"fast": dict(common, flops=f_fast), "naive (re-prefill)": dict(common, flops=f_naive)}
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta)
    if "fast" in last and "naive" in last:  # the two must agree (the tests check it to 1e-4)
        diff = max(abs(a - b) for rf, rn in zip(last["fast"], last["naive"]) for a, b in zip(rf.j, rn.j))
        results[0].note = f"max |J fast - J naive| = {diff:.2e}"
    return results


def sample_token_count(results, items, num_samples: int) -> int:
    """Answer tokens sampled, from ``tokens_at_cut`` (context + suffix + mean answer length)."""
    total = 0.0
    for r, it in zip(results, items):
        for c in range(it.num_cuts):
            total += (r.tokens_at_cut[c] - it.context_len(c) - len(it.suffix_ids[c])) * num_samples
    return max(0, round(total))


def stage_sample(ctx: Context) -> list[Result]:
    stage = ctx.label("sample")
    w = ctx.workload
    PE, why = import_or_reason("mrt_engine.progress:ProgressEstimator")
    work = f"{w.num_traces} trace(s) x ~{w.sample_trace_tokens} tokens, {w.sample_num_episodes} episodes, " \
           f"{w.num_samples} x {w.max_answer_tokens} answer tokens per cut"
    if PE is None:
        return [unavailable(stage, name, role, why, workload=work) for name, role in
                (("fast", "ours"), ("naive (HF generate per prefix)", "baseline"), ("vLLM prefix caching", "baseline"))]
    problems, traces, answers = progress_inputs(ctx, trace_tokens=w.sample_trace_tokens,
                                                num_episodes=w.sample_num_episodes)
    # "boxed": the embedded models have no think tag (the R1 text suits R1-family models).
    opts = dict(mode="sample", template="boxed", num_samples=w.num_samples, max_answer_tokens=w.max_answer_tokens, temperature=0.7,
                seed=0, show_progress=False)
    fast = PE(ctx.model, ctx.tokenizer, method="fast", **opts)
    naive = PE(ctx.model, ctx.tokenizer, method="naive", **opts)
    items = fast.prepare(problems, traces, answers)
    if hasattr(fast, "_get_generator"):
        fast._get_generator()  # build the engine now, untimed (it is built once per estimator)
    num_cuts = sum(it.num_cuts for it in items)
    dims = ctx.dims
    # Floor: prefill each trace once, then every answer token decoded (its context read once
    # per cut group); naive re-prefills each cut's context.
    prefill_once = sum(H.forward_flops(dims, num_tokens=len(it.prompt_ids) + len(it.trace_ids),
                                       attention_pairs=H.attention_pairs_causal(len(it.prompt_ids) + len(it.trace_ids)),
                                       lm_head_tokens=0) for it in items)
    reprefill = sum(H.forward_flops(dims, num_tokens=it.context_len(c) + len(it.suffix_ids[c]),
                                    attention_pairs=H.attention_pairs_causal(it.context_len(c) + len(it.suffix_ids[c])),
                                    lm_head_tokens=1) for it in items for c in range(it.num_cuts))
    answer_tokens = num_cuts * w.num_samples * w.max_answer_tokens  # at most
    decode = H.forward_flops(dims, num_tokens=answer_tokens, attention_pairs=answer_tokens * (
        sum(it.context_len(c) for it in items for c in range(it.num_cuts)) // max(num_cuts, 1)),
        lm_head_tokens=answer_tokens)
    suffixes = sum(H.forward_flops(dims, num_tokens=len(it.suffix_ids[c]), attention_pairs=H.attention_pairs_causal(
        len(it.suffix_ids[c]), it.context_len(c)), lm_head_tokens=1) for it in items for c in range(it.num_cuts))
    f_fast, f_naive = prefill_once + suffixes + decode, reprefill + decode
    nbytes = H.decode_bytes(dims, num_steps=w.max_answer_tokens, kv_tokens_read=0, dtype_bytes=ctx.dtype_bytes)
    common = dict(num_episodes=num_cuts, min_flops=f_fast, min_bytes=nbytes,
                  workload=f"{len(items)} trace(s) x {sum(len(it.trace_ids) for it in items) // len(items)} tokens, "
                           f"{num_cuts} cuts x {w.num_samples} answers x <= {w.max_answer_tokens} tokens")
    counts: dict[str, int] = {}

    def run(est, key):
        def call():
            counts[key] = sample_token_count(est.estimate(problems, traces, answers), items, w.num_samples)
        return call

    cases = {"fast": ("ours", run(fast, "fast")), "naive (HF generate per prefix)": ("baseline", run(naive, "naive"))}
    meta = {"fast": dict(common, flops=f_fast), "naive (HF generate per prefix)": dict(common, flops=f_naive)}
    # Each round starts cold: the trace is shared across the cuts of one call, not across rounds.
    before = {"fast": lambda: reset_prefix_cache(fast.generator)}
    missing = []
    if ctx.vllm is not None:
        stop_ids = fast._stop_ids() if hasattr(fast, "_stop_ids") else [ctx.tokenizer.eos_token_id]
        grade, why_g = import_or_reason("mrt_engine.grading:grade")
        prompts = [it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
                   for it in items for c in range(it.num_cuts)]
        heads = [ctx.tokenizer.decode(it.suffix_ids[c], skip_special_tokens=False)
                 for it in items for c in range(it.num_cuts)]
        refs = [it.references for it in items for c in range(it.num_cuts)]

        def vllm_call():
            rep = ctx.vllm.generate(prompts, n=w.num_samples, max_tokens=w.max_answer_tokens, temperature=0.7,
                                    stop_token_ids=stop_ids, seeds=list(range(len(prompts))))
            if grade is not None:  # grade like the estimator does: suffix text + sample
                for head, texts, ref in zip(heads, rep["texts"], refs):
                    [max(float(grade(head + t, r).score) for r in ref) for t in texts]
            counts["vllm"] = rep["num_tokens"]

        cases["vLLM prefix caching"] = ("baseline", vllm_call)
        before["vLLM prefix caching"] = ctx.vllm.reset_prefix_cache
        # With prefix caching vLLM computes the shared trace once too: the fast path's FLOPs.
        meta["vLLM prefix caching"] = dict(common, flops=f_fast, note="subprocess; same prompts as the estimator")
    else:
        missing.append(unavailable(stage, "vLLM prefix caching", "baseline", ctx.vllm_reason,
                                   workload=common["workload"]))
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta, before)
    for r in results:
        key = {"fast": "fast", "vLLM prefix caching": "vllm"}.get(r.method, "naive")
        r.num_tokens = counts.get(key, 0)
        r.compare = "time"  # same cuts and samples; answer lengths differ by sampling
    return results + missing


# -- stage 5: one whole MRT training step ------------------------------------------------

# Phases of Trainer.rl_step, timed by wrapping what it calls (names in mrt_engine.train).
STEP_PHASES = (("sample_groups", "generation"), ("_progress", "progress"), ("advantages_for", "advantages"),
               ("policy_update", "policy update"))


@contextlib.contextmanager
def phase_timer(train_module, trainer, sink: dict[str, float], device):
    """Add the seconds spent in each phase of an MRT step to ``sink`` while active."""
    patched = []

    def wrap(owner, attr, phase):
        fn = getattr(owner, attr)

        def timed(*a, **k):
            H.synchronize(device)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                H.synchronize(device)
                sink[phase] = sink.get(phase, 0.0) + time.perf_counter() - t0
        setattr(owner, attr, timed)
        patched.append((owner, attr, fn))

    try:
        for attr, phase in STEP_PHASES:
            owner = trainer if attr.startswith("_") else train_module
            if hasattr(owner, attr):
                wrap(owner, attr, phase)
        yield
    finally:
        for owner, attr, fn in reversed(patched):
            if owner is trainer:
                delattr(trainer, attr)  # back to the class method
            else:
                setattr(owner, attr, fn)


def step_config(ctx: Context, backend: str, out_dir: str):
    from mrt_engine.tasks import TASKS
    from mrt_engine.train import TrainConfig

    w = ctx.workload
    task = "chain" if "chain" in TASKS else sorted(TASKS)[0]  # synthetic multi-step arithmetic
    return TrainConfig.from_dict(dict(
        model=dict(name=ctx.model_name if ctx.model_name in ("tiny", "smollm2-135m") else "tiny"),
        data=dict(task=task, num_train=max(16, 4 * w.step_num_prompts), num_eval=0),
        rollout=dict(group_size=w.step_n, max_tokens=w.step_max_tokens, temperature=0.9, backend=backend),
        algo=dict(name="mrt_dense", max_cuts=w.step_max_cuts, num_branches=w.step_num_branches,
                  answer_max_tokens=w.step_answer_tokens),
        steps=1000, prompts_per_step=w.step_num_prompts, output_dir=out_dir, tensorboard=False, progress_bar=False,
        precision="no"))


def stage_step(ctx: Context) -> list[Result]:
    stage = ctx.label("step")
    w = ctx.workload
    work = (f"mrt_dense: {w.step_num_prompts} prompts x {w.step_n} rollouts x {w.step_max_tokens} tokens, "
            f"<= {w.step_max_cuts} cuts x {w.step_num_branches} branches x {w.step_answer_tokens} tokens")
    train_module, why = import_or_reason("mrt_engine.train")
    if train_module is not None:  # the trainer draws its prompts from the synthetic tasks
        _, why = import_or_reason("mrt_engine.tasks:make_problems")
        train_module = None if why else train_module
    if train_module is None or not hasattr(train_module, "Trainer"):
        why = why or "mrt_engine.train has no Trainer"
        return [unavailable(stage, "engine backend", "ours", why, workload=work),
                unavailable(stage, "HF backend", "baseline", why, workload=work)]
    import tempfile

    tmp = tempfile.mkdtemp(prefix="mrt-bench-step-")
    trainers = {}
    for method, backend in (("engine backend", "engine"), ("HF backend", "hf")):
        trainers[method] = train_module.Trainer(step_config(ctx, backend, os.path.join(tmp, backend)),
                                                model=ctx.model, tokenizer=ctx.tokenizer)
    phases: dict[str, list[dict[str, float]]] = {m: [] for m in trainers}
    tokens: dict[str, list[int]] = {m: [] for m in trainers}

    def run(method):
        trainer = trainers[method]

        def call():
            sink: dict[str, float] = {}
            t0 = time.perf_counter()
            with phase_timer(train_module, trainer, sink, ctx.device):
                metrics = trainer.rl_step(trainer.sampler.next(w.step_num_prompts))
            trainer.backend.weights_updated()
            sink["total"] = time.perf_counter() - t0
            phases[method].append(sink)
            tokens[method].append(round(metrics.get("completion_tokens", 0) * w.step_num_prompts * w.step_n))
        return call

    cases = {"engine backend": ("ours", run("engine backend")), "HF backend": ("baseline", run("HF backend"))}
    meta = {m: dict(num_episodes=w.step_num_prompts * w.step_n, workload=work, compare="time") for m in cases}
    # KV cached before an optimizer step is stale after it: start every step with an empty cache.
    engine_gen = getattr(trainers["engine backend"].backend, "generator", None)
    before = {"engine backend": lambda: reset_prefix_cache(engine_gen)}
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta, before)
    for r in results:
        rounds = phases[r.method][ctx.warmup:] or phases[r.method]
        if tokens[r.method]:
            r.num_tokens = int(sorted(tokens[r.method])[len(tokens[r.method]) // 2])
        if r.status == OK and rounds:
            med = {k: sorted(d.get(k, 0.0) for d in rounds)[len(rounds) // 2] for k in rounds[0]}
            shares = {name: med.get(name, 0.0) / med["total"] for _, name in STEP_PHASES if name in med}
            shares["other"] = max(0.0, 1.0 - sum(shares.values()))
            r.note = "; ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
            if r.role == "ours":
                ctx.step_shares[ctx.model_name] = shares
                ctx.step_phase_s[ctx.model_name] = {k: med.get(k, 0.0) for k in shares if k != "other"}
                ctx.step_phase_s[ctx.model_name]["other"] = max(0.0, med["total"] - sum(
                    ctx.step_phase_s[ctx.model_name].values()))
    return results


# -- driver -------------------------------------------------------------------------------

STAGE_FNS = {"generation": stage_generation, "score": stage_score, "sample": stage_sample, "logprob": stage_logprob,
             "step": stage_step}
STAGE_CASES = {"generation": 3, "score": 2, "sample": 3, "logprob": 4, "step": 2}  # timed cases, for the bar
VLLM_STAGES = ("generation", "sample")


def load(name: str, device: torch.device, dtype: torch.dtype):
    from mrt_engine.models import load_model, load_tokenizer

    if name in RANDOM_MODELS:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        tok = load_tokenizer("smollm2-135m")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        cfg = Qwen2Config(**RANDOM_MODELS[name], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
        with torch.device(device):
            torch.manual_seed(0)
            model = Qwen2ForCausalLM(cfg).to(dtype)
        return model.eval(), tok
    return load_model(name, dtype=dtype, device=device)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, tiny workloads, 1 repeat")
    p.add_argument("--stage", action="append", default=None,
                   help=f"stage(s) to run, by name or number: {', '.join(STAGES)} (repeatable or comma-separated; default all)")
    p.add_argument("--model", action="append", default=None,
                   help="model(s): tiny, smollm2-135m, r1-1.5b-shapes (random init), or a local checkpoint "
                        "(default: smollm2-135m; on CUDA also r1-1.5b-shapes; --quick: tiny)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16 (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 2, which keeps the no-argument run under 10 minutes on 2 CPU cores; --quick 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds before timing (default 0: a warm-up round costs a third more time; every timed call starts from empty prefix caches)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; --quick: 1, as OpenMP spin-waits on a busy shared CPU "
                        "make tiny ops 10-30x slower)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "runs" / "throughput"),
                   help="output folder (default runs/throughput/, git-ignored)")
    p.add_argument("--no-vllm", action="store_true", help="skip the vLLM baselines even when vLLM is installed")
    p.add_argument("--vllm-python", default=os.environ.get("MRT_VLLM_PYTHON"),
                   help="python of a virtualenv with vLLM (default: $MRT_VLLM_PYTHON, the repo's .venv-vllm, this python)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    stages = []
    for item in args.stage or list(STAGES):
        for s in item.split(","):
            s = STAGE_ALIASES.get(s.strip(), s.strip())
            if s not in STAGES:
                p.error(f"--stage {s!r} is not one of {STAGES} (or 1-{len(STAGES)})")
            if s not in stages:
                stages.append(s)
    args.stages = stages
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False; use --device cpu")
    from mrt_engine.models import resolve_dtype

    args.dtype = resolve_dtype(args.dtype or ("bfloat16" if args.device.type == "cuda" else "float32"))
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is None and args.quick:
        args.threads = 1
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.warmup is None:
        args.warmup = 0
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.model is None:
        args.model = ["tiny"] if args.quick else (["smollm2-135m", "r1-1.5b-shapes"] if args.device.type == "cuda"
                                                  else ["smollm2-135m"])
    return args


def workload_for(args) -> Workload:
    if args.quick:
        return QUICK
    return DEFAULT_CUDA if args.device.type == "cuda" else DEFAULT_CPU


def vllm_checkpoint(name: str, model, tokenizer) -> Path:
    """A plain HF checkpoint of ``name`` for vLLM: local checkpoints as they are, embedded
    defaults exported once to ~/.cache/mrt_engine/bench/ (deterministic: fixed seed)."""
    if os.path.isdir(name):
        return Path(name)
    cache = Path(os.environ.get("MRT_BENCH_CACHE", Path.home() / ".cache" / "mrt_engine" / "bench"))
    return H.export_hf_checkpoint(model, tokenizer, cache / name)


def start_vllm(args, name: str, model, tokenizer, out: Path):
    """(worker or None, reason when None). Starting takes minutes: it runs while nothing is timed."""
    if args.no_vllm:
        return None, "skipped (--no-vllm)"
    if name in RANDOM_MODELS:
        return None, f"not run for the random-init {name} (no checkpoint to load)"
    head_dim = H.ModelDims.from_config(model.config).head_dim
    if args.device.type == "cpu" and head_dim % 32:
        return None, f"vLLM's CPU attention does not support head_dim={head_dim} (this model's)"
    py, why = H.find_vllm_python(args.vllm_python)
    if py is None:
        return None, why
    try:
        ckpt = vllm_checkpoint(name, model, tokenizer)
        env = {}
        if args.threads is not None and args.device.type == "cpu":  # same CPU threads as ours
            env["VLLM_CPU_OMP_THREADS_BIND"] = "0" if args.threads == 1 else f"0-{args.threads - 1}"
        worker = H.VLLMWorker(py, log_path=out / f"vllm-{Path(name).name}.log", env=env)
        # CPU: vLLM disables inductor there anyway; eager mode skips a multi-minute graph capture.
        extra = {"gpu_memory_utilization": 0.3} if args.device.type == "cuda" else {"enforce_eager": True}
        worker.start(str(ckpt), dtype=str(args.dtype).replace("torch.", ""), enable_prefix_caching=True,
                     max_model_len=min(8192, int(getattr(model.config, "max_position_embeddings", 8192))), extra=extra)
        worker.wait_started()
        return worker, ""
    except Exception as exc:  # noqa: BLE001 - the baseline is optional; say why it is missing
        with contextlib.suppress(Exception):
            worker.close()
        return None, f"vLLM failed to start ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    workload = workload_for(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    shares: dict[str, dict[str, float]] = {}
    phase_s: dict[str, dict[str, float]] = {}
    steps = sum(STAGE_CASES[s] for s in args.stages) * (args.repeats + args.warmup) * len(args.model)
    bar = H.progress_bar(steps, "throughput", enabled=not args.no_progress)
    t_start = time.perf_counter()
    try:
        for name in args.model:
            bar.set_description(f"loading {name}")
            model, tok = load(name, args.device, args.dtype)
            vllm, vllm_reason = None, ""
            if any(s in VLLM_STAGES for s in args.stages):
                bar.set_description(f"starting vLLM for {name}")
                vllm, vllm_reason = start_vllm(args, name, model, tok, out)
            ctx = Context(model_name=name, model=model, tokenizer=tok, device=args.device, dtype=args.dtype,
                          workload=workload, repeats=args.repeats, warmup=args.warmup, bar=bar, vllm=vllm,
                          vllm_reason=vllm_reason)
            try:
                for stage in args.stages:
                    results += run_stage(ctx, stage)
            finally:
                if vllm is not None:
                    vllm.close()
            shares.update(ctx.step_shares)
            phase_s.update(ctx.step_phase_s)
            del ctx, model
    finally:
        bar.close()
    peaks = H.device_peaks(args.device, args.dtype)
    meta = H.machine_info(args.device, args.dtype, extra={
        "models": " ".join(args.model), "repeats": args.repeats, "warmup": args.warmup, "quick": args.quick,
        "peaks": f"{peaks.flops_per_s:.3g} FLOP/s, {peaks.bytes_per_s:.3g} B/s ({peaks.source})",
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    results += share_rows(shares, phase_s)
    write_outputs(out, results, meta, peaks, shares, args, time.perf_counter() - t_start)
    return 0


def run_stage(ctx: Context, stage: str) -> list[Result]:
    done_before = getattr(ctx.bar, "n", 0)
    try:
        rows = STAGE_FNS[stage](ctx)
    except Exception as exc:  # noqa: BLE001 - report the stage, keep the others
        ctx.bar.write(f"stage {stage} failed:\n{traceback.format_exc()}")
        rows = [Result(stage=ctx.label(stage), method="all", role="ours", status=ERROR,
                       reason=f"{type(exc).__name__}: {exc}"[:200])]
    # Keep the bar honest when a stage measured fewer cases than planned (unavailable parts).
    planned = STAGE_CASES[stage] * (ctx.repeats + ctx.warmup)
    if hasattr(ctx.bar, "n") and ctx.bar.n - done_before < planned:
        ctx.bar.update(planned - (ctx.bar.n - done_before))
    return rows


def share_rows(shares: dict[str, dict[str, float]], phase_s: dict[str, dict[str, float]]) -> list[Result]:
    """The share of an MRT step each phase takes, as CSV rows (role "share", no ratios)."""
    return [Result(stage=f"step share [{model}]", method=phase, role="share", times_s=[phase_s[model][phase]],
                   note=f"{100 * v:.1f}% of the step (engine backend)")
            for model, sh in shares.items() for phase, v in sh.items()]


def write_outputs(out: Path, results, meta, peaks, shares, args, elapsed: float) -> None:
    timed = [r for r in results if r.role != "share"]
    csv_path = H.write_csv(out / "throughput.csv", results, meta, peaks)
    first_shares = next(iter(shares.values()), None)
    png_path = H.plot_png(out / "throughput.png", timed, shares=first_shares,
                          title=f"mrt_engine throughput - {meta['machine']}, {meta['device']} {meta['dtype']}")
    share_lines = "".join(f"\nShare of one MRT step ({m}, engine backend): " +
                          ", ".join(f"{k} {100 * v:.0f}%" for k, v in sh.items()) for m, sh in shares.items())
    (out / "throughput.md").write_text(
        f"Command: `{meta['command']}`  \nDate (UTC): {meta['date_utc']}  \nMachine: {meta['machine']}; "
        f"accelerator: {meta['accelerator']}; torch {meta['torch']}, transformers {meta['transformers']}; "
        f"{meta['device']} {meta['dtype']}; {args.repeats} repeats + {args.warmup} warm-up, interleaved, medians; "
        f"floor from {meta['peaks']}\n\n{H.format_markdown(timed, peaks)}\n{share_lines}\n")
    print()
    print(H.format_table(timed, peaks))
    for m, sh in shares.items():
        print(f"share of one MRT step ({m}, engine backend): " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in sh.items()))
    print(f"\n{meta['machine']} | {meta['device']} {meta['dtype']} | torch {meta['torch']} | "
          f"{args.repeats} repeats + {args.warmup} warm-up, interleaved, medians | {elapsed:.0f} s")
    print(f"wrote {csv_path}, {png_path}, {out / 'throughput.md'}")


if __name__ == "__main__":
    sys.exit(main())
