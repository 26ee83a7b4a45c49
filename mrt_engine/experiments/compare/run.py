"""Orchestration: every (arm, seed) trained and measured, one result file each, then the report.

A finished (arm, seed) leaves ``arms/<arm>/seed<k>/result.json`` holding its config and its
provenance (a hash of the package's sources and the warm start's checksum); a rerun reuses it
only when the config, the measurement, the code and the warm start all match, so an
interrupted comparison resumes where it stopped (an arm cut off mid-training starts that arm
and seed again) and a result of other code or weights is never mixed in. Arms run in ``jobs`` worker
processes of one thread each (the models are small: two single-threaded runs use two cores
better than one two-threaded run).
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .arms import ARMS, SECONDARY_ARM, SECONDARY_CONTROLS, arm_config
from .report import aggregate, markdown_table, plot, verdict
from mrt_engine.config import TrainConfig, set_dotted
from mrt_engine.config.presets import shipped_config
from mrt_engine.models import _DEMO_WEIGHTS
from mrt_engine.trainer import Trainer
from .evaluate import evaluate_policy
from .rule import regime_verdict, secondary_differences, secondary_lines, verdict_lines
from mrt_engine.experiments.regimes import Regime, get_regime
from mrt_engine.experiments.live import RunBars, WatchedRun


@dataclass
class EvalSpec:
    """How each trained arm is measured (the same for every arm)."""

    num_samples: int = 4                # completions per held-out problem
    num_branches: int = 8               # forced answers per cut of the measuring estimator
    budgets: list = field(default_factory=lambda: [64, 128, 256])  # completion-token budgets
    forcing_budget: int | None = 512    # budget forcing ("Wait") up to this many completion tokens; None: skip


# --quick: the machinery end to end in about a minute (numbers mean nothing at this size). The
# rollout budget lets a trace finish (a digit try is about 40 tokens), so rewards, progress and
# hence the arms' credit differ from step 1 on.
QUICK = {"steps": 8, "max_train_tokens": 800, "prompts_per_step": 2, "rollout.group_size": 2,
         "rollout.max_tokens": 112, "data.num_train": 24, "data.num_eval": 8, "eval_every": 2,
         "algo.num_continuations": 2, "algo.num_terminate": 1, "algo.progress.num_branches": 2,
         "algo.progress.max_cuts": 3}
QUICK_EVAL = EvalSpec(num_samples=2, num_branches=2, budgets=[32, 64, 112], forcing_budget=128)


def regime_eval_spec(regime: Regime, base: dict, *, quick: bool) -> EvalSpec:
    """How the arms of ``regime`` are measured. ``digit``: today's ``EvalSpec()`` (``QUICK_EVAL``
    with --quick), so its reuse is unchanged. The others: the prereg's samples per held-out
    problem (16), regret at a quarter, a half and all of the preset's rollout budget (the last is
    the budget the rule names), and no budget forcing: it is not in their rule and would double
    the cost of 16 samples per problem."""
    if regime.forcing:
        return QUICK_EVAL if quick else EvalSpec()
    budget = int(base["rollout"]["max_tokens"])
    budgets = sorted({max(1, budget // 4), max(1, budget // 2), budget})
    if quick:
        return EvalSpec(num_samples=QUICK_EVAL.num_samples, num_branches=QUICK_EVAL.num_branches, budgets=budgets,
                        forcing_budget=None)
    return EvalSpec(num_samples=regime.num_samples or EvalSpec.num_samples, budgets=budgets, forcing_budget=None)


def run_compare(*, out_dir: str | Path | None = None, arms: list[str] | None = None, seeds: int | None = None,
                first_seed: int | None = None, jobs: int = 2, quick: bool = False, overrides: dict | None = None,
                eval_spec: EvalSpec | None = None, log=print, progress: bool | None = None,
                regime: str = "digit") -> dict:
    """Train and measure every arm at seeds first_seed..first_seed+seeds-1; write report.json,
    report.md, compare.png. A fresh ``first_seed`` tests a hypothesis on seeds it was not drawn from.
    ``progress``: one line on stderr for all the runs while they work (None: on a terminal only).

    ``regime`` (``experiments.regimes``): the preset, measurement, default arms, seeds and output
    folder, and the preregistered verdict in the report. ``digit`` (the default) is today's
    comparison: preset ``compare``, six arms, seeds 0-2, ``runs/compare``. With ``quick`` and no
    ``seeds``/``first_seed``, the other regimes run seeds 0 and 1 (never the preregistered seeds)."""

    t0 = time.perf_counter()
    reg = get_regime(regime)
    if seeds is None:
        seeds = 2 if quick and reg.name != "digit" else reg.seeds
    if first_seed is None:
        first_seed = 0 if quick else reg.first_seed
    out_dir = reg.output if out_dir is None else out_dir
    arms = list(arms or reg.arms)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; arms: {sorted(ARMS)}")
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: need >= 1 (3 or more for intervals that mean something)")
    if first_seed < 0:
        raise ValueError(f"first_seed={first_seed}: need >= 0")
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: need >= 1")
    base = shipped_config(reg.preset)
    for key, value in {**(QUICK if quick else {}), **(overrides or {})}.items():
        set_dotted(base, key, value)
    task = base.get("data", {}).get("task")
    if reg.mechanism is not None and task != reg.task:  # its mechanism metric is that task's
        raise ValueError(f"regime {reg.name}: preset {reg.preset} with the overrides has data.task {task!r}, "
                         f"not {reg.task!r}; run another task under its own regime")
    spec = eval_spec or regime_eval_spec(reg, base, quick=quick)
    out = Path(out_dir)
    tasks = [(arm, seed) for seed in range(first_seed, first_seed + seeds) for arm in arms]
    named = "" if reg.name == "digit" else f"regime {reg.name}: "  # digit logs as it did before regimes
    log(named + f"compare: {len(arms)} arms x {seeds} seeds (from {first_seed}) = {len(tasks)} runs, {jobs} at a time, "
        f"budget {base.get('max_train_tokens')} training tokens each -> {out}")
    code = code_version()  # one version for the whole invocation, read before any run starts
    jobs_args = [(base, arm, seed, str(out / "arms" / arm / f"seed{seed}"), spec.__dict__, False, code)
                 for arm, seed in tasks]
    watched = [WatchedRun(f"{arm} s{seed}", out / "arms" / arm / f"seed{seed}", int(base.get("steps", 1)),
                          base.get("max_train_tokens")) for arm, seed in tasks]
    records = []
    with RunBars(watched, combined=True, enabled=progress) as bars:
        for rec in run_all(jobs_args, jobs=jobs, on_done=bars.done):
            with bars.paused():
                records.append(_report_one(rec, log))
    return write_report(records, out, spec=spec, max_train_tokens=base.get("max_train_tokens") or 0,
                        seconds=time.perf_counter() - t0, quick=quick, log=log, regime=reg)


def run_one_star(args):
    """``run_one(*args)``: a picklable top-level function for process pools."""
    return run_one(*args)


def run_all(args: list[tuple], *, jobs: int, on_done=None):
    """``run_one(*a)`` for each ``a`` in ``args``, ``jobs`` at a time in worker processes of
    their own (``jobs`` 1: here, one after another); yields the records in the order of ``args``.
    ``on_done(i, note)`` is called as run ``i`` returns ("done", "reused" or "failed"), in the
    order they finish."""
    def finished(i: int, rec: dict | None) -> None:
        if on_done is not None:
            on_done(i, "failed" if rec is None else "reused" if rec.get("reused") else "done")

    if jobs <= 1:
        for i, a in enumerate(args):
            try:
                rec = run_one(*a)
            except BaseException:
                finished(i, None)
                raise
            finished(i, rec)
            yield rec
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one_star, a) for a in args]
        for i, fut in enumerate(futures):
            fut.add_done_callback(lambda f, i=i: finished(i, None if f.cancelled() or f.exception() else f.result()))
        for fut in futures:
            yield fut.result()


def _report_one(rec: dict, log) -> dict:
    f = rec["final"]
    log(f"  {rec['arm']:<16} seed {rec['seed']}: pass@1 {f['pass@1']:.3f}  tokens {f['tokens']:.1f}  "
        f"episodes {f['episodes']:.2f}  ({rec['seconds']:.0f} s{', reused' if rec.get('reused') else ''})")
    return rec


def run_one(base: dict, arm: str, seed: int, run_dir: str, spec: dict, measure_start: bool = False,
            code: str | None = None) -> dict:
    """Train ``arm`` at ``seed`` and measure it; reuse a finished result with the same settings.

    ``measure_start``: also measure the warm start before training (``record["start"]``).
    ``code``: the code version to record and match (default: :func:`code_version` now).
    """
    import torch

    cfg = arm_config(base, arm, seed, run_dir)
    path = Path(run_dir) / "result.json"
    made_by = provenance(cfg, code=code)
    if path.exists():
        rec = json.loads(path.read_text())
        if reusable(rec, cfg, spec, made_by, measure_start=measure_start):
            return {**rec, "reused": True}
    t0 = time.perf_counter()
    torch.set_num_threads(int(cfg.get("num_threads") or 1))
    trainer = Trainer(TrainConfig.from_dict(cfg))

    def measure():
        return evaluate_policy(trainer, trainer.eval_problems, num_samples=spec["num_samples"], seed=20_000 + seed,
                               budgets=spec["budgets"], forcing_budget=spec["forcing_budget"],
                               num_branches=spec["num_branches"])

    start = measure() if measure_start else None
    result = trainer.run()
    final = measure()
    hist = result.history
    def train_mean(key):  # a step with < 3 episodes between forced cuts logs NaN
        vals = [h[key] for h in hist if h.get(key) is not None and h[key] == h[key]]
        return sum(vals) / len(vals) if vals else None

    rec = {"arm": arm, "seed": seed, "config": cfg, "eval_spec": spec, "provenance": made_by, "steps": result.steps,
           "train_tokens": trainer.extra.get("train_tokens", 0), "seconds": time.perf_counter() - t0,
           "progress_seconds": sum(h.get("time/progress_s", 0.0) for h in hist),
           "train_split_half_r": train_mean("progress/split_half_r"),
           "train_spearman_brown": train_mean("progress/spearman_brown"),
           "curve": [{k: e[k] for k in ("step", "train_tokens", "pass@1", "tokens") if k in e} for e in result.evals],
           "final": final, "start": start}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1, allow_nan=True))
    tmp.replace(path)
    return rec


def reusable(rec: dict, cfg: dict, spec: dict, made_by: dict, *, measure_start: bool = False) -> bool:
    """Whether a finished ``result.json`` stands for this run: the same config and measurement,
    made by the same code and from the same warm start (a record without provenance, from
    before it was kept, is never reused)."""
    return (rec.get("config") == cfg and rec.get("eval_spec") == spec and rec.get("provenance") == made_by
            and bool(rec.get("start") or not measure_start))


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of the package's sources (every .py and .yaml under mrt_engine/, by relative path):
    it changes with any edit, committed or not, where a git hash would not."""
    root = Path(__file__).resolve().parents[2]  # mrt_engine/
    digest = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()):
        digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def warm_start_checksum(model: dict) -> str | None:
    """sha256 of the weights a run starts from: the shipped asset of an embedded warm start
    (``digit``, ``demo``), or ``model.init_checkpoint``; None for weights a seed builds (``tiny``,
    ``demo-init``: the config already names them) or a hub id."""
    path = model.get("init_checkpoint") or (str(_DEMO_WEIGHTS[model["name"]][0]) if model.get("name") in _DEMO_WEIGHTS
                                            else model.get("name"))
    path = Path(path) if path else None
    if path is None or not path.exists():
        return None
    files = sorted(path.rglob("*.safetensors")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def provenance(cfg: dict, *, code: str | None = None) -> dict:
    """What made a result besides its config: the code version and the warm start's checksum."""
    return {"code": code or code_version(), "warm_start": warm_start_checksum(cfg.get("model", {}))}


def write_report(records: list[dict], out: Path, *, spec: EvalSpec, max_train_tokens: int, seconds: float,
                 quick: bool, log=print, regime: Regime | None = None) -> dict:
    regime = regime or get_regime("digit")
    if regime.name != "digit":
        return _write_regime_report(records, out, regime=regime, spec=spec, max_train_tokens=max_train_tokens,
                                    seconds=seconds, quick=quick, log=log)
    summary = aggregate(records)
    regret_budget = max(spec.budgets)  # the rollout budget (see report.DECISION_RULE)
    decision = verdict(records, regret_budget=regret_budget)
    secondary = verdict(records, regret_budget=regret_budget, arm=SECONDARY_ARM, controls=SECONDARY_CONTROLS)
    # the prereg's rule on digit, the negative control: reported only where its arms ran, so
    # today's run (without mrt_dense_centred) writes today's report
    negative = regime_verdict(records, regime)
    tested = negative["verdict"] != "not tested"
    table = markdown_table(summary, budgets=spec.budgets)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "compare.png"
    plot(records, summary, png, budgets=spec.budgets, max_train_tokens=max_train_tokens)
    keep = ("arm", "seed", "steps", "train_tokens", "seconds", "progress_seconds", "train_split_half_r",
            "train_spearman_brown", "curve")
    report = {"quick": quick, "seconds": seconds, "eval_spec": spec.__dict__, "summary": summary,
              "verdict": decision, "secondary_verdict": secondary,
              "runs": [{k: r[k] for k in keep} for r in records]}
    if tested:
        report.update(regime=regime.name, regime_verdict=negative)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = [f"# mrt-engine compare{' --quick' if quick else ''}", "",
             _timing(records, seconds) + " Mean ± 95% t-interval half-width over seeds.", "",
             table, "", "## Decision rule (fixed before the run)", "",
             decision["rule"] + f" (Here the rollout budget is {regret_budget} tokens.)", "",
             f"**Outcome: {_outcome(decision)}**", ""]
    lines += _verdict_lines(decision)
    if any(res.get("available") for res in secondary["against"].values()):
        lines += ["", f"## Follow-up: {SECONDARY_ARM} against {' and '.join(SECONDARY_CONTROLS)} (same rule)", "",
                  "Stated after the first full run; it counts only on seeds that run did not use (docs/compare.md).",
                  "", f"**{SECONDARY_ARM} {'wins' if secondary['supported'] else 'does not win'} on seeds "
                  f"{sorted({r['seed'] for r in records if r['arm'] == SECONDARY_ARM})}.**", ""]
        lines += _verdict_lines(secondary)
    if tested:
        lines += ["", "## The preregistered rule of issue 25 (digit: its negative control)", ""]
        lines += rule_lines(negative, regime, spec)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    follow = (f"\nFollow-up: {SECONDARY_ARM} {'wins' if secondary['supported'] else 'does not win'} against "
              f"{' and '.join(SECONDARY_CONTROLS)}." if any(r.get("available") for r in secondary["against"].values())
              else "")
    if tested:
        follow += f"\nPreregistered rule (negative control): {negative['verdict']}."
    log("\n" + table + f"\n\n{decision['rule']}\nOutcome: {_outcome(decision)}{follow}\nreport: {out / 'report.md'}  {out / 'report.json'}  plot: {png}  "
        f"({seconds / 60:.1f} min)")
    return report


def rule_lines(decision: dict, regime: Regime, spec: EvalSpec | dict) -> list[str]:
    """The preregistered rule as written, how the code reads it, what this regime plugs in, and
    the verdict with each paired difference (report.md)."""
    spec = spec if isinstance(spec, dict) else spec.__dict__
    mech = regime.mechanism
    here = (f"Here: primary arm {regime.primary} against {', '.join(regime.controls)}; mechanism metric "
            + (f"{mech.name} ({'lower' if mech.lower_is_better else 'higher'} is better; parsed from each held-out "
               f"completion by the task's mechanism hook)" if mech else "none (pass@1 only)")
            + f"; {spec['num_samples']} samples per held-out problem at the {max(spec['budgets'])}-token rollout "
            f"budget; margin {regime.margin}.")
    return [f"{decision['rule']} (docs/prereg/doubt_bisect.md)", "", f"How the code reads it: {decision['readings']}",
            "", here, "", *verdict_lines(decision)]


def _write_regime_report(records: list[dict], out: Path, *, regime: Regime, spec: EvalSpec, max_train_tokens: int,
                         seconds: float, quick: bool, log=print) -> dict:
    """report.json / report.md / compare.png of a regime built for progress credit: the per-arm
    table with its mechanism metrics, and the preregistered verdict (not digit's decision rule)."""
    summary = aggregate(records, metrics=regime.metrics)
    decision = regime_verdict(records, regime)
    secondary = secondary_differences(records, regime)
    columns = [[m.key, m.name] for m in regime.metrics]
    table = markdown_table(summary, budgets=spec.budgets, extra=columns)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "compare.png"
    plot(records, summary, png, budgets=spec.budgets, max_train_tokens=max_train_tokens)
    keep = ("arm", "seed", "steps", "train_tokens", "seconds", "progress_seconds", "train_split_half_r",
            "train_spearman_brown", "curve")
    report = {"regime": regime.name, "preset": regime.preset, "quick": quick, "seconds": seconds,
              "eval_spec": spec.__dict__, "mechanism_columns": columns, "summary": summary,
              "regime_verdict": decision, "secondary": secondary,
              "runs": [{k: r[k] for k in keep} for r in records]}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    more = secondary_lines(secondary, decision["mechanism"])
    lines = [f"# mrt-engine compare --regime {regime.name}{' --quick' if quick else ''}", "",
             _timing(records, seconds) + " Mean ± 95% t-interval half-width over seeds.", "", table, "",
             "## The preregistered rule (fixed before the run)", "", *rule_lines(decision, regime, spec),
             *(["", "## Secondary arms", "", *more] if more else [])]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    log("\n" + table + f"\n\nPreregistered rule (docs/prereg/doubt_bisect.md): verdict {decision['verdict']}"
        + (f" ({decision['reason']})" if decision.get("reason") else "")
        + f"\nreport: {out / 'report.md'}  {out / 'report.json'}  plot: {png}  ({seconds / 60:.1f} min)")
    return report


def _timing(records: list[dict], seconds: float) -> str:
    """How long the runs took. Reused runs were timed by the invocation that made them: their
    own seconds are summed (a rerun that reuses everything took seconds, the runs did not)."""
    reused = [r for r in records if r.get("reused")]
    if not reused:
        return f"{len(records)} runs in {seconds / 60:.1f} min."
    own = sum(r["seconds"] for r in reused) / 60
    return (f"{len(records)} runs; {len(reused)} reused from an earlier invocation ({own:.1f} run-minutes "
            f"of their own, summed over runs that may have run side by side), this invocation "
            f"{seconds / 60:.1f} min.")


def _outcome(decision: dict) -> str:
    """The rule's outcome in words; a run without the arm or any control has not tested it
    (a follow-up run of other arms must not read as a negative result)."""
    if not any(res.get("available") for res in decision["against"].values()):
        return (f"the rule was not tested: this run lacks {decision['arm']} or all of "
                f"{', '.join(decision['controls'])}.")
    return f"MRT {'is' if decision['supported'] else 'is not'} supported by this run."


def _verdict_lines(decision: dict) -> list[str]:
    out = []
    for control, res in decision["against"].items():
        if res.get("available"):
            out.append(f"- against {control} ({res['num_seeds']} seeds): pass@1 difference {_pm(res['d_pass@1'])}, "
                       f"regret@{decision['regret_budget']} difference {_pm(res['d_regret'])}, tokens difference "
                       f"{_pm(res['d_tokens'], '+.1f')}; {'win' if res['win'] else 'no win'}")
        else:
            out.append(f"- against {control}: not run")
    return out


def _pm(m: dict, spec: str = "+.3f") -> str:
    import math

    ci = m.get("ci95")
    return format(m["mean"], spec) + ("" if ci is None or math.isnan(ci) else f" ± {ci:.3f}")
