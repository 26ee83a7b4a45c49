"""The run-vs-run metric comparison the resume, dist and packing tests use: None/NaN (no value
this step) equal only each other, never raise."""
import math

import pytest

from metric_rows import assert_same_metrics, metric_mismatches

NAN = math.nan


@pytest.mark.parametrize("a, b", [(None, None), (NAN, NAN), (None, NAN), (NAN, None), (1.0, 1.0 + 1e-9), (3, 3.0),
                                  ("ddp", "ddp")])
def test_equal(a, b):
    assert metric_mismatches({"step": 1, "m": a}, {"step": 1, "m": b}, rel=1e-6) == []


@pytest.mark.parametrize("a, b", [(None, 0.0), (0.0, None), (NAN, 0.0), (0.0, NAN), (None, "x"), (1.0, 1.1),
                                  (True, False), ("ddp", "fsdp2")])
def test_different(a, b):
    assert metric_mismatches({"m": a}, {"m": b}, rel=1e-6) == [f"m: {a!r} vs {b!r}"]


def test_a_key_in_one_row_only_is_a_difference_and_wall_clock_is_not():
    assert metric_mismatches({"m": 1.0, "x": None}, {"m": 1.0, "y": None}) == ["x: only in the first row",
                                                                               "y: only in the second row"]
    assert metric_mismatches({"m": 1.0, "tokens_per_s": 5.0, "time/update": 1.0}, {"m": 1.0, "step_time_s": 2.0}) == []


def test_the_assertion_names_the_step_and_the_metrics():
    with pytest.raises(AssertionError, match=r"step 2: progress/reliability: None vs 0\.5"):
        assert_same_metrics({"progress/reliability": None}, {"progress/reliability": 0.5}, where="step 2")
