"""How much of the spread of estimated progress is signal: split-half reliability.

``progress_reliability(results) -> Reliability``. Sample mode draws ``num_branches`` forced
answers per cut; split them by sample index (even / odd) and each half gives its own J at
every cut and its own progress ``J_k - J_{k-1}`` for every episode. Over all episodes:

- ``split_half_r``: Pearson correlation of the two half-estimates of progress;
- ``spearman_brown``: ``2r / (1 + r)``, the reliability of the full n-branch estimate (the
  share of its variance across episodes that is signal, not sampling noise);
- ``signal_sd``: ``sqrt(max(cov(a, b), 0))``: the halves' noises are independent, so their
  covariance is the variance of the true progress;
- ``noise_sd``: ``SD(a - b) / sqrt(2)``: the sampling noise of one half's progress (the full
  estimate's is about ``noise_sd / sqrt(2)``; it falls as ``1 / sqrt(num_branches)``).

Sample i is kept aligned across the cuts of a trace, so the common random numbers (sample i
has the same request seed at every cut, see ``progress/sample.py``) stay paired inside each
half. Score mode is deterministic: reliability 1 and noise 0 by construction.

Only the forced cuts count. A cut whose J is the trace's own outcome (``natural_end="outcome"``,
the trainer's and ``mrt-engine compare``'s setting) is the same 0/1 grade in both halves, so the
episode that ends there would agree with itself whatever the forced answers say: with one or two
episodes per trace, coin-flip forced answers gave split-half r 0.62 (Spearman-Brown 0.76) with
that episode counted, 0.03 without it (issue 25). That episode is left out, so ``num_episodes``
counts the episodes between two forced cuts (L - 1 for a trace of L episodes ending in its
outcome); the outcome carries no information about the estimator.

``reliability_from_two(a, b)``: the same numbers from two independent estimates of the same
cuts (e.g. two seeds); there ``split_half_r`` is the test-retest r, the reliability of one
estimate, and ``spearman_brown`` that of their average.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .result import ProgressResult, progress_from_j

MIN_EPISODES = 3


@dataclass
class Reliability:
    num_episodes: int                # episodes between two forced cuts (progress values) the numbers are over
    split_half_r: float              # Pearson r of the two half-estimates (NaN: see reason)
    spearman_brown: float            # 2r / (1 + r): reliability of the full estimate
    signal_sd: float                 # SD of the true progress across episodes
    noise_sd: float                  # sampling noise SD of one half's progress
    num_branches: int | None         # forced answers per cut (None: score mode)
    mode: str                        # "sample" or "score"
    reason: str | None = None        # why a number is NaN, or what makes it exact

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN written as null)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        """One line for logs and the CLI."""
        if math.isnan(self.split_half_r):
            return f"progress reliability: undefined over {self.num_episodes} episodes ({self.reason})"
        what = "split-half r" if self.mode == "sample" else "r"
        how = f"{self.num_branches} branches" if self.num_branches else "exact"
        return (f"progress reliability ({self.mode} mode, {how}): {what} "
                f"{self.split_half_r:.3f}, Spearman-Brown {self.spearman_brown:.3f}; signal SD "
                f"{self.signal_sd:.4f}, noise SD {self.noise_sd:.4f} over {self.num_episodes} episodes between forced cuts"
                + (f" ({self.reason})" if self.reason else ""))


def progress_reliability(results: list[ProgressResult]) -> Reliability:
    """Split-half reliability of the progress in ``results`` (see the module docstring).

    Raises ValueError for a mix of modes, sample-mode results without per-sample ``scores``,
    or fewer than 2 branches per cut (one sample cannot be split). Fewer than 3 episodes, or
    halves without variance, give NaN numbers and a ``reason``.
    """
    results = list(results)
    mode = _mode(results)
    if mode == "score":
        progress = [p for r in results for p in forced_progress(r)]
        return Reliability(len(progress), 1.0, 1.0, _sd(progress), 0.0, None, "score",
                           reason="score mode is deterministic: J is exact (no sampling noise), so reliability "
                                  "is 1 and noise 0; J is a lower bound on the sampled J")
    pairs, branches = [], set()
    for n, r in enumerate(results):
        a, b, nb = _half_progress(r, n)
        pairs.extend(zip(a, b))
        branches.update(nb)
    return _from_pairs(pairs, max(branches) if branches else None, "sample", split=True)


def reliability_from_two(results_a: list[ProgressResult], results_b: list[ProgressResult]) -> Reliability:
    """Reliability from two independent estimates of the same cuts (e.g. the same traces, two seeds).

    ``split_half_r`` holds the correlation of the two estimates of progress (the reliability of
    one estimate); ``spearman_brown`` that of their average; ``noise_sd`` the noise of one.
    """
    results_a, results_b = list(results_a), list(results_b)
    if len(results_a) != len(results_b):
        raise ValueError(f"reliability_from_two: {len(results_a)} results vs {len(results_b)}; give two "
                         "estimates of the same traces, in the same order")
    mode_a, mode_b = _mode(results_a), _mode(results_b)
    if results_a and mode_a != mode_b:
        raise ValueError(f"reliability_from_two: modes differ ({mode_a} vs {mode_b}); compare two estimates "
                         "made the same way (a score/sample gap is bias, not noise)")
    pairs, branches = [], set()
    for n, (ra, rb) in enumerate(zip(results_a, results_b)):
        if list(ra.cut_tokens) != list(rb.cut_tokens):
            raise ValueError(f"reliability_from_two: result {n} has different cuts in the two estimates "
                             f"({ra.cut_tokens} vs {rb.cut_tokens}); estimate the same traces with the same "
                             "segmenter settings")
        pairs.extend(zip(forced_progress(ra), forced_progress(rb)))
        branches.update(len(s) for r in (ra, rb) for s in (r.scores or []) if len(s) > 1)
    return _from_pairs(pairs, max(branches) if branches else None, mode_a, split=False)


# -- pieces --------------------------------------------------------------------------------
def _mode(results: list[ProgressResult]) -> str:
    modes = {r.mode for r in results}
    if len(modes) > 1:
        raise ValueError(f"progress results mix modes {sorted(modes)}; measure each mode on its own")
    return modes.pop() if modes else "sample"


def _half_progress(r: ProgressResult, n: int) -> tuple[list[float], list[float], set[int]]:
    """Progress of the even-index and the odd-index samples of result ``n``, and its branch counts."""
    if r.scores is None:
        raise ValueError(f"result {n}: sample-mode result without per-sample scores; split-half reliability "
                         "needs them (ProgressResult.scores, kept in progress.jsonl)")
    ja, jb, branches = [], [], set()
    for c, scores in enumerate(r.scores):
        if _from_outcome(r, c):
            continue  # the trace's own grade, the same in both halves: not a measurement of J
        if len(scores) < 2:
            raise ValueError(f"result {n}, cut {c}: {len(scores)} forced answer(s); split-half reliability needs "
                             "num_branches >= 2 (one sample cannot be split into halves)")
        branches.add(len(scores))
        even, odd = scores[0::2], scores[1::2]
        ja.append(sum(even) / len(even))
        jb.append(sum(odd) / len(odd))
    return progress_from_j(ja), progress_from_j(jb), branches


def _from_outcome(r: ProgressResult, cut: int) -> bool:
    return (r.natural_end == "outcome" and r.natural_end_included and cut == len(r.scores) - 1
            and len(r.scores[cut]) == 1)


def forced_progress(r: ProgressResult) -> list[float]:
    """The progress of the episodes between two forced cuts: all of ``r.progress`` but the last
    episode when the last cut is the trace's own outcome (``natural_end="outcome"``)."""
    outcome_end = r.natural_end == "outcome" and r.natural_end_included and r.progress
    return list(r.progress[:-1] if outcome_end else r.progress)


