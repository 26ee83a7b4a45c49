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


def test_outcome_cut_is_exact_in_both_halves():
    # the forced cuts' halves agree; the last cut is the outcome (one score): taken as is, not split
    results = [sample_result([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], outcome=1.0),
               sample_result([[1.0, 1.0], [0.0, 0.0]], outcome=0.0),
               sample_result([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]], outcome=1.0)]
    rel = progress_reliability(results)
    assert rel.num_episodes == sum(r.num_episodes for r in results) == 8
    assert rel.split_half_r == pytest.approx(1.0) and rel.noise_sd == 0.0
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


KEYS = ("progress/reliability", "progress/split_half_r", "progress/signal_sd", "progress/noise_sd")


def test_a_training_step_logs_reliability(tmp_path, one_thread):
    from mrt_engine.trainer.logger import read_metrics
    from mrt_engine.trainer import Trainer
    from test_train import small_config

    cfg = small_config(tmp_path, "mrt_dense", steps=1, prompts_per_step=4)
    assert cfg.algo.progress.mode == "sample" and cfg.algo.progress.num_branches == 2
    trainer = Trainer(cfg)
    seen = []
    real = trainer.algorithm.rollout

    def spy(ctx, problems):
        out = real(ctx, problems)
        seen.append(progress_reliability(out.progress))
        return out

    trainer.algorithm.rollout = spy
    result = trainer.run()
    (metrics,), (rel,) = result.history, seen
    assert all(k in metrics for k in KEYS)
    # the logged numbers are this step's results' reliability (NaN only with < 3 episodes)
    logged = (metrics[KEYS[0]], metrics[KEYS[1]], metrics[KEYS[2]], metrics[KEYS[3]])
    expect = (rel.spearman_brown, rel.split_half_r, rel.signal_sd, rel.noise_sd)
    assert all((math.isnan(a) and math.isnan(b)) or a == pytest.approx(b) for a, b in zip(logged, expect))
    num_samples = cfg.prompts_per_step * cfg.rollout.group_size  # num_episodes is the per-sample mean
    assert rel.num_episodes == round(metrics["num_episodes"] * num_samples) >= 3
    line = [r for r in read_metrics(tmp_path / "mrt_dense" / "metrics.jsonl") if "reward" in r][0]
    assert all(k in line for k in KEYS)


def test_one_branch_training_logs_no_reliability():
    from mrt_engine.rl.rollout_progress import reliability_metrics

    assert reliability_metrics([], mode="sample", num_branches=1) == {}
    assert set(reliability_metrics([score_result([0.1, 0.2, 0.4, 0.3])], mode="score", num_branches=1)) == set(KEYS)
