"""What every stage shares: the workload sizes, the per-model context, and one measuring loop."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import torch

from bench.common.flops import ModelDims
from bench.common.memory import peak_memory
from bench.common.results import ERROR, UNAVAILABLE, Result
from bench.common.timing import run_interleaved


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
    # 3 sample mode: num_branches answers of max_answer_tokens tokens at every cut
    sample_trace_tokens: int = 512
    sample_num_episodes: int = 8
    num_branches: int = 4
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
                 sample_trace_tokens=160, sample_num_episodes=4, num_branches=2, max_answer_tokens=4,
                 logprob_tokens=64, policy_batch=2, policy_seq_len=32, step_num_prompts=2, step_n=2,
                 step_max_tokens=8, step_max_cuts=2, step_num_branches=2, step_answer_tokens=4)
DEFAULT_CPU = Workload()
DEFAULT_CUDA = Workload(gen_num_prompts=32, gen_n=8, gen_max_tokens=256, trace_tokens=4096, num_episodes=32,
                        num_traces=8, sample_trace_tokens=4096, sample_num_episodes=16, num_branches=8,
                        max_answer_tokens=32, logprob_tokens=8192, policy_batch=4, policy_seq_len=2048,
                        step_num_prompts=8, step_n=4, step_max_tokens=256, step_max_cuts=6, step_num_branches=4,
                        step_answer_tokens=32)

# bench/gpu_full.sh at r1-1.5b-shapes (byte tokenizer: traces ~2.2x trace_tokens): each stage with its
# baselines (HF generate per prefix is the slow one) inside the stage's time budget on one H200.
GPU_FULL = Workload(gen_num_prompts=16, gen_n=8, gen_max_tokens=128, trace_tokens=2048, num_episodes=16,
                    num_traces=2, sample_trace_tokens=2048, sample_num_episodes=8, num_branches=8,
                    max_answer_tokens=16, logprob_tokens=8192, policy_batch=4, policy_seq_len=2048,
                    step_num_prompts=2, step_n=4, step_max_tokens=128, step_max_cuts=2, step_num_branches=4,
                    step_answer_tokens=16)
WORKLOADS = {"quick": QUICK, "cpu": DEFAULT_CPU, "cuda": DEFAULT_CUDA, "gpu-full": GPU_FULL}


def workload_for(*, quick: bool, device: torch.device, name: str | None = None) -> Workload:
    if name is not None:
        return WORKLOADS[name]
    if quick:
        return QUICK
    return DEFAULT_CUDA if device.type == "cuda" else DEFAULT_CPU


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
    vllm: object | None = None   # a started bench.baselines.vllm_client.VLLMWorker
    vllm_reason: str = ""
    step_shares: dict = field(default_factory=dict)   # {model: {phase: fraction of the step}}
    step_phase_s: dict = field(default_factory=dict)  # {model: {phase: median seconds}}

    @property
    def dims(self) -> ModelDims:
        return ModelDims.from_config(self.model.config)

    @property
    def dtype_bytes(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    def label(self, stage: str) -> str:
        return f"{stage} [{self.model_name}]"


def unavailable(stage: str, method: str, role: str, why: str, *, workload: str = "") -> Result:
    return Result(stage=stage, method=method, role=role, status=UNAVAILABLE, reason=why, workload=workload)


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

    # vLLM's engine core runs on for a second or two after each request; without the wait
    # the next case (often ours) is timed beside it on the same cores.
    settle = ctx.vllm.wait_idle if ctx.vllm is not None and ctx.device.type == "cpu" else None
    times = run_interleaved({m: fn for m, (_, fn) in cases.items()}, repeats=ctx.repeats, warmup=ctx.warmup,
                            device=ctx.device, on_step=on_step, on_error=on_error, before=before, settle=settle)
    out = []
    for method, (role, _) in cases.items():
        r = Result(stage=stage, method=method, role=role, times_s=times[method], **meta.get(method, {}))
        if method in errors:
            r.status, r.reason, r.times_s = ERROR, errors[method], []
        out.append(r)
    return out


def measure_with_memory(ctx: Context, stage: str, cases: dict[str, tuple[str, callable]],
                        meta: dict[str, dict]) -> list[Result]:
    """:func:`measure`, each case's peak memory probed once first (untimed), gradients on."""
    ctx.bar.set_description(stage)
    with torch.enable_grad():
        peaks = {m: peak_memory(fn, ctx.device) for m, (_, fn) in cases.items()}
        measured = measure(ctx, stage, cases, meta)
    for r in measured:
        r.peak_mem_bytes = peaks.get(r.method)
    return measured
