"""From per-seed results to the comparison: intervals over seeds, the decision rule, table, plot."""
from __future__ import annotations

import math
from pathlib import Path

from mrt_engine.metrics import student_t_quantile

from .arms import BASELINE, CONTROLS, MRT_ARM, SECONDARY_ARM, SECONDARY_CONTROLS

# Written before the full run (docs/compare.md restates it); `verdict` applies it as written.
DECISION_RULE = (
    f"MRT is supported here if the {MRT_ARM} arm beats both {' and '.join(CONTROLS)} on regret or token "
    "efficiency at equal or better pass@1, consistently across seeds. Paired by seed (same problems and prompt "
    "order), against each control: (a) equal or better pass@1: the mean paired difference in final pass@1 is "
    "at least -0.02; and (b) a win on normalized regret at the rollout budget, or on mean completion tokens: "
    "lower in every seed and the 95% t-interval of the mean paired difference entirely below 0."
)
# The rollout budget is the largest measuring budget (256 tokens in the shipped settings,
# equal to rollout.max_tokens): what `regret_budget` of `verdict` receives.
PASS_MARGIN = 0.02


def t95(num: int) -> float:
    """Two-sided 95% Student-t quantile for ``num`` values (num - 1 degrees of freedom), exact
    for any number of seeds (:func:`mrt_engine.metrics.student_t_quantile`)."""
    return student_t_quantile(0.975, num - 1) if num >= 2 else math.nan


def mean_ci(values: list[float]) -> dict:
    """Mean and 95% t-interval half-width over seeds (NaN half-width for one seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": math.nan, "n": n, "values": values}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "ci95": t95(n) * sd / math.sqrt(n), "n": n, "values": values}


def _scalars(final: dict) -> dict:
    """The per-seed scalar metrics of one final evaluation, flattened."""
    out = {k: final[k] for k in ("pass@1", "tokens", "truncated", "episodes", "progress", "j_empty")}
    for k in ("forced_accuracy", "forced_tokens"):  # absent where budget forcing was skipped (forcing_budget None)
        out[k] = final.get(k, math.nan)
    for b, v in final["regret"].items():
        out[f"regret@{b}"] = v
    for b, v in final["accuracy_at_budget"].items():
        out[f"accuracy@{b}"] = v
    for k, v in final["maj"].items():
        out[f"maj@{k}"] = v["accuracy"]
        out[f"maj@{k}_tokens"] = v["tokens"]
    # progress reliability over the episodes between two forced cuts, under its two names
    for key in ("split_half_r", "spearman_brown"):
        r = final["reliability"].get(key)
        out[key] = math.nan if r is None else r
    return out


def interp_curve(curve: list[dict], tokens: float, key: str = "pass@1") -> float:
    """``key`` at ``tokens`` training tokens, linear between evaluations, flat after the last."""
    pts = [(c["train_tokens"], c[key]) for c in curve]
    if tokens <= pts[0][0]:
        return pts[0][1]
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if tokens <= t1:
            return v0 + (v1 - v0) * (tokens - t0) / max(t1 - t0, 1e-9)
    return pts[-1][1]


def tokens_to_reach(curve: list[dict], target: float, key: str = "pass@1") -> float | None:
    """Training tokens at which the curve first reaches ``target`` (linear between points)."""
    for (a, b) in zip(curve, curve[1:]):
        if a[key] >= target:
            return a["train_tokens"]
        if b[key] >= target:
            return a["train_tokens"] + (target - a[key]) / (b[key] - a[key]) * (b["train_tokens"] - a["train_tokens"])
    return curve[-1]["train_tokens"] if curve and curve[-1][key] >= target else None


def aggregate(records: list[dict], metrics=()) -> dict:
    """``{arm: {metric: mean_ci}}`` plus tokens to reach the baseline's final curve accuracy.

    ``metrics``: a regime's mechanism metrics (``regimes.MechanismMetric``), each under its ``key``,
    from every seed's ``final["mechanism"]``."""
    arms: dict[str, list[dict]] = {}
    for r in records:
        arms.setdefault(r["arm"], []).append(r)
    out = {}
    for arm, recs in arms.items():
        recs = sorted(recs, key=lambda r: r["seed"])
        per = [_scalars(r["final"]) for r in recs]
        out[arm] = {k: mean_ci([p[k] for p in per]) for k in per[0]}
        out[arm]["train_tokens"] = mean_ci([float(r["train_tokens"]) for r in recs])
        out[arm]["seconds"] = mean_ci([float(r["seconds"]) for r in recs])
        for metric in metrics:
            out[arm][metric.key] = mean_ci([metric.value(r["final"].get("mechanism")) for r in recs])
        out[arm]["seeds"] = [r["seed"] for r in recs]
    if BASELINE in arms:
        target = sum(r["curve"][-1]["pass@1"] for r in arms[BASELINE]) / len(arms[BASELINE])
        for arm, recs in arms.items():
            reached = [tokens_to_reach(r["curve"], target) for r in recs]
            got = [t for t in reached if t is not None]
            out[arm]["tokens_to_baseline"] = {"target": target, "reached": len(got), "n": len(reached),
                                              **(mean_ci(got) if got else {"mean": None, "ci95": None})}
    return out


