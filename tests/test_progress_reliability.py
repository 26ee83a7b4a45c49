"""Split-half reliability of progress (mrt_engine.progress.reliability) on results whose answer
is known, and the trainer's per-step ``progress/*`` metrics."""
import math
import random

import pytest

from mrt_engine.progress import ProgressResult, progress_from_j, progress_reliability, reliability_from_two


def sample_result(scores, *, outcome=None) -> ProgressResult:
    """A sample-mode result with these per-cut scores; ``outcome``: the last cut is the trace's grade."""
    if outcome is not None:
        scores = list(scores) + [[outcome]]
    j = [sum(s) / len(s) for s in scores]
    n = len(scores)
    return ProgressResult(episodes=["e"] * (n - 1), cut_chars=list(range(n)), cut_tokens=list(range(n)), j=j,
                          j_stderr=[0.0] * n, progress=progress_from_j(j), tokens_at_cut=[0.0] * n,
                          outcome=outcome, natural_end_included=outcome is not None, mode="sample",
                          scores=[list(s) for s in scores],
                          natural_end="outcome" if outcome is not None else None)


def score_result(j) -> ProgressResult:
    n = len(j)
    return ProgressResult(episodes=["e"] * (n - 1), cut_chars=list(range(n)), cut_tokens=list(range(n)), j=list(j),
                          j_stderr=[0.0] * n, progress=progress_from_j(list(j)), tokens_at_cut=[0.0] * n,
                          outcome=None, natural_end_included=False, mode="score")


def test_identical_halves_are_fully_reliable():
    rng = random.Random(0)
    results = []
    for _ in range(10):
        # every cut's samples come in equal pairs (0, 1), (2, 3): the even and odd halves agree
        cuts = [[v for v in (rng.random(), rng.random()) for _ in range(2)] for _ in range(4)]
        results.append(sample_result(cuts))
    rel = progress_reliability(results)
    assert rel.num_episodes == 30 and rel.num_branches == 4 and rel.mode == "sample"
    assert rel.split_half_r == pytest.approx(1.0) and rel.spearman_brown == pytest.approx(1.0)
    assert rel.noise_sd == pytest.approx(0.0, abs=1e-12)
    true_sd = math.sqrt(sum((p - sum(ps) / len(ps)) ** 2 for ps in [[p for r in results for p in r.progress]]
                            for p in ps) / (rel.num_episodes - 1))
    assert rel.signal_sd == pytest.approx(true_sd)


def test_pure_noise_has_near_zero_reliability():
    rng = random.Random(1)
    # J is 0.5 at every cut; each sample is an independent coin: progress has no signal
    results = [sample_result([[float(rng.random() < 0.5) for _ in range(8)] for _ in range(5)]) for _ in range(400)]
    rel = progress_reliability(results)
    assert rel.num_episodes == 1600
    assert abs(rel.split_half_r) < 0.1
    assert rel.signal_sd < 0.1
    # one half's J over 4 coins has SD 0.25; progress is a difference of two: SD 0.25 * sqrt(2)
    assert rel.noise_sd == pytest.approx(0.25 * math.sqrt(2), rel=0.1)


def _traces_with_outcome(rng, *, informative: bool, num_traces: int = 404, num_branches: int = 8):
    """Traces of 1-4 episodes ending in their own outcome, as the trainer and compare measure them.

    The trace's true J rises at a random episode from about 0 to about 1 (the digit regime's
    step), and its outcome is drawn from the J at its end. Informative forced answers are
    Bernoulli(J) at each cut; uninformative ones are fair coins whatever J is.
    """
    results = []
    for _ in range(num_traces):
        num_episodes = rng.randint(1, 4)
        step = rng.randint(1, num_episodes + 1)  # the cut from which J is high (past the end: never)
        js = [0.9 if c >= step else 0.05 for c in range(num_episodes + 1)]
        forced = [[float(rng.random() < (js[c] if informative else 0.5)) for _ in range(num_branches)]
                  for c in range(num_episodes)]
        results.append(sample_result(forced, outcome=float(rng.random() < js[-1])))
    return results


def _as_if_outcome_were_forced(results):
    """The same results with the outcome cut posing as a forced cut whose halves agree (what the
    meter counted before issue 25)."""
    out = []
    for r in results:
        scores = r.scores[:-1] + [r.scores[-1] * 2]
        out.append(sample_result(scores))
    return out


def test_uninformative_forced_answers_read_near_zero():
    rng = random.Random(25)
    results = _traces_with_outcome(rng, informative=False)
    rel = progress_reliability(results)
    assert rel.num_episodes == sum(r.num_episodes - 1 for r in results) > 300
    assert abs(rel.split_half_r) < 0.1 and abs(rel.spearman_brown) < 0.2
    # counting the outcome episode, as the meter did, these coin flips read as reliable
    inflated = progress_reliability(_as_if_outcome_were_forced(results))
    assert inflated.split_half_r > 0.4 and inflated.spearman_brown > 0.6


