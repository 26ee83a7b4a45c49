"""Metrics of test-time compute: normalized regret, episode regret, pass@k, maj@k, token efficiency.

Every function here is pure (numbers in, numbers out) so the CLI, the trainer's logging and
the notebooks share one definition.

Curves. A *J curve* is a list of points ``(tokens, J)``: the tokens spent when the model is
forced to answer at a cut (prompt + prefix + termination + mean answer length, see
``ProgressResult.tokens_at_cut``) and the success probability there. A curve starts at
``(0, 0)`` (prepended here: nothing spent, nothing solved), is linear between points and
flat after its last point. ``tokens`` must be non-decreasing; equal tokens make a vertical
step.

Where we depart from the authors' released analysis scripts (docs/method.md section 7): answer
lengths are the mean over the samples actually drawn (their script divides a sum over 8
samples by 16), and every trace is paired with its own prefixes. The formula itself is
theirs: ``regret(C0) = 1 - (1/C0) * integral_0^C0 J(t) dt`` with comparator ``J* = 1``.
"""
from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

Curve = Sequence[tuple[float, float]]


# -- curves ---------------------------------------------------------------------------------
def _check_curve(tokens: Sequence[float], values: Sequence[float], name: str = "curve") -> list[tuple[float, float]]:
    if len(tokens) != len(values):
        raise ValueError(f"{name}: tokens and values differ in length ({len(tokens)} vs {len(values)})")
    if len(tokens) == 0:
        raise ValueError(f"{name}: empty curve; a J curve needs at least one (tokens, J) point")
    points = [(float(t), float(v)) for t, v in zip(tokens, values)]
    for (t0, _), (t1, _) in zip(points, points[1:]):
        if t1 < t0:
            raise ValueError(f"{name}: tokens must be non-decreasing, got {t0} then {t1}")
    if points[0][0] < 0:
        raise ValueError(f"{name}: tokens must be >= 0, got {points[0][0]}")
    for t, v in points:
        if not (math.isfinite(t) and math.isfinite(v)):
            raise ValueError(f"{name}: non-finite point ({t}, {v})")
    return [(0.0, 0.0)] + points


