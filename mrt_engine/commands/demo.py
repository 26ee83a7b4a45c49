"""``mrt-engine demo``: GRPO and MRT side by side on CPU in a few minutes (see docs/training.md).

The recipe: the warm start of the ``digit`` regime (``load_model("digit")``, where the base
model solves part of the held-out problems and a retry can fix a wrong first try) -> one
short run per algorithm from the same weights, on the same problems, with the same budget of
generated training tokens -> one table (before, then after each algorithm, with the progress
reliability) and one PNG with a panel per metric. Each algorithm writes under its own folder
(``<output-dir>/<algo>``), so nothing overwrites another. Settings: the shipped ``demo.yaml``
(and ``sft_digit.yaml`` with ``--from-scratch``), read here, never copied. One seed: for
intervals over seeds use ``mrt-engine compare``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from mrt_engine.config import SFTConfig, from_dict, set_dotted
from mrt_engine.config.presets import shipped_config
from mrt_engine.experiments.compare.arms import ARMS
from mrt_engine.experiments.compare import run as compare_run  # by module: tests stand in for run_one
from mrt_engine.experiments.compare.run import EvalSpec
from mrt_engine.experiments.compare.publish import DEMO_ROWS
from mrt_engine.experiments.live import RunBars, WatchedRun
from mrt_engine.trainer.sft import run_sft

DEFAULT_ALGOS = ("grpo", "mrt_dense")
# (key in the measurement, label, format): one list for this table and the published one
ROWS = DEMO_ROWS


def add_parser(sub):
    p = sub.add_parser("demo", help="warm-started small model -> GRPO and MRT side by side -> table and PNG")
    p.add_argument("--output-dir", default="runs/demo", help="where metrics, checkpoints and the PNG go")
    p.add_argument("--algos", nargs="+", help=f"algorithms to run (default: {' '.join(DEFAULT_ALGOS)})")
    p.add_argument("--max-train-tokens", type=int, help="training budget per algorithm (default: the demo config's)")
    p.add_argument("--jobs", type=int, default=2, help="algorithms trained at once, one thread each (default 2)")
    p.add_argument("--from-scratch", action="store_true",
                   help="run the SFT warm start first instead of loading the shipped weights (adds minutes)")
    p.add_argument("--sft-steps", type=int, help="SFT steps with --from-scratch")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress lines on stderr (default: shown on a terminal)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    run_demo(output_dir=args.output_dir, algos=args.algos, max_train_tokens=args.max_train_tokens, jobs=args.jobs,
             from_scratch=args.from_scratch, sft_steps=args.sft_steps, progress=args.progress)
    return 0


def row_values(measure: dict, budget: int) -> dict:
    """The table's numbers from one measurement (regret at the rollout budget)."""
    out = {k: measure[k] for k, _, _ in ROWS if k in measure and not isinstance(measure[k], dict)}
    out["regret"] = measure["regret"][str(budget)]
    for key in ("split_half_r", "spearman_brown"):  # over the episodes between two forced cuts
        r = measure.get("reliability", {}).get(key)
        out[key] = math.nan if r is None else r
    return out


def format_table(columns: dict[str, dict]) -> str:
    """``columns``: heading -> row values; one line per metric."""
    heads = list(columns)
    lines = [f"{'metric':<24}" + "".join(f"{h:>16}" for h in heads), "-" * (24 + 16 * len(heads))]
    for key, label, fmt in ROWS:
        if all(key in c for c in columns.values()):
            lines.append(f"{label:<24}" + "".join(f"{fmt.format(c[key]):>16}" for c in columns.values()))
    return "\n".join(lines)