def _paired(records: list[dict], arm: str, control: str, key: str) -> list[float]:
    a = {r["seed"]: _scalars(r["final"])[key] for r in records if r["arm"] == arm}
    b = {r["seed"]: _scalars(r["final"])[key] for r in records if r["arm"] == control}
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def verdict(records: list[dict], *, regret_budget: int, arm: str = MRT_ARM,
            controls: tuple[str, ...] = CONTROLS) -> dict:
    """The decision rule applied to the records: per control the paired differences and wins.

    ``arm``/``controls``: the rule's own pair by default; the secondary hypothesis passes its own."""
    out = {"rule": DECISION_RULE, "arm": arm, "controls": list(controls), "regret_budget": regret_budget,
           "against": {}}
    for control in controls:
        d_pass = _paired(records, arm, control, "pass@1")
        if not d_pass:
            out["against"][control] = {"available": False}
            continue
        res = {"available": True, "num_seeds": len(d_pass), "d_pass@1": mean_ci(d_pass)}
        res["pass_ok"] = res["d_pass@1"]["mean"] >= -PASS_MARGIN
        for name, key in (("regret", f"regret@{regret_budget}"), ("tokens", "tokens")):
            d = mean_ci(_paired(records, arm, control, key))
            upper = d["mean"] + d["ci95"] if not math.isnan(d["ci95"]) else math.nan
            res[f"d_{name}"] = d
            res[f"{name}_win"] = bool(all(v < 0 for v in d["values"]) and upper < 0)
        res["win"] = bool(res["pass_ok"] and (res["regret_win"] or res["tokens_win"]))
        out["against"][control] = res
    done = [v for v in out["against"].values() if v.get("available")]
    out["supported"] = bool(len(done) == len(controls) and all(v["win"] for v in done))
    return out


def _fmt(m: dict | None, spec: str = ".3f") -> str:
    if not m or m.get("mean") is None:
        return "-"
    ci = m.get("ci95")
    body = format(m["mean"], spec)
    return body if ci is None or math.isnan(ci) else f"{body} ± {format(ci, spec)}"


