"""The warm-start gates of a regime (docs/prereg/doubt_bisect.md, "Warm-start gates"), measured
before any RL: ``mrt-engine gates --regime doubt|bisect``.

A generalisation of ``scripts/measure_digit_reliability.py``: the regime's warm start is loaded
through a ``Trainer`` built from the regime's compare preset, so the held-out problems are exactly
the comparison's (disjoint from its RL and SFT problems); ``num_samples`` completions per held-out
problem at the rollout budget (eval temperature), J at every cut from compare's measuring
estimator (sample mode, ``num_branches`` forced answers per cut, the outcome at the natural end).
Then the six gates:

1. pass@1 within [0.20, 0.60];
2. the regime's designed J profile (``Regime.j_profile``: :func:`doubt_profile`,
   :func:`bisect_profile`), on J at the forced cuts only;
3. R1 episodes per trace within ±25% of the designed mean;
4. J at the empty prefix below pass@1 by at least 0.1;
5. held-out texts share none with the SFT and RL problems;
6. the corrected progress reliability (forced cuts only) has Spearman-Brown at least 0.8.

How the code reads the prereg's words where they leave a choice: :data:`READINGS` (fixed before
any seed, written into every report).

The checks are pure functions of the measurements (tested on synthetic J curves); the measurement
reuses compare's ``sample_and_estimate``.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASS_BAND = (0.20, 0.60)
EPISODE_TOLERANCE = 0.25
EMPTY_PREFIX_GAP = 0.1
MIN_SPEARMAN_BROWN = 0.8
JUMP = 0.5                       # doubt: the size of a fall / rise of J
DOUBT_FALL_SHARE = 0.20          # of successful traces
DOUBT_RISE_SHARE = 0.10          # of failed traces
BISECT_RISING_EPISODES = 2       # of the first 3
BISECT_REDUNDANT = 0.30
BISECT_HARD_ALL_FAIL = 0.50      # of the hard stratum's groups
READINGS = (
    "'a fall of J of at least 0.5 between two forced cuts' is J[a] - J[b] >= 0.5 for some forced cuts a < b "
    "(a rise likewise); 'median J rises in episode k' is: over the traces whose cut k is forced, the median J "
    "at cut k is above the median at cut k-1; J at the forced cuts only (the natural end is the trace's own "
    "outcome); the designed mean of gate 3 counts the R1 episodes of the task's own solution traces of the "
    "held-out problems cut to the rollout budget, as the measured traces are sampled under it (a regime whose "
    "budget binds would otherwise fail by design), with the uncut mean reported beside it; measured episodes "
    "are R1 episodes of each completion by the same segmenter, no max_cuts."
)


@dataclass
class TraceJ:
    """What the gates read of one held-out trace."""

    forced_j: list[float]              # J at the forced cuts: the empty prefix, then each episode end
    success: bool                      # its own outcome
    group: int = 0                     # the held-out problem it samples
    stratum: str | None = None         # problem.meta["stratum"], where the task has strata
    mechanism: dict = field(default_factory=dict)  # the task's mechanism(problem, completion)


@dataclass
class Gate:
    """One gate's row: what was measured, against what, and whether it passed."""

    name: str
    measured: float
    threshold: str
    passed: bool
    note: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["measured"] = None if isinstance(self.measured, float) and math.isnan(self.measured) else self.measured
        return d


# -- the pure checks --------------------------------------------------------------------------
def largest_fall(j: list[float]) -> float:
    """max of J[a] - J[b] over a < b (0 for fewer than two cuts or a curve that never falls)."""
    best, high = 0.0, -math.inf
    for v in j:
        best, high = max(best, high - v), max(high, v)
    return best


def largest_rise(j: list[float]) -> float:
    """max of J[b] - J[a] over a < b."""
    return largest_fall([-v for v in j])


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def pass_gate(pass1: float, band: tuple[float, float] = PASS_BAND) -> Gate:
    low, high = band
    return Gate("1 pass@1", pass1, f"in [{low:.2f}, {high:.2f}]", bool(low <= pass1 <= high))


