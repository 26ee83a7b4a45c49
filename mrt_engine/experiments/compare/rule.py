"""The preregistered verdict of a regime (docs/prereg/doubt_bisect.md, "The comparison rule"),
applied to per-seed compare records: :func:`regime_verdict`.

Pure: records in (``{"arm", "seed", "final"}``, ``final`` as ``evaluate_policy`` writes it), a
dict out. The rule's words and how the code reads them are ``regimes.RULE_TEXT`` and
``regimes.RULE_READINGS``; both go into the report beside the verdict.
"""
from __future__ import annotations

import math

from mrt_engine.experiments.regimes import RULE_READINGS, RULE_TEXT, VERDICTS, Regime

from .report import mean_ci

MIN_SEEDS = 2  # one paired seed has no interval


def _per_seed(records: list[dict], arm: str, value) -> dict[int, float]:
    return {r["seed"]: value(r["final"]) for r in records if r["arm"] == arm}


def _paired(records: list[dict], arm: str, control: str, value) -> list[float]:
    a, b = _per_seed(records, arm, value), _per_seed(records, control, value)
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def _interval(m: dict) -> tuple[float, float]:
    half = m["ci95"]
    return (m["mean"] - half, m["mean"] + half) if not math.isnan(half) else (math.nan, math.nan)


def compare_to(records: list[dict], regime: Regime, control: str, arm: str | None = None) -> dict:
    """``arm`` (default: the primary arm) minus ``control``, paired by seed: pass@1 and the
    mechanism metric, each with its 95% t-interval, and which of the rule's conditions hold."""
    arm = regime.primary if arm is None else arm
    d_pass = _paired(records, arm, control, lambda f: f["pass@1"])
    if not d_pass:
        return {"available": False}
    p = mean_ci(d_pass)
    lo, hi = _interval(p)
    res = {"available": True, "num_seeds": len(d_pass), "d_pass@1": {**p, "low": lo, "high": hi},
           "pass_above_0": bool(lo > 0), "pass_excludes_0": bool(lo > 0 or hi < 0),
           "margin_holds": bool(p["mean"] >= -regime.margin), "pass_below_margin": bool(hi < -regime.margin)}
    metric = regime.mechanism
    if metric is not None:
        m = mean_ci(_paired(records, arm, control, lambda f: metric.value(f["mechanism"])))
        mlo, mhi = _interval(m)
        res["d_mechanism"] = {**m, "low": mlo, "high": mhi}
        # NaN bounds (one seed, a rate with nothing to count) compare False: no win, nothing excluded
        res["mechanism_better"] = bool(mhi < 0 if metric.lower_is_better else mlo > 0)
        res["mechanism_excludes_0"] = bool(mlo > 0 or mhi < 0)
    else:
        res["mechanism_better"] = res["mechanism_excludes_0"] = False
    res["win"] = bool(res["pass_above_0"] or (res["margin_holds"] and res["mechanism_better"]))
    return res


def regime_verdict(records: list[dict], regime: Regime) -> dict:
    """The regime's verdict: ``{"verdict", "applies", "against": {control: compare_to(...)}, ...}``.

    ``verdict`` is the first of ``VERDICTS`` whose condition holds (the order the prereg writes
    them), ``"unclassified"`` when none does, or ``"not tested"`` when the primary arm and every
    control did not run on at least 2 common seeds (``reason`` says what is missing);
    ``applies`` lists every verdict whose condition holds.
    """
    against = {c: compare_to(records, regime, c) for c in regime.controls}
    out = {"regime": regime.name, "rule": RULE_TEXT, "readings": RULE_READINGS, "arm": regime.primary,
           "controls": list(regime.controls), "baseline": regime.baseline, "margin": regime.margin,
           "mechanism": None if regime.mechanism is None else {
               "name": regime.mechanism.name, "lower_is_better": regime.mechanism.lower_is_better},
           "against": against}
    short = [c for c, r in against.items() if not r["available"] or r["num_seeds"] < MIN_SEEDS]
    if short:
        out.update(verdict="not tested", applies=[],
                   reason=f"{regime.primary} against {', '.join(short)}: needs both arms on at least "
                          f"{MIN_SEEDS} common seeds (run them with --arms and --seeds)")
        return out
    base = against[regime.baseline]
    holds = {
        "supported": all(r["win"] for r in against.values()),
        "mechanism only": regime.mechanism is not None and all(r["mechanism_better"] for r in against.values())
        and not all(r["pass_above_0"] for r in against.values()),
        "not specific to progress": base["win"] and not all(against[c]["win"] for c in regime.placebos),
        "null": not base["pass_excludes_0"] and not base["mechanism_excludes_0"],
        "harmful": base["pass_below_margin"],
    }
    applies = [v for v in VERDICTS if holds[v]]
    out.update(verdict=applies[0] if applies else "unclassified", applies=applies)
    return out


def secondary_differences(records: list[dict], regime: Regime) -> dict:
    """Every arm the rule does not name (the secondary credit forms), paired by seed against the
    baseline and against the primary arm where those ran: ``{arm: {reference: compare_to(...)}}``.
    Differences only: the prereg gives secondary arms no verdict, and these carry none."""
    ran = list(dict.fromkeys(r["arm"] for r in records))
    named = {regime.primary, *regime.controls}
    return {arm: {ref: compare_to(records, regime, ref, arm=arm) for ref in (regime.baseline, regime.primary)
                  if ref in ran}
            for arm in ran if arm not in named}


def secondary_lines(secondary: dict, mechanism: dict | None) -> list[str]:
    """The secondary arms' paired differences as markdown lines (no verdict: see
    :func:`secondary_differences`); nothing when no secondary arm ran."""
    lines = []
    for arm, against in secondary.items():
        for ref, res in against.items():
            if not res.get("available"):
                continue
            text = f"- {arm} - {ref} ({res['num_seeds']} seeds): pass@1 {_ci(res['d_pass@1'])}"
            if mechanism is not None and "d_mechanism" in res:
                text += f", {mechanism['name']} {_ci(res['d_mechanism'])}"
            lines.append(text)
    if not lines:
        return []
    return ["Secondary arms, paired by seed (differences only: the rule gives them no verdict):", "", *lines]


def verdict_lines(decision: dict) -> list[str]:
    """The verdict and each paired difference, as markdown lines (report.md, published tables)."""
    head = f"**Verdict ({decision['regime']}): {decision['verdict']}**"
    if decision.get("reason"):
        head += f" ({decision['reason']})"
    elif len(decision["applies"]) > 1:
        head += f" (also applies: {', '.join(decision['applies'][1:])})"
    lines = [head, ""]
    mech = decision.get("mechanism")
    for control, res in decision["against"].items():
        if not res.get("available"):
            lines.append(f"- {decision['arm']} - {control}: not run")
            continue
        text = f"- {decision['arm']} - {control} ({res['num_seeds']} seeds): pass@1 {_ci(res['d_pass@1'])}"
        if mech is not None:
            text += f", {mech['name']} {_ci(res['d_mechanism'])}"
        lines.append(text + f"; {'wins' if res['win'] else 'no win'}")
    return lines


def _ci(m: dict) -> str:
    if math.isnan(m.get("low", math.nan)):
        return f"{m['mean']:+.3f} (no interval)"
    return f"{m['mean']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]"
