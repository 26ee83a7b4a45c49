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
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
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

    def __post_init__(self):
        for name, value in self.__dict__.items():
            if value < 1:
                raise ValueError(f"Workload.{name} must be >= 1, got {value}")
        if self.num_episodes > self.trace_tokens // 8 or self.sample_num_episodes > self.sample_trace_tokens // 8:
            raise ValueError("episodes need at least ~8 tokens each: lower num_episodes or raise trace_tokens")


QUICK = Workload(gen_num_prompts=2, gen_n=2, gen_max_tokens=8, trace_tokens=160, num_episodes=4,
                 sample_trace_tokens=160, sample_num_episodes=4, num_samples=2, max_answer_tokens=4,
                 logprob_tokens=64, policy_batch=2, policy_seq_len=32, step_num_prompts=2, step_n=2,
                 step_max_tokens=8)
DEFAULT_CPU = Workload()
DEFAULT_CUDA = Workload(gen_num_prompts=32, gen_n=8, gen_max_tokens=256, trace_tokens=4096, num_episodes=32,
                        num_traces=8, sample_trace_tokens=4096, sample_num_episodes=16, num_samples=8,
                        max_answer_tokens=32, logprob_tokens=8192, policy_batch=4, policy_seq_len=2048,
                        step_num_prompts=8, step_n=4, step_max_tokens=256)


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
    vllm: "VLLMBaseline | None" = None
    results: list[Result] = field(default_factory=list)

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
        mod = __import__(module, fromlist=[attr] if attr else [])
        return (getattr(mod, attr) if attr else mod), None
    except Exception as exc:  # noqa: BLE001 - any import failure makes the component unavailable
        return None, f"{what} not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def measure(ctx: Context, stage: str, cases: dict[str, tuple[str, callable]], meta: dict[str, dict]) -> list[Result]:
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
                              device=ctx.device, on_step=on_step, on_error=on_error)
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
    del weight, hidden

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


# -- driver -------------------------------------------------------------------------------

STAGE_FNS = {"logprob": stage_logprob}
STAGE_CASES = {"generation": 3, "score": 2, "sample": 3, "logprob": 4, "step": 2}  # timed cases, for the bar


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
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 3; --quick 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before timing (default 1)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "runs" / "throughput"),
                   help="output folder (default runs/throughput/, git-ignored)")
    p.add_argument("--no-vllm", action="store_true", help="skip the vLLM baselines even when vLLM is installed")
    p.add_argument("--vllm-python", default=os.environ.get("MRT_VLLM_PYTHON"),
                   help="python of a virtualenv with vLLM (default: $MRT_VLLM_PYTHON, /work/venvs/vllm, this python)")
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
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.model is None:
        args.model = ["tiny"] if args.quick else (["smollm2-135m", "r1-1.5b-shapes"] if args.device.type == "cuda"
                                                  else ["smollm2-135m"])
    return args


def workload_for(args) -> Workload:
    if args.quick:
        return QUICK
    return DEFAULT_CUDA if args.device.type == "cuda" else DEFAULT_CPU


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    workload = workload_for(args)
    out = Path(args.out)
    results: list[Result] = []
    vllm = None
    total = sum(bar_steps(STAGE_CASES[s], argparse.Namespace(repeats=args.repeats, warmup=args.warmup))
                for s in args.stages) * len(args.model)
    bar = H.progress_bar(total, "throughput", enabled=not args.no_progress)
    t_start = time.perf_counter()
    try:
        for name in args.model:
            bar.set_description(f"loading {name}")
            model, tok = load(name, args.device, args.dtype)
            ctx = Context(model_name=name, model=model, tokenizer=tok, device=args.device, dtype=args.dtype,
                          workload=workload, repeats=args.repeats, warmup=args.warmup, bar=bar, vllm=vllm)
            for stage in args.stages:
                fn = STAGE_FNS.get(stage)
                if fn is None:
                    results.append(unavailable(ctx.label(stage), "all", "ours", "stage not written yet"))
                    continue
                try:
                    results += fn(ctx)
                except Exception as exc:  # noqa: BLE001 - report the stage, keep the others
                    bar.write(f"stage {stage} failed:\n{traceback.format_exc()}")
                    results.append(Result(stage=ctx.label(stage), method="all", role="ours", status=ERROR,
                                          reason=f"{type(exc).__name__}: {exc}"[:200]))
            del ctx, model
    finally:
        bar.close()
        if vllm is not None:
            vllm.close()
    peaks = H.device_peaks(args.device, args.dtype)
    meta = H.machine_info(args.device, args.dtype, extra={
        "models": " ".join(args.model), "repeats": args.repeats, "warmup": args.warmup,
        "quick": args.quick, "peaks": f"{peaks.flops_per_s:.3g} FLOP/s, {peaks.bytes_per_s:.3g} B/s ({peaks.source})",
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    csv_path = H.write_csv(out / "throughput.csv", results, meta, peaks)
    png_path = H.plot_png(out / "throughput.png", results, title=f"mrt_engine throughput - {meta['machine']}, "
                          f"{meta['device']} {meta['dtype']}")
    md = H.format_markdown(results, peaks)
    (out / "throughput.md").write_text(
        f"Command: `{meta['command']}`  \nDate (UTC): {meta['date_utc']}  \nMachine: {meta['machine']}; "
        f"accelerator: {meta['accelerator']}; torch {meta['torch']}, transformers {meta['transformers']}; "
        f"{meta['device']} {meta['dtype']}; {args.repeats} repeats + {args.warmup} warm-up, medians; "
        f"floor from {meta['peaks']}\n\n{md}\n")
    print()
    print(H.format_table(results, peaks))
    print(f"\n{meta['machine']} | {meta['device']} {meta['dtype']} | torch {meta['torch']} | "
          f"{args.repeats} repeats, medians | {time.perf_counter() - t_start:.0f} s")
    print(f"wrote {csv_path}, {png_path}, {out / 'throughput.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