def doubt_profile(traces: list[TraceJ], regime=None) -> list[Gate]:
    """Gate 2 of ``doubt``: >= 20% of the successful traces hold a fall of J >= 0.5 between two
    forced cuts, and >= 10% of the failed ones a rise >= 0.5."""
    ok = [largest_fall(t.forced_j) >= JUMP for t in traces if t.success]
    bad = [largest_rise(t.forced_j) >= JUMP for t in traces if not t.success]
    fall, rise = _share(ok), _share(bad)
    return [Gate("2 J falls in successful traces", fall, f">= {DOUBT_FALL_SHARE:.2f} (fall >= {JUMP})",
                 bool(fall >= DOUBT_FALL_SHARE), f"{sum(ok)} of {len(ok)} successful traces"),
            Gate("2 J rises in failed traces", rise, f">= {DOUBT_RISE_SHARE:.2f} (rise >= {JUMP})",
                 bool(rise >= DOUBT_RISE_SHARE), f"{sum(bad)} of {len(bad)} failed traces")]


def j_by_cut(traces: list[TraceJ], num_episodes: int = 3) -> list[dict]:
    """For episode k = 1..num_episodes, over the traces whose cut k is forced: their number and
    the median and mean J at cut k-1 and cut k (None where no trace reaches cut k). What gate 2
    of ``bisect`` reads, kept in the report so a failing profile shows where it departs."""
    out = []
    for k in range(1, num_episodes + 1):
        reach = [t.forced_j for t in traces if len(t.forced_j) > k]
        before, at = [j[k - 1] for j in reach], [j[k] for j in reach]
        out.append({"episode": k, "num_traces": len(reach),
                    "median_before": statistics.median(before) if reach else None,
                    "median_at": statistics.median(at) if reach else None,
                    "mean_before": statistics.fmean(before) if reach else None,
                    "mean_at": statistics.fmean(at) if reach else None})
    return out


def median_rises(traces: list[TraceJ], num_episodes: int = 3) -> list[bool]:
    """For episode k = 1..num_episodes: whether median J at cut k exceeds median J at cut k-1,
    over the traces whose cut k is forced (False where no trace reaches it)."""
    return [_median_rose(row) for row in j_by_cut(traces, num_episodes)]


def _median_rose(row: dict) -> bool:
    return row["num_traces"] > 0 and row["median_at"] > row["median_before"]


def hard_all_fail_share(traces: list[TraceJ], stratum: str = "hard") -> tuple[float, int]:
    """(share of the ``stratum`` problems whose samples all failed, number of such problems)."""
    groups: dict[int, list[bool]] = {}
    for t in traces:
        if t.stratum == stratum:
            groups.setdefault(t.group, []).append(t.success)
    return _share([not any(g) for g in groups.values()]), len(groups)


def mechanism_totals(traces: list[TraceJ]) -> dict:
    """``{"num_traces", "sums"}`` over the traces' mechanism dicts (what compare records)."""
    sums: dict[str, float] = {}
    for t in traces:
        for k, v in t.mechanism.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {"num_traces": len(traces), "sums": sums}


def bisect_profile(traces: list[TraceJ], regime=None) -> list[Gate]:
    """Gate 2 of ``bisect``: median J rises in at least 2 of the first 3 episodes; at least 30% of
    episodes redundant (the regime's mechanism metric, default ``redundant / episodes``); in the
    hard stratum at least half the groups of samples all fail."""
    cuts = j_by_cut(traces)  # read once: gate 2's rises and its note's medians
    rises = [_median_rose(c) for c in cuts]
    totals = mechanism_totals(traces)
    if regime is not None and regime.mechanism is not None:
        redundant = regime.mechanism.value(totals)
    else:
        sums = totals["sums"]
        redundant = sums["redundant"] / sums["episodes"] if sums.get("episodes") else math.nan
    hard, num_hard = hard_all_fail_share(traces)
    return [Gate("2 median J rises (first 3 episodes)", float(sum(rises)), f">= {BISECT_RISING_EPISODES} of 3",
                 sum(rises) >= BISECT_RISING_EPISODES, "episodes 1-3: " + " ".join("up" if r else "no" for r in rises) + " (medians "
                 + ", ".join("-" if c["num_traces"] == 0 else f"{c['median_before']:.3g}->{c['median_at']:.3g}"
                             for c in cuts) + ")"),
            Gate("2 redundant fraction", redundant, f">= {BISECT_REDUNDANT:.2f}", bool(redundant >= BISECT_REDUNDANT),
                 f"{totals['sums'].get('redundant', 0):.0f} of {totals['sums'].get('episodes', 0):.0f} episodes"),
            Gate("2 hard stratum: groups all fail", hard, f">= {BISECT_HARD_ALL_FAIL:.2f}",
                 bool(hard >= BISECT_HARD_ALL_FAIL), f"{num_hard} hard problems")]