def plot(columns: dict[str, dict], path: str | Path) -> None:
    """A panel per metric (their scales differ), a bar per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ROWS if all(r[0] in c for c in columns.values())]
    fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows), 3.6))
    names = list(columns)
    for ax, (key, label, fmt) in zip(axes, rows):
        values = [columns[n][key] for n in names]
        bars = ax.bar(range(len(names)), [0.0 if math.isnan(v) else v for v in values],
                      color=[f"C{i}" for i in range(len(names))])
        for bar, v in zip(bars, values):
            ax.annotate(fmt.format(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_ylabel(label, fontsize=8)
        ax.margins(y=0.15)  # room above the tallest bar for its value
    fig.suptitle("held-out problems: the warm start, then each algorithm from it (same token budget)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(*, output_dir: str = "runs/demo", algos=None, max_train_tokens: int | None = None, jobs: int = 2,
             from_scratch: bool = False, sft_steps: int | None = None, overrides: dict | None = None,
             eval_spec=None, progress: bool | None = None) -> dict:
    """The demo: prints the side-by-side table, writes ``demo.png`` and ``report.json``; returns the report.
    ``progress``: a line per algorithm on stderr while it trains (None: on a terminal only)."""

    t0 = time.perf_counter()
    out = Path(output_dir)
    algos = list(algos or DEFAULT_ALGOS)
    unknown = [a for a in algos if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown} for the demo; use some of {sorted(ARMS)}")
    base = shipped_config("demo")
    if max_train_tokens is not None:
        base["max_train_tokens"] = max_train_tokens
    if from_scratch:
        sft = shipped_config("sft_digit")
        sft["output_dir"] = str(out / "sft")
        if sft_steps is not None:
            sft["steps"] = sft_steps
        print(f"warm start: SFT for {sft['steps']} steps on {sft['data']['task']} traces")
        summary = run_sft(from_dict(SFTConfig, sft, "sft_digit"))
        base["model"] = {"name": "demo-init", "device": "cpu", "init_checkpoint": summary["checkpoint"]}
    for key, value in (overrides or {}).items():
        set_dotted(base, key, value)
    # No budget forcing: the table does not show it, and generating past every held-out trace
    # was 44% of the demo's time (profiled: 164 of 373 s); `mrt-engine compare` measures it.
    spec = (eval_spec or EvalSpec(num_samples=4, num_branches=8, budgets=[base["rollout"]["max_tokens"]],
                                  forcing_budget=None)).__dict__
    print(f"demo: {' vs '.join(algos)} from the same warm start ({base['model']['name']}), "
          f"{base['max_train_tokens']} training tokens each, {base['prompts_per_step']} prompts x "
          f"{base['rollout']['group_size']} traces per step")
    args = [(base, a, base["seed"], str(out / a), spec, i == 0) for i, a in enumerate(algos)]
    watched = [WatchedRun(a, out / a, base["steps"], base.get("max_train_tokens")) for a in algos]
    with RunBars(watched, enabled=progress) as bars:
        records = list(compare_run.run_all(args, jobs=min(jobs, len(algos)), on_done=bars.done))
    budget = spec["budgets"][0]
    columns = {"before": row_values(records[0]["start"], budget)}
    for rec in records:
        columns[f"after {rec['arm']}"] = row_values(rec["final"], budget)
    table = format_table(columns)
    print(f"\nHeld-out problems ({records[0]['final']['num_problems']} x {spec['num_samples']} samples), "
          f"before and after each algorithm:\n" + table)
    png = out / "demo.png"
    plot(columns, png)
    elapsed = time.perf_counter() - t0
    report = {"columns": columns, "seconds": elapsed, "png": str(png), "algos": algos,
              "train_tokens": {r["arm"]: r["train_tokens"] for r in records},
              "steps": {r["arm"]: r["steps"] for r in records}}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nprogress reliability: split-half r (two independent J estimates per episode, halves of the "
          f"forced answers) and its Spearman-Brown value (the full estimate's), over the episodes between two "
          f"forced cuts (docs/progress.md); one seed here, intervals in `mrt-engine compare`.\n"
          f"plot: {png}   report: {out / 'report.json'}   ({elapsed:.0f} s)")
    return report

