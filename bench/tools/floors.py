"""Floors before any run: a model built on the ``meta`` device (no memory, no weights), its
parameters and FLOPs per token, and each stage's memory, FLOP and byte floors at a workload.

    python -m bench.tools.floors --model r1-1.5b-shapes               # GPU workload, bf16, H200 ceilings
    python -m bench.tools.floors --model r1-mini --workload quick --dtype float32

The counts come from ``bench/common/flops.py`` (the model every ``bench/throughput.py`` row is
rated with) on the stage's own inputs (``bench/stages/base.py`` workloads, the synthetic traces
through the progress estimator's ``prepare``). Time floors are the larger of FLOPs / peak and
bytes / bandwidth at the given ceilings (default: the H200's measured ones, docs/benchmarks.md).
Memory floors count what must be resident: weights, KV of the stage's tokens, and for training
gradients and AdamW's two moments in the weights' dtype (activations left out: a floor).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from bench.common.estimator import estimator_options
from bench.common.flops import (
    ModelDims,
    attention_pairs_causal,
    forward_flops,
    generation_counts,
    logprob_loss_bytes,
    logprob_loss_flops,
    policy_pass_counts,
    sample_counts,
    score_counts,
)
from bench.common.models import load
from bench.common.traces import PROBLEMS, chat_prompt_ids, progress_inputs
from bench.stages.base import WORKLOADS, Workload
from mrt_engine.models import resolve_dtype
from mrt_engine.progress import ProgressEstimator

MEASURED_H200 = (790e12, 4.3e12)  # bf16 GEMM FLOP/s and device-copy bytes/s measured on the lent H200


def stage_floors(model, tok, dims: ModelDims, w: Workload, dtype_bytes: int) -> list[dict]:
    """One dict per stage: FLOPs, bytes and resident bytes its algorithm needs at least."""
    weights = sum(p.numel() for p in model.parameters()) * dtype_bytes
    kv = dims.kv_bytes_per_token(dtype_bytes)
    rows = []
    prompts = [len(chat_prompt_ids(tok, PROBLEMS[i % len(PROBLEMS)][0])) for i in range(w.gen_num_prompts)]
    flops, nbytes = generation_counts(dims, prompts, w.gen_n, w.gen_max_tokens, dtype_bytes)
    rows.append(dict(stage="generation", flops=flops, bytes=nbytes,
                     memory=weights + kv * (sum(prompts) + len(prompts) * w.gen_n * w.gen_max_tokens),
                     workload=f"{len(prompts)} prompts x n={w.gen_n} x {w.gen_max_tokens} new tokens"))
    for mode in ("score", "sample"):
        sizes = {} if mode == "score" else dict(num_branches=w.num_branches, max_answer_tokens=w.max_answer_tokens)
        tokens, episodes = (w.trace_tokens, w.num_episodes) if mode == "score" else (w.sample_trace_tokens,
                                                                                     w.sample_num_episodes)
        data = progress_inputs(tok, num_traces=w.num_traces, trace_tokens=tokens, num_episodes=episodes)
        items = ProgressEstimator(model, tok, **estimator_options(mode, "fast", **sizes)).prepare(*data)
        cuts = sum(it.num_cuts for it in items)
        context = sum(len(it.prompt_ids) + len(it.trace_ids) for it in items)
        if mode == "score":
            flops, _, _ = score_counts(dims, items)
            nbytes = dims.weight_params * dtype_bytes  # the weights read once (compute-bound)
            tail = sum(len(it.suffix_ids[c]) + max(map(len, it.answer_ids)) for it in items for c in range(it.num_cuts))
        else:
            flops, _, nbytes = sample_counts(dims, items, **sizes, dtype_bytes=dtype_bytes)
            tail = sum(len(it.suffix_ids[c]) for it in items for c in range(it.num_cuts)) \
                + cuts * w.num_branches * w.max_answer_tokens
        rows.append(dict(stage=mode, flops=flops, bytes=nbytes, memory=weights + kv * (context + tail),
                         workload=f"{len(items)} trace(s) x {context // len(items)} tokens, {cuts} cuts"
                                  + (f" x {w.num_branches} x {w.max_answer_tokens} answer tokens" if sizes else "")))
    M, H, V = w.logprob_tokens, dims.hidden_size, dims.vocab_size
    rows.append(dict(stage="logprob head", flops=logprob_loss_flops(M, H, V),
                     bytes=logprob_loss_bytes(M, H, V, dtype_bytes, materialise_logits=False),
                     memory=(2 * V * H + 2 * M * H) * dtype_bytes + 4 * M, workload=f"M={M} H={H} V={V}"))
    B, T = w.policy_batch, w.policy_seq_len
    flops, nbytes = policy_pass_counts(dims, batch=B, seq_len=T, dtype_bytes=dtype_bytes)
    acts = B * T * H * dims.num_layers * dtype_bytes  # one hidden state per layer kept for the backward
    rows.append(dict(stage="logprob policy", flops=flops, bytes=nbytes, memory=2 * weights + acts,
                     workload=f"{B} x {T} tokens fwd+bwd"))
    rows.append(_step(dims, w, prompts, weights, kv, dtype_bytes))
    return rows


def _step(dims: ModelDims, w: Workload, prompts: list[int], weights: int, kv: int, dtype_bytes: int) -> dict:
    """One MRT step: rollouts, J at the cuts (sample mode), the policy update (fwd+bwd), AdamW."""
    P, n, T = w.step_num_prompts, w.step_n, w.step_max_tokens
    plens = prompts[:P] or prompts[:1] * P
    f_gen, b_gen = generation_counts(dims, plens, n, T, dtype_bytes)
    answers = P * n * w.step_max_cuts * w.step_num_branches * w.step_answer_tokens
    f_prog = forward_flops(dims, num_tokens=answers, attention_pairs=answers * (sum(plens) // len(plens) + T // 2),
                           lm_head_tokens=answers)
    seq = sum(plens) // len(plens) + T
    f_upd, b_upd = policy_pass_counts(dims, batch=P * n, seq_len=seq, dtype_bytes=dtype_bytes)
    f_old = forward_flops(dims, num_tokens=P * n * seq, attention_pairs=P * n * attention_pairs_causal(seq),
                          lm_head_tokens=P * n * T)  # old log-probs, no grad
    return dict(stage="step", flops=f_gen + f_prog + f_upd + f_old,
                bytes=b_gen + b_upd + dims.weight_params * dtype_bytes * w.step_answer_tokens,
                memory=4 * weights + kv * P * n * (seq + w.step_max_cuts * w.step_num_branches * w.step_answer_tokens),
                workload=f"{P} prompts x {n} rollouts x {T} tokens, <= {w.step_max_cuts} cuts x "
                         f"{w.step_num_branches} x {w.step_answer_tokens}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="r1-1.5b-shapes", help="any name load_model knows (random-init shapes load free)")
    ap.add_argument("--workload", default="cuda", choices=sorted(WORKLOADS))
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--peaks", default=",".join(f"{x:g}" for x in MEASURED_H200),
                    help="FLOP/s,bytes/s of the ceilings the time floors use (default: the H200's measured ones)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    dtype = resolve_dtype(args.dtype)
    peak_flops, peak_bytes = (float(x) for x in args.peaks.split(","))
    with torch.device("meta"):
        model, tok = load(args.model, torch.device("meta"), dtype)
    dims, nb = ModelDims.from_config(model.config), torch.finfo(dtype).bits // 8
    params = sum(p.numel() for p in model.parameters())
    fwd = 2 * dims.weight_params  # matmul FLOPs per token (LM head included), before attention
    attn = 4 * dims.num_layers * dims.num_heads * dims.head_dim  # per (query, key) pair
    print(f"{args.model} on meta ({args.dtype}): {params / 1e9:.3f} B parameters ({dims.body_params / 1e9:.3f} B in "
          f"the layers' matmuls, LM head {dims.head_params / 1e6:.1f} M, {'tied' if dims.tied_embeddings else 'untied'}); "
          f"{dims.num_layers} layers, hidden {dims.hidden_size}, {dims.num_heads}/{dims.num_kv_heads} heads of "
          f"{dims.head_dim}, MLP {dims.intermediate_size}, vocab {dims.vocab_size}")
    print(f"FLOPs per token: forward {fwd / 1e9:.2f} G + {attn / 1e3:.1f} k per context token attended; "
          f"training (fwd+bwd) {3 * fwd / 1e9:.2f} G; KV {dims.kv_bytes_per_token(nb) / 1024:.1f} KiB per token; "
          f"weights {params * nb / 2**30:.2f} GiB")
    rows = stage_floors(model, tok, dims, WORKLOADS[args.workload], nb)
    print(f"\nworkload {args.workload!r}; ceilings {peak_flops / 1e12:.0f} TFLOP/s, {peak_bytes / 1e12:.2f} TB/s")
    print(f"{'stage':<15} {'FLOPs':>9} {'bytes':>9} {'memory GiB':>10} {'floor ms':>9} {'bound':<7} workload")
    for r in rows:
        t_f, t_b = r["flops"] / peak_flops, r["bytes"] / peak_bytes
        r.update(floor_s=max(t_f, t_b), bound="compute" if t_f >= t_b else "memory")
        print(f"{r['stage']:<15} {r['flops']:>9.3g} {r['bytes']:>9.3g} {r['memory'] / 2**30:>10.2f} "
              f"{1e3 * r['floor_s']:>9.2f} {r['bound']:<7} {r['workload']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, params=params, forward_flops_per_token=fwd, workload=args.workload,
                           dtype=args.dtype, peaks=[peak_flops, peak_bytes], stages=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