def episodes_gate(measured: float, designed: float, tolerance: float = EPISODE_TOLERANCE, note: str = "") -> Gate:
    low, high = designed * (1 - tolerance), designed * (1 + tolerance)
    return Gate("3 episodes per trace", measured, f"in [{low:.2f}, {high:.2f}] (designed {designed:.2f} ± {tolerance:.0%})",
                bool(low <= measured <= high), note)


def empty_prefix_gate(j_empty: float, pass1: float, gap: float = EMPTY_PREFIX_GAP) -> Gate:
    # the floating-point slack keeps an exact gap of 0.1 (e.g. 0.3 vs 0.2) on the passing side
    return Gate("4 J at empty prefix", j_empty, f"<= pass@1 - {gap} = {pass1 - gap:.3f}",
                bool(j_empty <= pass1 - gap + 1e-12))


def disjoint_gate(held: list[str], sft: list[str], rl: list[str], note: str = "") -> Gate:
    shared = set(held) & (set(sft) | set(rl))
    return Gate("5 held-out texts shared with SFT/RL", float(len(shared)), "= 0", not shared,
                note or f"{len(set(held))} held-out, {len(set(sft))} SFT, {len(set(rl))} RL texts")


def reliability_gate(spearman_brown: float | None, num_episodes: int = 0, floor: float = MIN_SPEARMAN_BROWN) -> Gate:
    sb = math.nan if spearman_brown is None else float(spearman_brown)
    return Gate("6 progress Spearman-Brown", sb, f">= {floor}", bool(sb >= floor),
                f"over {num_episodes} episodes between forced cuts")


def format_table(gates: list[Gate]) -> str:
    lines = ["| gate | measured | threshold | result | note |", "|---|---|---|---|---|"]
    for g in gates:
        measured = "-" if math.isnan(g.measured) else f"{g.measured:.3f}"
        lines.append(f"| {g.name} | {measured} | {g.threshold} | {'pass' if g.passed else 'FAIL'} | {g.note} |")
    return "\n".join(lines)


# -- the measurement --------------------------------------------------------------------------
def designed_episodes(problems, tokenizer, *, max_tokens: int | None, scheme: str = "r1",
                      segment_options: dict | None = None) -> float:
    """Mean R1 episodes of the task's own solution trace of each problem (trace i from seed i),
    each cut to its first ``max_tokens`` tokens (None: uncut)."""
    from mrt_engine.episodes import segment
    from mrt_engine.prompts import encode
    from mrt_engine.tasks import solution_trace

    counts = []
    for i, p in enumerate(problems):
        trace = solution_trace(p, seed=i)
        if max_tokens is not None:
            trace = tokenizer.decode(encode(tokenizer, trace)[:max_tokens], skip_special_tokens=True)
        counts.append(len(segment(trace, scheme, **(segment_options or {}))))
    return sum(counts) / len(counts) if counts else math.nan


def forced_j(result) -> list[float]:
    """J at the forced cuts of a ProgressResult: all but the last cut when that one is the
    trace's own outcome (``natural_end="outcome"``, what the measuring estimator uses)."""
    outcome_end = result.natural_end == "outcome" and result.natural_end_included and len(result.j) > 1
    return list(result.j[:-1] if outcome_end else result.j)


def check_measure_args(num_samples: int, num_branches: int) -> None:
    if num_samples < 1 or num_branches < 2:
        raise ValueError(f"num_samples={num_samples}, num_branches={num_branches}: need >= 1 sample and >= 2 "
                         "forced answers per cut (the reliability splits them in halves)")


def gate_trainer(regime, *, num_eval: int | None = None, overrides: dict | None = None, work_dir: str = "runs/gates"):
    """A ``Trainer`` of the regime's compare preset (its warm start, its held-out problems);
    nothing is trained. Every input error surfaces here (ValueError, OSError)."""
    from mrt_engine.config import TrainConfig, set_dotted
    from mrt_engine.config.presets import shipped_config
    from mrt_engine.trainer import Trainer

    if regime.j_profile is None:
        raise ValueError(f"regime {regime.name!r} has no designed J profile to gate; gates exist for "
                         "regimes built for progress credit (doubt, bisect)")
    d = shipped_config(regime.preset)
    for key, value in (overrides or {}).items():
        set_dotted(d, key, value)
    if num_eval is not None:
        if num_eval < 1:
            raise ValueError(f"num_eval={num_eval}: need at least 1 held-out problem")
        d["data"]["num_eval"] = num_eval
    d["output_dir"] = work_dir  # the Trainer writes nothing until it trains; gates never train
    cfg = TrainConfig.from_dict(d)
    if cfg.data.task != regime.task:
        raise ValueError(f"preset {regime.preset} has data.task {cfg.data.task!r}, the regime {regime.name!r} "
                         f"is task {regime.task!r}")
    return Trainer(cfg)


