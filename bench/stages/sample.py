"""Stage 3: progress estimation in sample mode, fast (prefill once, branch) vs naive (HF
``generate`` per prefix) vs vLLM with prefix caching on the same prompts."""
from __future__ import annotations

from bench.common.estimator import SAMPLE_TEMPERATURE, estimator_options
from bench.common.flops import sample_counts
from bench.common.results import Result
from bench.common.traces import progress_inputs
from mrt_engine.grading import grade
from mrt_engine.progress import ProgressEstimator

from .base import Context, measure, reset_prefix_cache, unavailable

NAIVE, VLLM = "naive (HF generate per prefix)", "vLLM prefix caching"


def sample_token_count(results, items, num_branches: int) -> int:
    """Answer tokens sampled, from ``tokens_at_cut`` (context + suffix + mean answer length)."""
    total = 0.0
    for r, it in zip(results, items):
        for c in range(it.num_cuts):
            total += (r.tokens_at_cut[c] - it.context_len(c) - len(it.suffix_ids[c])) * num_branches
    return max(0, round(total))


def stage_sample(ctx: Context) -> list[Result]:
    stage = ctx.label("sample")
    w = ctx.workload
    problems, traces, answers = progress_inputs(ctx.tokenizer, num_traces=w.num_traces,
                                                trace_tokens=w.sample_trace_tokens, num_episodes=w.sample_num_episodes)
    sizes = dict(num_branches=w.num_branches, max_answer_tokens=w.max_answer_tokens)
    fast = ProgressEstimator(ctx.model, ctx.tokenizer, **estimator_options("sample", "fast", **sizes))
    naive = ProgressEstimator(ctx.model, ctx.tokenizer, **estimator_options("sample", "naive", **sizes))
    items = fast.prepare(problems, traces, answers)
    if hasattr(fast, "_get_generator"):
        fast._get_generator()  # build the engine now, untimed (it is built once per estimator)
    num_cuts = sum(it.num_cuts for it in items)
    f_fast, f_naive, nbytes = sample_counts(ctx.dims, items, **sizes, dtype_bytes=ctx.dtype_bytes)
    common = dict(num_episodes=num_cuts, min_flops=f_fast, min_bytes=nbytes,
                  workload=f"{len(items)} trace(s) x {sum(len(it.trace_ids) for it in items) // len(items)} tokens, "
                           f"{num_cuts} cuts x {w.num_branches} answers x <= {w.max_answer_tokens} tokens")
    counts: dict[str, int] = {}

    def run(est, key):
        def call():
            counts[key] = sample_token_count(est.estimate(problems, traces, answers), items, w.num_branches)
        return call

    cases = {"fast": ("ours", run(fast, "fast")), NAIVE: ("baseline", run(naive, "naive"))}
    meta = {"fast": dict(common, flops=f_fast), NAIVE: dict(common, flops=f_naive)}
    # Each round starts cold: the trace is shared across the cuts of one call, not across rounds.
    before = {"fast": lambda: reset_prefix_cache(fast.generator)}
    missing = []
    if ctx.vllm is not None:
        cases[VLLM] = ("baseline", _vllm_call(ctx, fast, items, counts))
        before[VLLM] = ctx.vllm.reset_prefix_cache
        # With prefix caching vLLM computes the shared trace once too: the fast path's FLOPs.
        meta[VLLM] = dict(common, flops=f_fast, note="subprocess; same prompts as the estimator")
    else:
        missing.append(unavailable(stage, VLLM, "baseline", ctx.vllm_reason, workload=common["workload"]))
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta, before)
    for r in results:
        key = {"fast": "fast", VLLM: "vllm"}.get(r.method, "naive")
        r.num_tokens = counts.get(key, 0)
        r.compare = "time"  # same cuts and samples; answer lengths differ by sampling
    return results + missing


def _vllm_call(ctx: Context, fast, items, counts: dict[str, int]):
    """vLLM on the estimator's own prompts (prompt + prefix + suffix per cut), graded like it."""
    w = ctx.workload
    stop_ids = fast._stop_ids() if hasattr(fast, "_stop_ids") else [ctx.tokenizer.eos_token_id]
    prompts = [it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
               for it in items for c in range(it.num_cuts)]
    heads = [ctx.tokenizer.decode(it.suffix_ids[c], skip_special_tokens=False)
             for it in items for c in range(it.num_cuts)]
    refs = [it.references for it in items for c in range(it.num_cuts)]

    def call():
        rep = ctx.vllm.generate(prompts, n=w.num_branches, max_tokens=w.max_answer_tokens,
                                temperature=SAMPLE_TEMPERATURE, stop_token_ids=stop_ids,
                                seeds=list(range(len(prompts))))
        for head, texts, ref in zip(heads, rep["texts"], refs):  # grade like the estimator does: suffix text + sample
            [max(float(grade(head + t, r).score) for r in ref) for t in texts]
        counts["vllm"] = rep["num_tokens"]
    return call