def markdown_table(summary: dict, *, budgets: list[int], extra=()) -> str:
    """One row per arm: mean ± 95% half-width over seeds. ``extra``: (summary key, header) pairs
    shown after pass@1 (a regime's mechanism metrics)."""
    heads = (["arm", "seeds", "pass@1"] + [label for _, label in extra] + ["tokens", "tokens to GRPO final"]
             + [f"regret@{b}" for b in budgets] + ["episodes", "split-half r", "Spearman-Brown", "train tokens"])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for arm, m in summary.items():
        reach = m.get("tokens_to_baseline") or {}
        reach_txt = (f"{_fmt(reach, '.0f')} ({reach['reached']}/{reach['n']})" if reach.get("mean") is not None
                     else f"not reached (0/{reach.get('n', 0)})" if reach else "-")
        row = [arm, str(len(m["seeds"])), _fmt(m["pass@1"])] + [_fmt(m.get(key)) for key, _ in extra]
        row += [_fmt(m["tokens"], ".1f"), reach_txt]
        row += [_fmt(m[f"regret@{b}"]) for b in budgets]
        row += [_fmt(m["episodes"], ".2f"), _fmt(m["split_half_r"], ".2f"), _fmt(m["spearman_brown"], ".2f"),
                _fmt(m["train_tokens"], ".0f")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(records: list[dict], summary: dict, path: str | Path, *, budgets: list[int], max_train_tokens: int) -> None:
    """Four panels: accuracy against training tokens (bands: 95% over seeds), accuracy against
    test-time budget (forced termination, then budget forcing), maj@k against tokens, regret."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    grid = [max_train_tokens * i / 8 for i in range(9)]
    for arm in summary:
        recs = [r for r in records if r["arm"] == arm]
        pts = [mean_ci([interp_curve(r["curve"], t) for r in recs]) for t in grid]
        mean = [p["mean"] for p in pts]
        half = [0.0 if math.isnan(p["ci95"]) else p["ci95"] for p in pts]
        (line,) = ax[0, 0].plot(grid, mean, label=arm)
        # A t-interval over 3 seeds can pass 0 or 1; accuracy cannot.
        ax[0, 0].fill_between(grid, [max(0.0, m - h) for m, h in zip(mean, half)],
                              [min(1.0, m + h) for m, h in zip(mean, half)], color=line.get_color(), alpha=0.12)
        m = summary[arm]
        ax[0, 1].plot([float(b) for b in budgets], [m[f"accuracy@{b}"]["mean"] for b in budgets], marker="o",
                      color=line.get_color(), label=arm)
        # Budget forcing is a different intervention (extend with "Wait"), so it is its own marker,
        # placed at the tokens it actually used (which can be fewer than the last budget).
        ax[0, 1].plot([m["forced_tokens"]["mean"]], [m["forced_accuracy"]["mean"]], marker="*", markersize=12,
                      linestyle="none", color=line.get_color())
        ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("maj@") and not k.endswith("_tokens"))
        ax[1, 0].plot([m[f"maj@{k}_tokens"]["mean"] for k in ks], [m[f"maj@{k}"]["mean"] for k in ks], marker="o",
                      color=line.get_color(), label=arm)
    ax[0, 0].set(xlabel="generated training tokens", ylabel="held-out pass@1 (band: 95% over seeds)",
                 title="accuracy during training")
    ax[0, 1].set(xlabel="completion tokens per trace (stars: budget forcing with \"Wait\")",
                 ylabel="accuracy (forced answer at the budget)", title="accuracy against test-time budget")
    ax[1, 0].set(xlabel="completion tokens per problem (k samples)", ylabel="maj@k accuracy",
                 title="majority vote over k samples (k = 1, 2, 4, ...)")
    arms = list(summary)
    width = 0.8 / len(budgets)
    for j, b in enumerate(budgets):  # every budget: the decision rule reads the last (the rollout budget)
        reg = [summary[a][f"regret@{b}"] for a in arms]
        ax[1, 1].bar([i + (j - (len(budgets) - 1) / 2) * width for i in range(len(arms))], [r["mean"] for r in reg],
                     width, yerr=[0.0 if math.isnan(r["ci95"]) else r["ci95"] for r in reg], capsize=3,
                     label=f"{b} tokens")
    ax[1, 1].set_xticks(range(len(arms)), arms, rotation=20)
    ax[1, 1].set_ylim(0, 1)
    ax[1, 1].legend(fontsize=8, title="budget", title_fontsize=8)
    ax[1, 1].set(ylabel="normalized regret (lower is better)", title="regret at each budget (95% over seeds)")
    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
