"""Shared runner of the fuzz tests (tests/test_fuzz_*.py): hypothesis with a counted budget.

Each fuzz test runs ``fuzz(name, check, *strategies, max_examples=N)``: the property
``check`` over N generated inputs, no deadline (the box is shared), deterministic inputs in
CI (``CI=true``: a failure there reproduces; locally every run explores new inputs). It
asserts that all N inputs ran and prints ``fuzz NAME: N inputs in T s`` (see with ``-s``).

A bug a fuzz test finds is fixed where it lives, and its smallest case becomes a plain
regression test beside the property: the property itself tolerates no exception type it does
not promise.
"""
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
TOTALS: dict[str, tuple[int, float]] = {}  # name -> (inputs run, seconds)


def fuzz(name: str, check, *strategies, max_examples: int) -> int:
    """Run ``check(*drawn)`` on ``max_examples`` inputs; return how many ran."""
    calls = [0]

    @settings(max_examples=max_examples, deadline=None, derandomize=IN_CI, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(st.tuples(*strategies))
    def run(drawn):
        calls[0] += 1
        check(*drawn)

    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    TOTALS[name] = (calls[0], seconds)
    print(f"fuzz {name}: {calls[0]} inputs in {seconds:.1f} s")
    assert calls[0] >= max_examples, f"{name}: only {calls[0]} of {max_examples} inputs ran"
    return calls[0]


def _fails_above_five(x: int) -> None:
    if x > 5:
        raise KeyError(x)


def test_fuzz_runner_counts_and_fails_on_a_broken_property():
    assert fuzz("self-check", lambda x: None, st.integers(), max_examples=25) >= 25
    try:
        fuzz("self-check-broken", _fails_above_five, st.integers(), max_examples=200)
    except KeyError:
        return
    raise AssertionError("the runner must let an unexpected exception fail the test")
