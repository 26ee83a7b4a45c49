"""Progress estimation throughput: fast vs naive (score and sample mode) vs vLLM (prefix caching).

Workload (default): SmolLM2-135M fp32, 8 traces of ~1,024 tokens with 16 episodes each
(17 cuts: empty prefix, 15 episode ends, natural end), 8 samples of up to 32 tokens per cut
in sample mode. ``--quick``: 2 traces of ~256 tokens, 4 episodes, 4 samples of 8 tokens.

Prints, per mode, episodes (cuts) per second of each method and the speed-ups, and in score
mode the theoretical FLOP ratio naive/fast and the fraction of it reached. Timings are
interleaved (fast, naive, vLLM, then rotated) and medians of ``--repeats`` rounds, as
docs/performance.md asks. vLLM runs in a subprocess under ``--vllm-python`` (default
``$MRT_VLLM_PYTHON`` or the repo's ``.venv-vllm`` when it exists) on a plain HF checkpoint exported from the
model; it is skipped with a note when not installed.

    PYTHONPATH=. python bench/progress.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Workload:
    num_traces: int = 8
    trace_tokens: int = 1024
    num_episodes: int = 16
    num_samples: int = 8
    max_answer_tokens: int = 32


QUICK = Workload(num_traces=2, trace_tokens=256, num_episodes=4, num_samples=4, max_answer_tokens=8)


# -- workload -------------------------------------------------------------------------------
def make_traces(tok, w: Workload, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Deterministic arithmetic traces with ``num_episodes`` R1 episodes of ~equal length."""
    rng = random.Random(seed)
    problems, traces, answers = [], [], []
    per_episode = w.trace_tokens // w.num_episodes
    for i in range(w.num_traces):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        episodes = []
        for e in range(w.num_episodes):
            lead = f"Let me add {a} and {b}." if e == 0 else "Wait, let me check this another way."
            paras = [lead]
            while len(tok("\n\n".join(paras), add_special_tokens=False).input_ids) < per_episode - 4 or len(paras) < 4:
                x, y = rng.randint(1, 99), rng.randint(1, 99)
                paras.append(f"Adding {x} and {y} gives {x + y}, so the running total is {a + b}.")
            episodes.append("\n\n".join(paras))
        problems.append(f"What is {a} + {b}?")
        traces.append("\n\n".join(episodes) + f" So the answer is \\boxed{{{a + b}}}.")
        answers.append(str(a + b))
    return problems, traces, answers


# -- FLOPs ----------------------------------------------------------------------------------
def score_flops(dims, items) -> tuple[float, float]:
    """(naive, fast) model FLOPs of score mode over prepared items (one answer form each)."""
    from harness import attention_pairs_causal as pairs
    from harness import forward_flops

    naive = fast = 0.0
    for it in items:
        full = len(it.prompt_ids) + len(it.trace_ids)
        fast += forward_flops(dims, num_tokens=full, attention_pairs=pairs(full), lm_head_tokens=0)
        for c in range(it.num_cuts):
            ctx = it.context_len(c)
            tail = len(it.suffix_ids[c]) + len(it.answer_ids[0])
            ans = len(it.answer_ids[0])
            naive += forward_flops(dims, num_tokens=ctx + tail, attention_pairs=pairs(ctx + tail), lm_head_tokens=ans + 1)
            fast += forward_flops(dims, num_tokens=tail, attention_pairs=pairs(tail, ctx), lm_head_tokens=ans)
    return naive, fast