def _from_pairs(pairs: list[tuple[float, float]], num_branches, mode: str, *, split: bool) -> Reliability:
    num = len(pairs)

    def undefined(reason: str) -> Reliability:
        nan = float("nan")
        return Reliability(num, nan, nan, nan, nan, num_branches, mode, reason=reason)

    if num < MIN_EPISODES:
        return undefined(f"need at least {MIN_EPISODES} episodes, got {num}")
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    diff = [x - y for x, y in pairs]
    noise = _sd(diff) / math.sqrt(2)
    signal = math.sqrt(max(_cov(a, b), 0.0))
    va, vb = _cov(a, a), _cov(b, b)
    if va <= 0 or vb <= 0:  # reliability is signal / total variance: 0 / 0 when nothing varies
        return Reliability(num, float("nan"), float("nan"), signal, noise, num_branches, mode,
                           reason="an estimate is constant across episodes (e.g. every answer graded 0): "
                                  "correlation undefined")
    r = max(-1.0, min(1.0, _cov(a, b) / math.sqrt(va * vb)))
    sb = 2 * r / (1 + r) if r > -1 else float("nan")
    reason = None if split else "test-retest of two estimates: r is one estimate's reliability"
    return Reliability(num, r, sb, signal, noise, num_branches, mode, reason=reason)


def _cov(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return 0.0
    mx, my = sum(x) / n, sum(y) / n
    return sum((u - mx) * (v - my) for u, v in zip(x, y)) / (n - 1)


def _sd(x: list[float]) -> float:
    return math.sqrt(max(_cov(x, x), 0.0))