def measure_gates(regime, trainer, *, num_samples: int = 4, num_branches: int = 8, seed: int = 20_000) -> dict:
    """Measure and check the six gates of ``regime`` (a ``regimes.Regime`` with a ``j_profile``)
    on ``trainer``'s policy and held-out problems (:func:`gate_trainer`); returns the report
    (``gates``: the rows, ``passed``: all of them, and the measurements)."""
    import torch

    from mrt_engine.episodes import segment
    from mrt_engine.progress import progress_reliability
    from mrt_engine.tasks import get_task
    from mrt_engine.trainer.setup import warm_start_problems

    from .compare.evaluate import mechanism_sums, sample_and_estimate

    check_measure_args(num_samples, num_branches)
    t0 = time.perf_counter()
    cfg = trainer.cfg
    torch.set_num_threads(int(cfg.num_threads or 1))
    problems = trainer.eval_problems
    samples, results = sample_and_estimate(trainer, problems, num_samples=num_samples, seed=seed,
                                           num_branches=num_branches)
    task = get_task(cfg.data.task)
    per_trace = [task.mechanism(s.problem, s.graded_text) if task.mechanism else {} for s in samples]
    traces = [TraceJ(forced_j(r), s.reward > 0.5, s.group, s.problem.meta.get("stratum"), m)
              for s, r, m in zip(samples, results, per_trace)]
    num = len(samples)
    pass1 = sum(s.reward for s in samples) / num
    j_empty = sum(r.j[0] for r in results) / num
    scheme = cfg.algo.progress.scheme
    seg_opts = dict(cfg.algo.progress.segment_options or {})
    episodes = sum(len(segment(s.graded_text, scheme, **seg_opts)) for s in samples) / num
    designed = designed_episodes(problems, trainer.tok, max_tokens=cfg.rollout.max_tokens, scheme=scheme,
                                 segment_options=seg_opts)
    designed_uncut = designed_episodes(problems, trainer.tok, max_tokens=None, scheme=scheme, segment_options=seg_opts)
    sft = warm_start_problems(cfg.model.name)
    reliability = progress_reliability(results)
    gates = [pass_gate(pass1), *regime.j_profile(traces, regime),
             episodes_gate(episodes, designed, note=f"designed uncut {designed_uncut:.2f}; estimator "
                           f"{sum(r.num_episodes for r in results) / num:.2f} (max_cuts {cfg.algo.progress.max_cuts})"),
             empty_prefix_gate(j_empty, pass1),
             disjoint_gate([p.problem for p in problems], [p.problem for p in sft],
                           [p.problem for p in trainer.train_problems],
                           note=None if sft else f"no SFT recipe known for model {cfg.model.name!r}: checked against RL only"),
             reliability_gate(reliability.spearman_brown, reliability.num_episodes)]
    return {"regime": regime.name, "preset": regime.preset, "model": cfg.model.name,
            "num_problems": len(problems), "num_samples": num_samples, "num_branches": num_branches, "seed": seed,
            "rollout_max_tokens": cfg.rollout.max_tokens,
            "passed": all(g.passed for g in gates), "gates": [g.to_json() for g in gates],
            "pass@1": pass1, "j_empty": j_empty, "episodes": episodes, "designed_episodes": designed,
            "designed_episodes_uncut": designed_uncut, "reliability": reliability.to_json(),
            "mechanism": mechanism_sums(task, samples) if task.mechanism else None,
            "j_by_cut": j_by_cut(traces, 4),
            "seconds": time.perf_counter() - t0, "readings": READINGS}


def write_gates_report(report: dict, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1))
    return path


def gates_table(report: dict) -> str:
    """The printed and written table of a gates report."""
    rows = [Gate(g["name"], math.nan if g["measured"] is None else g["measured"], g["threshold"], g["passed"], g["note"])
            for g in report["gates"]]
    head = (f"gates of regime {report['regime']} (model {report['model']}, preset {report['preset']}): "
            f"{report['num_problems']} held-out problems x {report['num_samples']} samples at "
            f"{report['rollout_max_tokens']} tokens, {report['num_branches']} forced answers per cut "
            f"({report['seconds']:.0f} s)")
    verdict = "all gates pass" if report["passed"] else \
        "FAILED: " + ", ".join(g["name"] for g in report["gates"] if not g["passed"])
    return f"{head}\n\n{format_table(rows)}\n\n{verdict}"