def curve_value(points: list[tuple[float, float]], t: float) -> float:
    """Value at ``t`` of a curve that already starts at (0, 0): linear, flat after the end.

    At a vertical step (two points with equal tokens) the value is the later point's.
    """
    if t >= points[-1][0]:
        return points[-1][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= t < t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[0][1]  # t < 0 never happens for budgets >= 0


def curve_area(points: list[tuple[float, float]], budget: float) -> float:
    """Exact integral over [0, budget] of a piecewise-linear curve starting at (0, 0)."""
    area = 0.0
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 >= budget:
            break
        if t1 == t0:
            continue
        hi = min(t1, budget)
        v_hi = v0 + (v1 - v0) * (hi - t0) / (t1 - t0)
        area += 0.5 * (v0 + v_hi) * (hi - t0)
    last_t, last_v = points[-1]
    if budget > last_t:
        area += last_v * (budget - last_t)
    return area


def normalized_regret(tokens: Sequence[float], j: Sequence[float], budget: float, *, comparator: float = 1.0) -> float:
    """Normalized regret of one J curve at token budget ``budget`` (docs/method.md section 7).

    ``1 - (1/(comparator * C0)) * integral_0^C0 J(t) dt`` with ``(0, 0)`` prepended, linear
    interpolation, and J held flat after the last cut. With the default comparator ``J* = 1``
    this is the authors' formula; a J that reaches 1 at once gives regret close to 0, a J that
    stays at 0 gives 1.
    """
    if budget <= 0:
        raise ValueError(f"budget must be > 0 tokens, got {budget}")
    if comparator <= 0:
        raise ValueError(f"comparator must be > 0, got {comparator}")
    points = _check_curve(tokens, j, "normalized_regret")
    return 1.0 - curve_area(points, budget) / (comparator * budget)


def mean_normalized_regret(curves: Sequence[tuple[Sequence[float], Sequence[float]]], budgets: Sequence[float],
                           *, comparator: float = 1.0) -> dict[float, float]:
    """Mean over traces of ``normalized_regret`` at each budget: ``{budget: regret}``."""
    if not curves:
        raise ValueError("mean_normalized_regret: no curves given")
    return {float(b): sum(normalized_regret(t, j, b, comparator=comparator) for t, j in curves) / len(curves)
            for b in budgets}


# -- envelope regret ------------------------------------------------------------------------
def _upper_envelope_area(curves: list[list[tuple[float, float]]], budget: float) -> float:
    """Exact integral over [0, budget] of max_c curve_c(t) for piecewise-linear curves."""
    knots = sorted({t for c in curves for t, _ in c if t < budget} | {0.0, budget})
    area = 0.0
    for a, b in zip(knots, knots[1:]):
        if b <= a:
            continue
        # Every curve is linear on (a, b); steps sit on knots, so take one-sided limits.
        lines = [(_value_right(c, a), _value_left(c, b)) for c in curves]
        # Upper envelope of lines on [a, b]: split at every pairwise crossing inside.
        xs = {0.0, 1.0}
        for (p0, p1), (q0, q1) in itertools.combinations(lines, 2):
            denom = (p1 - p0) - (q1 - q0)
            if denom != 0:
                s = (q0 - p0) / denom
                if 0.0 < s < 1.0:
                    xs.add(s)
        xs = sorted(xs)
        for s0, s1 in zip(xs, xs[1:]):
            m0 = max(l0 + (l1 - l0) * s0 for l0, l1 in lines)
            m1 = max(l0 + (l1 - l0) * s1 for l0, l1 in lines)
            area += 0.5 * (m0 + m1) * (s1 - s0) * (b - a)
    return area


def _value_right(points: list[tuple[float, float]], t: float) -> float:
    """Right limit of the curve at t (after any vertical step at t)."""
    value = curve_value(points, t)
    for pt, pv in points:
        if pt == t:
            value = pv
    return value


def _value_left(points: list[tuple[float, float]], t: float) -> float:
    """Left limit of the curve at t > 0 (before any vertical step at t)."""
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 < t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[-1][1]


@dataclass(frozen=True)
class EnvelopeRegret:
    regret: float          # (area under envelope - area under model curve) / area under envelope
    model_area: float      # integral of the model's J curve over [0, budget]
    envelope_area: float   # integral of the upper envelope over [0, budget]
    budget: float


def envelope_regret(tokens: Sequence[float], j: Sequence[float], comparators: Sequence[tuple[Sequence[float], Sequence[float]]],
                    *, budget: float | None = None) -> EnvelopeRegret:
    """Regret of a model's J curve against the upper envelope of itself and comparator curves.

    ``comparators`` are curves ``(tokens, values)``, e.g. from ``parallel_majority_curves``:
    from each cut, spend the rest of the budget on k parallel answers and majority-vote. The
    envelope is the pointwise max of all curves (each starting at (0, 0), flat after its last
    point); regret = area between envelope and model curve over area under the envelope, on
    [0, budget] (default: the largest token count among all curves). Since the model's own
    curve is part of the envelope, regret is in [0, 1]. When the envelope's area is 0 (nothing
    ever solved), regret is defined as 0: no strategy did better.
    """
    model = _check_curve(tokens, j, "model curve")
    others = [_check_curve(t, v, f"comparator {i}") for i, (t, v) in enumerate(comparators)]
    all_curves = [model] + others
    if budget is None:
        budget = max(c[-1][0] for c in all_curves)
    if budget <= 0:
        raise ValueError(f"budget must be > 0 tokens, got {budget}")
    model_area = curve_area(model, budget)
    envelope_area = _upper_envelope_area(all_curves, budget)
    envelope_area = max(envelope_area, model_area)  # rounding only
    regret = 0.0 if envelope_area == 0 else (envelope_area - model_area) / envelope_area
    return EnvelopeRegret(regret=regret, model_area=model_area, envelope_area=envelope_area, budget=float(budget))


def parallel_majority_curves(tokens_at_cut: Sequence[float], answer_tokens: Sequence[float],
                             maj: Sequence[dict[int, float]]) -> list[tuple[list[float], list[float]]]:
    """Comparator curves for ``envelope_regret``: at cut j, k parallel answers voted by majority.

    ``tokens_at_cut[j]`` already includes one answer; k answers cost
    ``tokens_at_cut[j] + (k - 1) * answer_tokens[j]``. ``maj[j]`` maps k -> maj@k accuracy at
    cut j (e.g. ``{1: .., 2: .., 4: .., 8: ..}``, computed with ``maj_at_k``).
    """
    if not (len(tokens_at_cut) == len(answer_tokens) == len(maj)):
        raise ValueError("tokens_at_cut, answer_tokens and maj must have one entry per cut")
    curves = []
    for t, a, by_k in zip(tokens_at_cut, answer_tokens, maj):
        ks = sorted(by_k)
        if not ks or ks[0] < 1:
            raise ValueError(f"maj entries need keys k >= 1, got {sorted(by_k)}")
        curves.append(([t + (k - 1) * a for k in ks], [by_k[k] for k in ks]))
    return curves


# -- sampling metrics -----------------------------------------------------------------------
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: ``1 - C(n-c, k) / C(n, k)`` from n samples of which c are correct."""
    if not (0 <= c <= n):
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # Product form: no huge binomials.
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def cluster_answers(answers: Sequence[str | None], *, equiv: Callable[[str, str], bool] | None = None) -> list[int | None]:
    """Cluster label per answer (None for a missing answer), by an equivalence predicate.

    Greedy: an answer joins the first cluster whose representative it is equivalent to.
    ``equiv`` defaults to string equality after stripping whitespace; pass
    ``mrt_engine.grading.is_equiv`` for math equivalence.
    """
    if equiv is None:
        def equiv(a, b):
            return a.strip() == b.strip()
    reps: list[str] = []
    labels: list[int | None] = []
    for ans in answers:
        if ans is None:
            labels.append(None)
            continue
        for idx, rep in enumerate(reps):
            if equiv(ans, rep):
                labels.append(idx)
                break
        else:
            reps.append(ans)
            labels.append(len(reps) - 1)
    return labels


def _vote(labels: Sequence[int | None], cluster_correct: dict[int, bool]) -> float:
    counts: dict[int, int] = {}
    for lab in labels:
        if lab is not None:
            counts[lab] = counts.get(lab, 0) + 1
    if not counts:
        return 0.0
    top = max(counts.values())
    winners = [lab for lab, c in counts.items() if c == top]
    return sum(cluster_correct[w] for w in winners) / len(winners)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int, *,
             equiv: Callable[[str, str], bool] | None = None, max_subsets: int = 2000, seed: int = 0) -> float:
    """Expected majority-vote accuracy of k answers drawn without replacement from the n given.

    Answers are clustered by ``equiv`` (see ``cluster_answers``); the most voted cluster wins;
    a tie among m clusters scores (number of correct clusters among them) / m, so a two-way
    tie between a right and a wrong answer counts half. Missing answers (None) do not vote;
    k missing answers score 0. A cluster is correct when its first member is.

    Exact (every k-subset) when there are at most ``max_subsets`` subsets, else the mean over
    ``max_subsets`` random subsets drawn with ``seed`` (the authors resample too).
    """
    n = len(answers)
    if len(correct) != n:
        raise ValueError(f"maj_at_k: {n} answers but {len(correct)} correctness flags")
    if not (1 <= k <= n):
        raise ValueError(f"maj_at_k: need 1 <= k <= n, got n={n}, k={k}")
    labels = cluster_answers(answers, equiv=equiv)
    cluster_correct: dict[int, bool] = {}
    for lab, ok in zip(labels, correct):
        if lab is not None and lab not in cluster_correct:
            cluster_correct[lab] = bool(ok)
    if math.comb(n, k) <= max_subsets:
        subsets = itertools.combinations(range(n), k)
        scores = [_vote([labels[i] for i in s], cluster_correct) for s in subsets]
    else:
        rng = random.Random(seed)
        scores = [_vote([labels[i] for i in rng.sample(range(n), k)], cluster_correct) for _ in range(max_subsets)]
    return sum(scores) / len(scores)


# -- token efficiency -----------------------------------------------------------------------
def tokens_to_reach(tokens: Sequence[float], accuracy: Sequence[float], target: float) -> float | None:
    """Fewest tokens at which the curve (linear, from (0, 0)) first reaches ``target``.

    None when the curve never reaches it (report that, do not extrapolate).
    """
    if not (0 < target <= 1):
        raise ValueError(f"target accuracy must be in (0, 1], got {target}")
    points = _check_curve(tokens, accuracy, "tokens_to_reach")
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if v1 >= target:
            if v0 >= target or t1 == t0:
                return t0 if v0 >= target else t1
            return t0 + (target - v0) * (t1 - t0) / (v1 - v0)
    return None


def token_efficiency(curve_a: tuple[Sequence[float], Sequence[float]], curve_b: tuple[Sequence[float], Sequence[float]],
                     target: float) -> float | None:
    """How many times fewer tokens model A needs than model B to reach ``target`` accuracy.

    ``tokens_to_reach(B) / tokens_to_reach(A)``: 1.5 means A reaches the accuracy with 1.5x
    fewer tokens (the paper's "1.5x token efficiency"). None when either never reaches it.
    """
    ta = tokens_to_reach(*curve_a, target)
    tb = tokens_to_reach(*curve_b, target)
    if ta is None or tb is None:
        return None
    if ta == 0:
        raise ValueError("model A reaches the target at 0 tokens; the ratio is undefined")
    return tb / ta


# -- Student t quantiles (exact, no scipy) ---------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def regularized_beta(x: float, a: float, b: float) -> float:
    """``I_x(a, b)``, the regularised incomplete beta function, for 0 <= x <= 1 and a, b > 0."""
    if not 0.0 <= x <= 1.0 or a <= 0 or b <= 0:
        raise ValueError(f"regularized_beta needs 0 <= x <= 1 and a, b > 0, got x={x}, a={a}, b={b}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side; use symmetry on the other
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df={df}: need > 0")
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=1024)
def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (relative error below 1e-10).

    ``student_t_quantile(0.975, n - 1)`` is the half-width factor of a two-sided 95% interval
    over n values (12.706 for 2 values, 4.303 for 3, 2.262 for 10, 1.960 as n grows). Bisection on
    :func:`student_t_cdf`, so any df works (no table, no normal approximation, no scipy).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p}: need 0 < p < 1")
    if df <= 0:
        raise ValueError(f"df={df}: need > 0 (one value has no interval)")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)
