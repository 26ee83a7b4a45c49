"""The algorithm registry and MRT-STaR's filter (it must depend on the intermediate J values)."""
import pytest

from mrt_engine.config import AlgoConfig, TrainConfig
from mrt_engine.progress import ProgressResult, progress_from_j
from mrt_engine.rl.algorithms import ALGORITHMS, build_algorithm, select_by_progress


def _result(j: list[float], *, step: int = 100) -> ProgressResult:
    """A correct trace with ``len(j) - 1`` episodes of ``step`` tokens each, J given per cut."""
    tokens = [float(k * step) for k in range(len(j))]
    return ProgressResult(episodes=["e"] * (len(j) - 1), cut_chars=list(range(len(j))), cut_tokens=list(range(len(j))),
                          j=j, j_stderr=[0.0] * len(j), progress=progress_from_j(j), tokens_at_cut=tokens,
                          outcome=1.0, natural_end_included=True, natural_end="outcome")


def test_every_registered_algorithm_builds_from_its_name():
    assert {"grpo", "length_penalty", "mrt_scalar", "mrt_dense", "mrt_dense_placebo", "star", "mrt_star"} <= set(ALGORITHMS)
    for name in ALGORITHMS:
        cfg = TrainConfig(algo=AlgoConfig(name=name))
        assert build_algorithm(cfg).name == name
    with pytest.raises(ValueError, match="algo.name='nope': use one of"):
        build_algorithm(TrainConfig(algo=AlgoConfig(name="nope")))


def test_mrt_star_keeps_the_monotone_trace_that_mean_progress_cannot_tell_apart():
    # Two correct traces, equal J_0 (0.2) and equal episode counts (3): mean progress is
    # (1 - 0.2) / 3 for both, so ranking by it cannot choose. Only the monotone one is kept.
    monotone = _result([0.2, 0.5, 0.8, 1.0])
    dip = _result([0.2, 0.9, 0.1, 1.0])
    mean = [sum(r.progress) / len(r.progress) for r in (monotone, dip)]
    assert mean[0] == pytest.approx(mean[1])
    assert select_by_progress([dip, monotone], [400.0, 400.0], keep_fraction=1.0) == [1]


def test_mrt_star_ranks_eligible_traces_by_regret():
    early = _result([0.2, 0.9, 1.0, 1.0])   # J rises at once: low regret
    late = _result([0.2, 0.2, 0.3, 1.0])    # also monotone, but J rises only at the end
    flat = _result([0.2, 0.2, 0.2, 1.0])
    order = select_by_progress([late, flat, early], [400.0] * 3, keep_fraction=1.0)
    assert order == [2, 0, 1]
    assert select_by_progress([late, flat, early], [400.0] * 3, keep_fraction=0.34) == [2]
    assert select_by_progress([], [], keep_fraction=0.5) == []
    with pytest.raises(ValueError, match="budgets"):
        select_by_progress([early], [], keep_fraction=0.5)