def test_informative_forced_answers_read_high():
    rng = random.Random(26)
    rel = progress_reliability(_traces_with_outcome(rng, informative=True))
    assert rel.split_half_r > 0.7 and rel.spearman_brown > 0.8
    assert rel.spearman_brown == pytest.approx(2 * rel.split_half_r / (1 + rel.split_half_r))


def test_signal_plus_noise_recovers_both():
    rng = random.Random(2)
    results = []
    for _ in range(300):
        js = [min(max(rng.gauss(0.5, 0.3), 0.0), 1.0) for _ in range(4)]
        results.append(sample_result([[float(rng.random() < p) for _ in range(16)] for p in js]))
    rel = progress_reliability(results)
    assert 0.3 < rel.split_half_r < 0.95
    assert rel.spearman_brown == pytest.approx(2 * rel.split_half_r / (1 + rel.split_half_r))
    assert rel.spearman_brown > rel.split_half_r
    assert rel.signal_sd > 0.2 and 0.1 < rel.noise_sd < 0.3


def test_outcome_cut_never_counts():
    # the forced cuts' halves agree; the last cut is the outcome (one score): its episode is left out
    results = [sample_result([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], outcome=1.0),
               sample_result([[1.0, 1.0], [0.0, 0.0]], outcome=0.0),
               sample_result([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], outcome=1.0)]
    rel = progress_reliability(results)
    assert sum(r.num_episodes for r in results) == 8
    assert rel.num_episodes == 8 - 3  # one outcome episode per trace
    assert rel.split_half_r == pytest.approx(1.0) and rel.noise_sd == 0.0
    # forced progress [1, -1], [-1], [0, 1]: the signal SD is theirs alone
    assert rel.signal_sd == pytest.approx(math.sqrt(sum((p - 0.0) ** 2 for p in (1, -1, -1, 0, 1)) / 4))
    # a trace of one episode has no episode between two forced cuts
    assert progress_reliability([sample_result([[0.0, 1.0]], outcome=1.0)] * 3).num_episodes == 0
    # the same one-score last cut without natural_end="outcome" cannot be split
    plain = sample_result([[0.0, 1.0], [1.0]])
    with pytest.raises(ValueError, match="num_branches >= 2"):
        progress_reliability([plain])


def test_one_branch_is_an_error():
    with pytest.raises(ValueError, match="result 0, cut 0.*num_branches >= 2"):
        progress_reliability([sample_result([[1.0], [0.0], [1.0]])])


def test_missing_scores_and_mixed_modes_are_errors():
    r = sample_result([[1.0, 0.0], [0.0, 1.0]])
    r.scores = None
    with pytest.raises(ValueError, match="per-sample scores"):
        progress_reliability([r])
    with pytest.raises(ValueError, match="mix modes"):
        progress_reliability([sample_result([[1.0, 0.0], [0.0, 1.0]]), score_result([0.1, 0.2])])


def test_too_few_episodes_is_nan_with_a_reason():
    rel = progress_reliability([sample_result([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])])
    assert rel.num_episodes == 2 and math.isnan(rel.split_half_r) and math.isnan(rel.noise_sd)
    assert "at least 3 episodes" in rel.reason
    assert rel.to_json()["split_half_r"] is None and rel.to_json()["reason"] == rel.reason
    assert "undefined" in rel.summary()
    assert math.isnan(progress_reliability([]).split_half_r)
    flat = progress_reliability([sample_result([[0.0, 0.0]] * 5)])  # nothing varies: 0 / 0
    assert flat.num_episodes == 4 and math.isnan(flat.split_half_r) and "constant" in flat.reason
    assert flat.noise_sd == 0.0 and flat.signal_sd == 0.0


def test_score_mode_is_exact():
    rel = progress_reliability([score_result([0.1, 0.3, 0.2]), score_result([0.0, 0.5])])
    assert (rel.split_half_r, rel.spearman_brown, rel.noise_sd, rel.mode) == (1.0, 1.0, 0.0, "score")
    assert rel.num_episodes == 3 and "deterministic" in rel.reason
    assert rel.signal_sd == pytest.approx(math.sqrt(((0.2 - 0.2) ** 2 + (-0.1 - 0.2) ** 2 + (0.5 - 0.2) ** 2) / 2))