# -- vLLM worker (runs under the vLLM virtualenv; imports nothing of ours) -------------------
def vllm_worker(spec_path: str) -> None:
    from vllm import LLM, SamplingParams, TokensPrompt

    spec = json.loads(Path(spec_path).read_text())
    # On the CPU backend gpu_memory_utilization is the fraction of host memory reserved for
    # the KV cache: keep it small on a shared machine (this workload needs little).
    llm = LLM(model=spec["model_dir"], dtype="float32", enable_prefix_caching=True, max_model_len=spec["max_model_len"],
              seed=0, gpu_memory_utilization=spec.get("memory_fraction", 0.08))
    prompts = [TokensPrompt(prompt_token_ids=p) for p in spec["prompts"]]
    params = SamplingParams(n=spec["n"], temperature=spec["temperature"], top_p=1.0, max_tokens=spec["max_tokens"],
                            seed=0)
    times, num_tokens = [], 0
    for _ in range(spec["warmup"] + spec["repeats"]):
        llm.reset_prefix_cache()  # every round starts cold, like ours (prefix reuse within a round only)
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        times.append(time.perf_counter() - t0)
        num_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    print("RESULT " + json.dumps({"times": times[spec["warmup"]:], "num_tokens": num_tokens}), flush=True)


def export_checkpoint(model, tok, path: Path) -> Path:
    """A plain HF (safetensors) copy of the model for vLLM (GGUF-loaded models cannot save)."""
    if (path / "config.json").exists():
        return path
    from transformers import AutoModelForCausalLM

    import copy as _copy

    cfg = _copy.deepcopy(model.config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # weights are already dequantised to fp32: save them plain
    copy = AutoModelForCausalLM.from_config(cfg)
    copy.load_state_dict(model.state_dict())
    path.mkdir(parents=True, exist_ok=True)
    copy.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_vllm(python: str, model, tok, prompts, w: Workload, repeats: int, warmup: int, out_dir: Path):
    ckpt = export_checkpoint(model, tok, out_dir / "hf-checkpoint")
    spec = {"model_dir": str(ckpt), "prompts": prompts, "n": w.num_samples, "temperature": 0.7,
            "max_tokens": w.max_answer_tokens, "repeats": repeats, "warmup": warmup,
            "max_model_len": max(len(p) for p in prompts) + w.max_answer_tokens + 8}
    spec_path = out_dir / "vllm_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", PYTHONPATH="")
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--vllm-worker", str(spec_path)],
                          capture_output=True, text=True, env=env, timeout=3600)
    (out_dir / "vllm.log").write_text(proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"vLLM worker failed (rc={proc.returncode}); see {out_dir / 'vllm.log'}: "
                       f"{(proc.stderr or proc.stdout)[-300:]}")


