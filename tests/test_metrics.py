"""Metrics against hand-computed cases: step, linear and falling J curves, pass@k, maj@k."""
import math

import pytest

from mrt_engine import metrics as M


# -- normalized regret ------------------------------------------------------------------------
@pytest.mark.parametrize("budget,expected", [(50, 1.0), (100, 1.0), (200, 0.5), (400, 0.25)])
def test_regret_step_function(budget, expected):
    # J = 0 until 100 tokens, then jumps to 1 (two cuts at the same token count).
    assert M.normalized_regret([100, 100], [0.0, 1.0], budget) == pytest.approx(expected)


@pytest.mark.parametrize("budget,expected", [(100, 0.75), (200, 0.5), (400, 0.25)])
def test_regret_linear(budget, expected):
    # J = t / 200 up to 200 tokens, then flat at 1.
    assert M.normalized_regret([100, 200], [0.5, 1.0], budget) == pytest.approx(expected)


@pytest.mark.parametrize("budget,expected", [(150, 1 - 87.5 / 150), (300, 1 - 100 / 300)])
def test_regret_falling(budget, expected):
    # J rises to 1 at 100 tokens, falls to 0 at 200 and stays there: later episodes hurt.
    assert M.normalized_regret([100, 200], [1.0, 0.0], budget) == pytest.approx(expected)


def test_regret_comparator_and_mean():
    assert M.normalized_regret([100, 200], [0.25, 0.5], 200, comparator=0.5) == pytest.approx(0.5)
    out = M.mean_normalized_regret([([100, 200], [0.5, 1.0]), ([100, 200], [1.0, 0.0])], [200])
    assert out[200.0] == pytest.approx((0.5 + 0.5) / 2)


@pytest.mark.parametrize("tokens,j,budget,match", [
    ([], [], 10, "empty"), ([1, 2], [0.1], 10, "length"), ([200, 100], [0, 1], 10, "non-decreasing"),
    ([1], [float("nan")], 10, "non-finite"), ([1], [0.5], 0, "budget")])
def test_regret_bad_input(tokens, j, budget, match):
    with pytest.raises(ValueError, match=match):
        M.normalized_regret(tokens, j, budget)


# -- envelope regret ----------------------------------------------------------------------------
def test_envelope_regret_comparator_dominates():
    out = M.envelope_regret([100, 200], [0.2, 0.4], [([150], [0.6])], budget=200)
    assert out.envelope_area == pytest.approx(75.0)
    assert out.model_area == pytest.approx(40.0)
    assert out.regret == pytest.approx(35 / 75)


def test_envelope_regret_crossing_curves():
    # Model: 0 until 100 then linear to 1 at 200; comparator: 0.5 from 100 on. They cross at 150.
    out = M.envelope_regret([100, 200], [0.0, 1.0], [([100], [0.5])], budget=200)
    assert out.envelope_area == pytest.approx(87.5)
    assert out.model_area == pytest.approx(50.0)
    assert out.regret == pytest.approx(37.5 / 87.5)


def test_envelope_regret_model_on_top_and_zero_area():
    assert M.envelope_regret([100], [1.0], [([200], [1.0])]).regret == pytest.approx(0.0)
    assert M.envelope_regret([100], [0.0], [([200], [0.0])]).regret == 0.0


def test_parallel_majority_curves():
    curves = M.parallel_majority_curves([100, 300], [10, 20], [{1: 0.2, 4: 0.5}, {1: 0.4, 2: 0.6}])
    assert curves == [([100, 130], [0.2, 0.5]), ([300, 320], [0.4, 0.6])]


# -- pass@k / maj@k ------------------------------------------------------------------------------
def test_pass_at_k():
    assert M.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert M.pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    assert M.pass_at_k(4, 0, 2) == 0.0
    assert M.pass_at_k(4, 4, 3) == 1.0
    assert M.pass_at_k(10, 9, 2) == 1.0
    assert M.pass_at_k(100, 7, 10) == pytest.approx(1 - math.comb(93, 10) / math.comb(100, 10))
    with pytest.raises(ValueError, match="k <= n"):
        M.pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="c <= n"):
        M.pass_at_k(3, 5, 1)


def test_maj_at_k_ties_count_half():
    answers, correct = ["1", "1", "2", "2"], [True, True, False, False]
    assert M.maj_at_k(answers, correct, 4) == pytest.approx(0.5)
    assert M.maj_at_k(answers, correct, 2) == pytest.approx(0.5)  # (1 + 0 + 4 * 0.5) / 6
    assert M.maj_at_k(["1", "1", "1", "2"], [True, True, True, False], 2) == pytest.approx(4.5 / 6)
    assert M.maj_at_k(["1", "1", "1", "2"], [True, True, True, False], 1) == pytest.approx(0.75)


def test_maj_at_k_equivalence_and_missing():
    canon = {"0.5": "h", "1/2": "h", "\\frac{1}{2}": "h", "3": "3"}
    equiv = lambda a, b: canon[a] == canon[b]  # noqa: E731
    # Three equivalent forms of 1/2 outvote two 3s, which would win by plain string counting.
    answers = ["0.5", "1/2", "\\frac{1}{2}", "3", "3"]
    correct = [True, True, True, False, False]
    assert M.maj_at_k(answers, correct, 5, equiv=equiv) == 1.0
    assert M.maj_at_k(answers, correct, 5) == 0.0
    # Missing answers do not vote; all missing scores 0.
    assert M.maj_at_k([None, None, "3"], [False, False, False], 3) == 0.0
    assert M.maj_at_k([None, "1", None], [False, True, False], 3) == 1.0
    assert M.maj_at_k([None, None], [False, False], 2) == 0.0


def test_maj_at_k_resampled_is_seeded_and_close():
    answers = [str(i % 3) for i in range(16)]
    correct = [a == "0" for a in answers]
    exact = M.maj_at_k(answers, correct, 8, max_subsets=10 ** 6)
    approx = M.maj_at_k(answers, correct, 8, max_subsets=3000, seed=1)
    assert approx == M.maj_at_k(answers, correct, 8, max_subsets=3000, seed=1)
    assert approx == pytest.approx(exact, abs=0.03)


# -- token efficiency ------------------------------------------------------------------------------
def test_tokens_to_reach_and_efficiency():
    assert M.tokens_to_reach([100, 200], [0.5, 1.0], 0.75) == pytest.approx(150)
    assert M.tokens_to_reach([100, 200], [0.5, 1.0], 0.25) == pytest.approx(50)
    assert M.tokens_to_reach([100, 100], [0.0, 1.0], 0.5) == pytest.approx(100)  # step
    assert M.tokens_to_reach([100, 200], [0.5, 0.6], 0.9) is None
    # A reaches 0.5 at 100 tokens, B at 150: A is 1.5x more token-efficient.
    assert M.token_efficiency(([100], [0.5]), ([100, 200], [0.25, 0.75]), 0.5) == pytest.approx(1.5)
    assert M.token_efficiency(([100], [0.5]), ([100], [0.1]), 0.5) is None