def test_reliability_from_two_estimates():
    rng = random.Random(3)
    truth = [[rng.random() for _ in range(4)] for _ in range(200)]

    def estimate(seed):
        g = random.Random(seed)
        return [sample_result([[float(g.random() < p) for _ in range(8)] for p in js]) for js in truth]

    a, b = estimate(10), estimate(11)
    rel = reliability_from_two(a, b)
    assert rel.num_episodes == 600 and rel.num_branches == 8 and "test-retest" in rel.reason
    # one 8-branch estimate is about as reliable as the split-half estimate says the full one is
    split = progress_reliability(a)
    assert rel.split_half_r == pytest.approx(split.spearman_brown, abs=0.1)
    # identical estimates: r = 1, no noise
    same = reliability_from_two(a, a)
    assert same.split_half_r == pytest.approx(1.0) and same.noise_sd == 0.0
    with pytest.raises(ValueError, match="same traces"):
        reliability_from_two(a, b[:-1])
    with pytest.raises(ValueError, match="different cuts"):
        reliability_from_two(a[:1], [sample_result([[1.0, 0.0]] * 3)])


KEYS = ("progress/split_half_r", "progress/spearman_brown", "progress/signal_sd", "progress/noise_sd",
        "progress/reliability_episodes")


def _fixed_results(samples):
    """Sample-mode results with fixed forced answers (2 per cut, [even, odd]) at two forced cuts,
    then the trace's outcome: four patterns, each trace's even- and odd-half progress below."""
    patterns = [([0.0, 0.0], [1.0, 1.0]),   # even +1, odd +1
                ([0.0, 0.0], [0.0, 1.0]),   # even  0, odd +1
                ([0.0, 0.0], [0.0, 0.0]),   # even  0, odd  0
                ([1.0, 1.0], [0.0, 0.0])]   # even -1, odd -1
    out = []
    for i, s in enumerate(samples):
        first, second = patterns[i % 4]
        scores = [first, second, [1.0]]  # outcome 1 whatever the sample's grade: it must not count
        j = [sum(c) / len(c) for c in scores]
        out.append(ProgressResult(episodes=["e", "e"], cut_chars=[0, 1, 2], cut_tokens=[0, 1, 2], j=j,
                                  j_stderr=[0.0] * 3, progress=progress_from_j(j), tokens_at_cut=[0.0, 1.0, 2.0],
                                  outcome=1.0, natural_end_included=True, mode="sample", scores=scores,
                                  natural_end="outcome"))
    return out


def test_a_training_step_logs_reliability(tmp_path, one_thread, monkeypatch):
    import mrt_engine.rl.algorithms as algorithms
    from mrt_engine.trainer.logger import read_metrics
    from mrt_engine.trainer import Trainer
    from test_train import small_config

    cfg = small_config(tmp_path, "mrt_dense", steps=1, prompts_per_step=4)
    assert cfg.algo.progress.mode == "sample" and cfg.algo.progress.num_branches == 2
    assert cfg.prompts_per_step * cfg.rollout.group_size == 8  # the four patterns, twice
    # J fixed by hand instead of estimated: the trainer's own step must log these numbers
    monkeypatch.setattr(algorithms, "estimate_progress", lambda estimator, tok, samples, **kw: _fixed_results(samples))
    result = Trainer(cfg).run()
    (metrics,) = result.history
    # Forced-cut progress, even half x = (1, 0, 0, -1), odd half y = (1, 1, 0, -1), twice over:
    # sum of (x - mean x)(y - mean y) = 2 per four traces, of (x - mean x)^2 = 2, of (y - mean y)^2 = 2.75,
    # so r = 2 / sqrt(2 * 2.75); the outcome episodes (J 1 in both halves) are not among the 8 pairs.
    r = 2 / math.sqrt(5.5)
    assert metrics["progress/reliability_episodes"] == 8
    assert metrics["progress/split_half_r"] == pytest.approx(r, abs=1e-12)
    assert metrics["progress/spearman_brown"] == pytest.approx(2 * r / (1 + r), abs=1e-12)
    assert metrics["progress/signal_sd"] == pytest.approx(math.sqrt(4 / 7), abs=1e-12)  # sqrt(cov), n - 1 = 7
    # x - y = (0, -1, 0, 0) twice: SD sqrt(1.5 / 7), one half's noise that over sqrt(2)
    assert metrics["progress/noise_sd"] == pytest.approx(math.sqrt(1.5 / 7) / math.sqrt(2), abs=1e-12)
    line = [r for r in read_metrics(tmp_path / "mrt_dense" / "metrics.jsonl") if "reward" in r][0]
    assert all(k in line for k in KEYS) and "progress/reliability" not in line  # two names, never one


def test_one_branch_training_logs_no_reliability():
    from mrt_engine.rl.rollout_progress import reliability_metrics

    assert reliability_metrics([], mode="sample", num_branches=1) == {}
    assert set(reliability_metrics([score_result([0.1, 0.2, 0.4, 0.3])], mode="score", num_branches=1)) == set(KEYS)