# -- main -----------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small workload (minutes on a loaded CPU)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--modes", default="score,sample")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--no-vllm", action="store_true")
    p.add_argument("--vllm-python", default=None, help="python with vLLM (default: $MRT_VLLM_PYTHON, the repo's .venv-vllm)")
    p.add_argument("--out", default=None, help="folder for the JSON results (default: a temp dir)")
    p.add_argument("--vllm-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return 0

    sys.path.insert(0, str(HERE))
    import torch

    from harness import ModelDims, find_vllm_python, run_interleaved
    from mrt_engine.models import load_model
    from mrt_engine.progress import ProgressEstimator

    torch.manual_seed(0)
    w = QUICK if args.quick else Workload()
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="bench-progress-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tok = load_model(args.model)
    problems, traces, answers = make_traces(tok, w)
    dims = ModelDims.from_config(model.config)
    report = {"workload": vars(w), "model": args.model, "torch_threads": torch.get_num_threads()}
    lines = [f"workload: {w}; model {args.model}; torch threads {torch.get_num_threads()}"]

    def est(mode, method):
        return ProgressEstimator(model, tok, mode=mode, method=method, template="boxed", num_samples=w.num_samples,
                                 max_answer_tokens=w.max_answer_tokens, temperature=0.7, seed=0, show_progress=False)

    items = est("score", "fast").prepare(problems, traces, answers)
    num_cuts = sum(it.num_cuts for it in items)
    if any(it.num_cuts != w.num_episodes + 1 for it in items):
        raise RuntimeError(f"segmenter found {[it.num_cuts - 1 for it in items]} episodes, expected {w.num_episodes}")
    lines.append(f"{w.num_traces} traces, {sum(len(it.trace_ids) for it in items) / len(items):.0f} tokens each "
                 f"on average, {num_cuts} cuts in all")

    for mode in [m for m in args.modes.split(",") if m]:
        fast, naive = est(mode, "fast"), est(mode, "naive")
        # Untimed warm-up on one short trace: lazy imports (ops, engine, grading) and allocator
        # growth must not land on whichever case happens to run first.
        short = traces[0][: len(traces[0]) // 8]
        for e in (fast, naive):
            e.estimate(problems[:1], [short], answers[:1])
        outputs = {}
        cases = {"fast": lambda: outputs.__setitem__("fast", fast.estimate(problems, traces, answers)),
                 "naive": lambda: outputs.__setitem__("naive", naive.estimate(problems, traces, answers))}
        times = run_interleaved(cases, repeats=args.repeats, warmup=args.warmup)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {k: {"median_s": med[k], "episodes_per_s": num_cuts / med[k]} for k in med}
        lines.append(f"[{mode}] fast {row['fast']['episodes_per_s']:.2f} ep/s ({med['fast']:.2f} s), "
                     f"naive {row['naive']['episodes_per_s']:.2f} ep/s ({med['naive']:.2f} s): "
                     f"speed-up {med['naive'] / med['fast']:.2f}x")
        if mode == "score":
            f_naive, f_fast = score_flops(dims, items)
            theory = f_naive / f_fast
            reached = (med["naive"] / med["fast"]) / theory
            diff = max(abs(a - b) / abs(b) for rf, rn in zip(outputs["fast"], outputs["naive"])
                       for a, b in zip(rf.log_j, rn.log_j))
            row.update(theory_flop_ratio=theory, fraction_of_theory=reached, max_rel_diff_log_j=diff)
            lines.append(f"[score] theoretical FLOP ratio naive/fast {theory:.2f}x; reached {100 * reached:.0f}% "
                         f"(target >= 80%); max relative |log J| difference fast vs naive {diff:.1e}")
        else:
            gen = {k: sum(len(s) for r in outputs[k] for s in (r.samples or [])) for k in outputs}
            row["mean_j"] = {k: sum(sum(r.j) for r in outputs[k]) / num_cuts for k in outputs}
            vllm_python, why = (None, "--no-vllm") if args.no_vllm else find_vllm_python(args.vllm_python)
            if vllm_python is None:
                lines.append(f"[sample] vLLM skipped: {why}")
            else:
                prompts = [it.prompt_ids + it.trace_ids[:it.cut_tokens[c]] + it.suffix_ids[c]
                           for it in items for c in range(it.num_cuts)]
                try:
                    v = run_vllm(vllm_python, model, tok, prompts, w, args.repeats, max(1, args.warmup), out_dir)
                    vmed = statistics.median(v["times"])
                    row["vllm"] = {"median_s": vmed, "episodes_per_s": num_cuts / vmed, "num_tokens": v["num_tokens"]}
                    lines.append(f"[sample] vLLM (prefix caching) {num_cuts / vmed:.2f} ep/s ({vmed:.2f} s): fast is "
                                 f"{vmed / med['fast']:.2f}x vLLM (target >= 1.5x)")
                except Exception as exc:  # noqa: BLE001 - the baseline is optional: say why it is missing
                    row["vllm"] = {"error": str(exc)[:300]}
                    lines.append(f"[sample] vLLM baseline failed: {str(exc)[:200]}")
            lines.append(f"[sample] fast is {med['naive'] / med['fast']:.2f}x naive (target >= 10x); "
                         f"mean J fast {row['mean_j']['fast']:.3f} vs naive {row['mean_j']['naive']:.3f}; {gen}")
        report[mode] = row
    (out_dir / "progress_bench.json").write_text(json.dumps(report, indent=2))
    print("\n".join(lines))
    print(f"results: {out_dir / 'progress_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
