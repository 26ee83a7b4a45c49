"""The demo: warm-started demo model -> short MRT run -> before/after table and PNG.

Runs on CPU in a few minutes. ``DEMO_TRAIN`` and ``DEMO_SFT`` are the configs (mirrored by
``configs/demo.yaml`` and ``configs/sft_demo.yaml``; a test keeps them equal).
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

# A short termination text: the demo model reads bytes, so the paper's long one would cost
# ~200 tokens per forced answer.
DEMO_TEMPLATE = {"text": "\n\nTime is up. The final answer is \\boxed{", "answer_prefix": "The final answer is \\boxed{",
                 "answer_suffix": "}", "name": "demo"}

DEMO_TRAIN = {
    "model": {"name": "demo", "device": "cpu"},
    "data": {"task": "chain", "difficulty": "easy", "num_train": 512, "num_eval": 48, "seed": 1},
    "rollout": {"backend": "engine", "group_size": 4, "max_tokens": 512, "temperature": 0.7},
    "algo": {"name": "mrt_dense", "alpha": 1.0, "template": DEMO_TEMPLATE, "max_cuts": 6, "num_branches": 4,
             "answer_max_tokens": 8, "advantage_scale": "std", "aggregation": "grpo"},
    "optim": {"lr": 1e-4, "warmup_ratio": 0.1, "weight_decay": 0.0, "grad_clip": 1.0, "micro_batch_size": 32},
    "steps": 16, "prompts_per_step": 8, "seed": 0, "output_dir": "runs/demo", "num_threads": 1,
    "tensorboard": True, "progress_bar": True,
}

DEMO_SFT = {
    "model": {"name": "demo-init", "device": "cpu"},
    "data": {"task": "chain", "difficulty": "easy", "num_train": 8000, "num_eval": 48, "seed": 123},
    "steps": 400, "batch_size": 16, "micro_batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.05,
    "template": DEMO_TEMPLATE, "termination_fraction": 0.3, "eval_every": 200, "eval_max_tokens": 512,
    "output_dir": "runs/sft_demo", "num_threads": 1,
}

ROWS = (("pass@1", "pass@1 (greedy)", "{:.3f}"), ("tokens", "mean tokens", "{:.1f}"),
        ("progress", "mean episode progress", "{:+.3f}"), ("regret", "normalized regret", "{:.3f}"),
        ("episodes", "episodes per trace", "{:.2f}"))


def format_table(before: dict, after: dict) -> str:
    lines = [f"{'metric':<24}{'before':>10}{'after':>10}{'change':>10}", "-" * 54]
    for key, label, fmt in ROWS:
        if key in before and key in after:
            b, a = before[key], after[key]
            lines.append(f"{label:<24}{fmt.format(b):>10}{fmt.format(a):>10}{a - b:>+10.3f}")
    return "\n".join(lines)


def plot(before: dict, after: dict, history: list[dict], path: str | Path, *, algo: str = "MRT") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    keys = [k for k, _, _ in ROWS if k in before and k in after and k != "tokens"]
    x = range(len(keys))
    axes[0].bar([i - 0.2 for i in x], [before[k] for k in keys], width=0.4, label="before")
    axes[0].bar([i + 0.2 for i in x], [after[k] for k in keys], width=0.4, label=f"after {algo}")
    axes[0].set_xticks(list(x), keys)
    axes[0].set_title(f"held-out (tokens {before.get('tokens', 0):.0f} -> {after.get('tokens', 0):.0f})")
    axes[0].legend()
    steps = [h["step"] for h in history]
    for key in ("reward", "progress_mean"):
        if history and key in history[0]:
            axes[1].plot(steps, [h[key] for h in history], label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("training")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(*, output_dir: str = "runs/demo", steps: int | None = None, algo: str | None = None,
             from_scratch: bool = False, sft_steps: int | None = None, overrides: dict | None = None) -> dict:
    from mrt_engine.config import TrainConfig
    from mrt_engine.train import train

    t0 = time.perf_counter()
    out = Path(output_dir)
    cfg = copy.deepcopy(DEMO_TRAIN)
    cfg["output_dir"] = str(out / "mrt")
    if steps is not None:
        cfg["steps"] = steps
    if algo is not None:
        cfg["algo"]["name"] = algo
    if from_scratch:
        from mrt_engine.config import SFTConfig, from_dict
        from mrt_engine.rl.sft import run_sft

        sft = copy.deepcopy(DEMO_SFT)
        sft["output_dir"] = str(out / "sft")
        if sft_steps is not None:
            sft["steps"] = sft_steps
        print(f"warm start: SFT for {sft['steps']} steps on {sft['data']['task']} traces")
        summary = run_sft(from_dict(SFTConfig, sft, "sft"))
        cfg["model"] = {"name": "demo-init", "device": "cpu", "init_checkpoint": summary["checkpoint"]}
    for key, value in (overrides or {}).items():
        from mrt_engine.config import set_dotted

        set_dotted(cfg, key, value)
    config = TrainConfig.from_dict(cfg)
    print(f"MRT demo: {config.algo.name}, {config.steps} steps x {config.prompts_per_step} prompts x "
          f"{config.rollout.group_size} traces on the demo model ({config.rollout.backend} generator)")
    result = train(config)
    before, after = result.eval_before or {}, result.eval_after or {}
    table = format_table(before, after)
    print(f"\nHeld-out problems, before vs after {config.algo.name} ({result.steps} steps):\n" + table)
    png = out / "demo.png"
    plot(before, after, result.history, png, algo=config.algo.name)
    elapsed = time.perf_counter() - t0
    report = {"before": before, "after": after, "steps": result.steps, "seconds": elapsed, "png": str(png),
              "algo": config.algo.name}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nplot: {png}   report: {out / 'report.json'}   ({elapsed:.0f} s)")
    return report
