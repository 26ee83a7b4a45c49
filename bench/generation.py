"""Generation throughput: our engine vs HF ``generate`` vs vLLM, same prompts and settings.

Workloads (SmolLM2-135M-Instruct fp32 on CPU):
  (a) sample: 32 chat prompts x 8 samples x 128 tokens (temperature 1.0)
  (b) branch: one 1,024-token trace, 16 evenly spaced cuts, a termination suffix at each
      cut, 8 samples x 32 tokens per cut (temperature 0.7) - the progress estimator's job.
Every sample runs to its full length (``ignore_eos``) so all three make the same number of
tokens. HF (b) is the naive path: each cut's prompt re-prefilled, ``num_return_sequences``.
vLLM runs in its own virtualenv (``--vllm-python``, default ``$MRT_VLLM_PYTHON`` or the repo's ``.venv-vllm``) as a
subprocess with prefix caching on, from a safetensors copy of the same weights; it is
skipped with a message when that interpreter is missing.

    python bench/generation.py            # full sizes (vLLM start ~80 s, the whole run ~20+ min)
    python bench/generation.py --quick    # tiny sizes, a smoke test of the harness

Prints a table of tokens/s and the ratios engine/HF and engine/vLLM; writes them to --csv.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import find_vllm_python  # noqa: E402

TERMINATION = "\n\nTime is up. Given the time I've spent, the final answer is \\boxed{"
QUESTIONS = [
    "What is the capital of France?", "Explain photosynthesis in simple terms.", "Write a haiku about autumn.",
    "How do I reverse a list in Python?", "What is 17 times 23?", "Name three primary colors.",
    "Why is the sky blue?", "Give me a tip for learning a new language.", "What does a CPU do?",
    "Summarise the plot of Romeo and Juliet.", "How many legs does a spider have?", "What is a prime number?",
    "Tell me a fun fact about octopuses.", "How does a rainbow form?", "What is the boiling point of water?",
    "Write a short poem about the sea.", "What is gravity?", "Suggest a name for a pet turtle.",
    "How do vaccines work?", "What is the largest planet?", "Explain what an API is.", "What causes tides?",
    "How do I make a cup of tea?", "What is machine learning?", "Describe a cat in one sentence.",
    "What is the square root of 144?", "Why do leaves change color?", "What is a black hole?",
    "How far is the Moon?", "What is the speed of light?", "Write a limerick about a frog.",
    "What is the Pythagorean theorem?",
]


def sizes(quick: bool) -> dict:
    if quick:
        return dict(num_prompts=4, n_a=2, tokens_a=16, trace_len=128, num_cuts=4, n_b=2, tokens_b=8)
    return dict(num_prompts=32, n_a=8, tokens_a=128, trace_len=1024, num_cuts=16, n_b=8, tokens_b=32)


def build_workloads(tok, s: dict) -> dict:
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in QUESTIONS[:s["num_prompts"]]]
    prompt_ids = [tok.encode(p) for p in prompts]
    head = tok.apply_chat_template([{"role": "user", "content": "What is 37 * 41 + 12? Think step by step."}],
                                   tokenize=False, add_generation_prompt=True)
    step = ("Let me compute 37 * 41 first. 37 * 40 = 1480, and 37 * 1 = 37, so 37 * 41 = 1517. "
            "Adding 12 gives 1529. Wait, let me double-check that by another route. ")
    trace = tok.encode(head)
    while len(trace) < s["trace_len"]:
        trace += tok.encode(step)
    trace = trace[:s["trace_len"]]
    num_cuts = s["num_cuts"]
    cuts = [round(s["trace_len"] * (k + 1) / num_cuts) for k in range(num_cuts)]
    suffix = tok.encode(TERMINATION)
    return dict(prompt_ids=prompt_ids, trace=trace, cuts=cuts, suffix=suffix)


# -- runners (each returns (seconds, tokens generated)) ----------------------------------
def run_engine_a(gen, w, s):
    from mrt_engine.engine import SamplingParams

    params = SamplingParams(n=s["n_a"], temperature=1.0, max_tokens=s["tokens_a"], ignore_eos=True, seed=0)
    t = time.perf_counter()
    outs = gen.generate(w["prompt_ids"], params)
    return time.perf_counter() - t, sum(len(o.token_ids) for req in outs for o in req)


def run_engine_b(gen, w, s):
    from mrt_engine.engine import SamplingParams

    params = SamplingParams(n=s["n_b"], temperature=0.7, max_tokens=s["tokens_b"], ignore_eos=True, seed=0)
    t = time.perf_counter()
    outs = gen.branch(w["trace"], w["cuts"], [w["suffix"]] * len(w["cuts"]), params)
    return time.perf_counter() - t, sum(len(o.token_ids) for cut in outs for o in cut)


def run_hf_a(model, tok, w, s):
    import torch

    ids = w["prompt_ids"]
    width = max(len(x) for x in ids)
    pad = tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])  # left padding
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                             max_new_tokens=s["tokens_a"], min_new_tokens=s["tokens_a"],
                             num_return_sequences=s["n_a"], pad_token_id=pad)
    return time.perf_counter() - t, (out.shape[1] - width) * out.shape[0]


def run_hf_b(model, tok, w, s):
    import torch

    total = 0
    t = time.perf_counter()
    with torch.inference_mode():
        for cut in w["cuts"]:
            ids = torch.tensor([w["trace"][:cut] + w["suffix"]])
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.7, top_p=1.0,
                                 top_k=0, max_new_tokens=s["tokens_b"], min_new_tokens=s["tokens_b"],
                                 num_return_sequences=s["n_b"], pad_token_id=tok.pad_token_id)
            total += (out.shape[1] - ids.shape[1]) * out.shape[0]
    return time.perf_counter() - t, total


def run_vllm(args, model, tok, w, s) -> dict | None:
    vllm_python, why = find_vllm_python(args.vllm_python)
    if vllm_python is None:
        print(f"[vllm] skipped: {why}")
        return None
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        # A GGUF-loaded model cannot save_pretrained: copy its weights into a fresh model.
        fresh = AutoModelForCausalLM.from_config(model.config)
        fresh.load_state_dict(model.state_dict())
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = Path(tmp) / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)  # the weights are plain fp32 now, not GGUF
        cfg_path.write_text(json.dumps(cfg, indent=1))
        spec = dict(model=tmp, workloads=w, sizes=s, repeats=args.repeats, result=os.path.join(tmp, "result.json"))
        spec_path = os.path.join(tmp, "spec.json")
        Path(spec_path).write_text(json.dumps(spec))
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(args.vllm_kv_gib), TOKENIZERS_PARALLELISM="false")
        env.pop("PYTHONPATH", None)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
            env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{args.threads - 1}"
        print("[vllm] starting the engine in a subprocess (~80 s)...", flush=True)
        log_path = Path(args.csv).with_suffix(".vllm.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            proc = subprocess.run([vllm_python, os.path.abspath(__file__), "--vllm-worker", spec_path], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=args.vllm_timeout)
        if proc.returncode != 0 or not Path(spec["result"]).exists():
            print(f"[vllm] failed (exit {proc.returncode}); last output ({log_path}):\n{log_path.read_text()[-3000:]}")
            return None
        return json.loads(Path(spec["result"]).read_text())


def vllm_worker(spec_path: str) -> None:
    """Runs inside the vLLM virtualenv: no mrt_engine imports here."""
    spec = json.loads(Path(spec_path).read_text())
    from vllm import LLM, SamplingParams, TokensPrompt

    w, s = spec["workloads"], spec["sizes"]
    llm = LLM(model=spec["model"], dtype="float32", enable_prefix_caching=True, seed=0,
              max_model_len=max(2048, len(w["trace"]) + len(w["suffix"]) + s["tokens_b"] + 16))
    # No per-request seed: vLLM-CPU 0.32 fails with "CPU Generator does not use offset" on
    # seeded requests when a long prompt is prefilled in chunks; LLM(seed=0) fixes the run.
    pa = SamplingParams(n=s["n_a"], temperature=1.0, top_p=1.0, max_tokens=s["tokens_a"], ignore_eos=True)
    pb = SamplingParams(n=s["n_b"], temperature=0.7, top_p=1.0, max_tokens=s["tokens_b"], ignore_eos=True)
    prompts_a = [TokensPrompt(prompt_token_ids=ids) for ids in w["prompt_ids"]]
    prompts_b = [TokensPrompt(prompt_token_ids=w["trace"][:c] + w["suffix"]) for c in w["cuts"]]
    llm.generate(prompts_a[:1], SamplingParams(max_tokens=4), use_tqdm=False)  # warm-up
    result = {"a": [], "b": []}
    for _ in range(spec["repeats"]):
        for key, prompts, params in (("a", prompts_a, pa), ("b", prompts_b, pb)):
            llm.reset_prefix_cache()  # each repeat starts cold, as ours does
            t = time.perf_counter()
            outs = llm.generate(prompts, params, use_tqdm=False)
            dt = time.perf_counter() - t
            result[key].append([dt, sum(len(c.token_ids) for o in outs for c in o.outputs)])
    Path(spec["result"]).write_text(json.dumps(result))


# -- main ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (harness smoke test)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                    help="override one size, e.g. --set num_prompts=8 --set trace_len=512 (keys: see sizes())")
    ap.add_argument("--repeats", type=int, default=1, help="timed repeats per system (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch/OMP threads for every system (0: default)")
    ap.add_argument("--csv", default="out/generation.csv", help="where to write the results")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--vllm-python", default=None, help="python with vLLM (default: $MRT_VLLM_PYTHON, the repo's .venv-vllm)")
    ap.add_argument("--kv-gib", type=int, default=3, help="our engine's KV cache size")
    ap.add_argument("--vllm-kv-gib", type=int, default=4)
    ap.add_argument("--vllm-timeout", type=int, default=3600)
    ap.add_argument("--vllm-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return 0

    import torch

    from mrt_engine.engine import Generator
    from mrt_engine.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    s = sizes(args.quick)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in s or not value.isdigit():
            ap.error(f"--set {item!r}: use KEY=INT with KEY one of {sorted(s)}")
        s[key] = int(value)
    model, tok = load_model("smollm2-135m")
    w = build_workloads(tok, s)
    print(f"sizes: {s}; trace {len(w['trace'])} tokens, cuts {w['cuts']}, suffix {len(w['suffix'])} tokens", flush=True)
    gen = Generator(model, tok, max_num_seqs=max(s["num_prompts"] * s["n_a"], s["num_cuts"] * s["n_b"]),
                    kv_cache_bytes=args.kv_gib << 30)
    run_engine_a(gen, {**w, "prompt_ids": w["prompt_ids"][:2]}, {**s, "n_a": 2, "tokens_a": 4})  # warm-up
    timings: dict[str, dict[str, list]] = {"engine": {"a": [], "b": []}, "hf": {"a": [], "b": []}}
    for rep in range(args.repeats):  # interleaved: ours, then HF, per workload
        for key, ours, theirs in (("a", run_engine_a, run_hf_a), ("b", run_engine_b, run_hf_b)):
            timings["engine"][key].append(ours(gen, w, s))
            print(f"[engine] {key}: {timings['engine'][key][-1]}", flush=True)
            if not args.skip_hf:
                timings["hf"][key].append(theirs(model, tok, w, s))
                print(f"[hf]     {key}: {timings['hf'][key][-1]}", flush=True)
    vllm = None if args.skip_vllm else run_vllm(args, model, tok, w, s)
    if vllm:
        timings["vllm"] = vllm

    def tok_per_s(runs):
        return statistics.median(n / t for t, n in runs) if runs else float("nan")

    rows = []
    for key, name in (("a", f"(a) {s['num_prompts']} prompts x {s['n_a']} samples x {s['tokens_a']} tokens"),
                      ("b", f"(b) {s['trace_len']}-token trace, {s['num_cuts']} cuts x {s['n_b']} samples x "
                            f"{s['tokens_b']} tokens")):
        ours = tok_per_s(timings["engine"][key])
        hf = tok_per_s(timings["hf"][key])
        vl = tok_per_s(timings["vllm"][key]) if vllm else float("nan")
        rows.append(dict(workload=name, engine_tok_s=round(ours, 1), hf_tok_s=round(hf, 1), vllm_tok_s=round(vl, 1),
                         engine_over_hf=round(ours / hf, 2), engine_over_vllm=round(ours / vl, 2),
                         tokens=timings["engine"][key][0][1], threads=args.threads or torch.get_num_threads()))
    print()
    print(f"{'workload':<62} {'engine':>8} {'HF':>8} {'vLLM':>8} {'eng/HF':>7} {'eng/vLLM':>8}  (tokens/s)")
    for r in rows:
        print(f"{r['workload']:<62} {r['engine_tok_s']:>8} {r['hf_tok_s']:>8} {r['vllm_tok_s']:>8} "
              f"{r['engine_over_hf']:>7} {r['engine_over_vllm']:>8}")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
