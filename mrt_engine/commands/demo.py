"""``mrt-engine demo``: MRT end to end on CPU in a few minutes (see docs/training.md).

The recipe: the warm-started demo model (``load_model("demo")``) -> a short MRT run ->
before/after table and PNG. Its settings are the shipped configs ``demo.yaml`` and
``sft_demo.yaml`` (``mrt_engine.configs``; linked from ``configs/``), read here, never copied.
It sits on top of the trainer, so it lives with the commands.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("demo", help="warm-started small model -> short MRT run -> before/after table and PNG")
    p.add_argument("--output-dir", default="runs/demo", help="where metrics, checkpoints and the PNG go")
    p.add_argument("--steps", type=int, help="MRT steps (default: the demo config's)")
    p.add_argument("--algo", help="algorithm (default mrt_dense); e.g. grpo for the baseline")
    p.add_argument("--from-scratch", action="store_true",
                   help="run the SFT warm start first instead of loading the shipped weights (adds minutes)")
    p.add_argument("--sft-steps", type=int, help="SFT steps with --from-scratch")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    run_demo(output_dir=args.output_dir, steps=args.steps, algo=args.algo, from_scratch=args.from_scratch,
             sft_steps=args.sft_steps)
    return 0


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
    """The demo (``configs/demo.yaml``), optionally after its SFT warm start (``configs/sft_demo.yaml``):
    prints the before/after table, writes ``demo.png`` and ``report.json``; returns the report."""
    from mrt_engine.config import SFTConfig, from_dict, set_dotted
    from mrt_engine.configs import shipped_config
    from mrt_engine.train import TrainConfig, train

    t0 = time.perf_counter()
    out = Path(output_dir)
    cfg = shipped_config("demo")
    cfg["output_dir"] = str(out / "mrt")
    if steps is not None:
        cfg["steps"] = steps
    if algo is not None:
        cfg["algo"]["name"] = algo
    if from_scratch:
        from mrt_engine.rl.sft import run_sft

        sft = shipped_config("sft_demo")
        sft["output_dir"] = str(out / "sft")
        if sft_steps is not None:
            sft["steps"] = sft_steps
        print(f"warm start: SFT for {sft['steps']} steps on {sft['data']['task']} traces")
        summary = run_sft(from_dict(SFTConfig, sft, "sft_demo"))
        cfg["model"] = {"name": "demo-init", "device": "cpu", "init_checkpoint": summary["checkpoint"]}
    for key, value in (overrides or {}).items():
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
