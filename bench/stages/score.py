"""Stage 2: progress estimation in score mode, fast vs naive (re-prefill every prefix)."""
from __future__ import annotations

from bench.common.estimator import estimator_options
from bench.common.flops import score_counts
from bench.common.results import Result
from bench.common.traces import progress_inputs
from mrt_engine.progress import ProgressEstimator

from .base import Context, measure

NAIVE = "naive (re-prefill)"


def stage_score(ctx: Context) -> list[Result]:
    stage = ctx.label("score")
    w = ctx.workload
    problems, traces, answers = progress_inputs(ctx.tokenizer, num_traces=w.num_traces, trace_tokens=w.trace_tokens,
                                                num_episodes=w.num_episodes)
    fast = ProgressEstimator(ctx.model, ctx.tokenizer, **estimator_options("score", "fast"))
    naive = ProgressEstimator(ctx.model, ctx.tokenizer, **estimator_options("score", "naive"))
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

    cases = {"fast": ("ours", run(fast, "fast")), NAIVE: ("baseline", run(naive, "naive"))}
    meta = {"fast": dict(common, flops=f_fast), NAIVE: dict(common, flops=f_naive)}
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta)
    if "fast" in last and "naive" in last:  # the two must agree (the tests check it to 1e-4)
        diff = max(abs(a - b) for rf, rn in zip(last["fast"], last["naive"]) for a, b in zip(rf.j, rn.j))
        results[0].note = f"max |J fast - J naive| = {diff:.2e}"
    return results
