"""The engine's thread policy: counts, the idle-core reading, and restoring torch's setting."""
import pytest
import torch

from mrt_engine import threads
from mrt_engine.engine import EngineConfig
from mrt_engine.config import EstimatorConfig


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_thread_counts_are_rejected_by_name(bad):
    with pytest.raises(ValueError, match="num_threads"):
        threads.check_num_threads(bad)
    with pytest.raises(ValueError, match="EngineConfig.num_threads"):
        EngineConfig(num_threads=bad)
    with pytest.raises(ValueError, match="EstimatorConfig.num_threads"):
        EstimatorConfig(num_threads=bad)


def test_free_cores_reads_idle_time(monkeypatch):
    # two CPUs, half of the window idle: one core is free
    ticks = iter([(1000, 4000), (1100, 4200)])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(ticks))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.free_cores(0.0) == 1
    # all busy: still one thread; no /proc/stat: every usable core
    ticks = iter([(1000, 4000), (1000, 4200)])
    assert threads.free_cores(0.0) == 1
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    assert threads.free_cores(0.0) == 2


def test_auto_lowers_never_raises_and_is_restored(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(threads, "_last", None)
        monkeypatch.setattr(threads, "free_cores", lambda window_s=0.05: 1)
        with threads.thread_count("auto") as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)  # the user's cap stays a cap, however many cores are free
        monkeypatch.setattr(threads, "_last", None)
        monkeypatch.setattr(threads, "free_cores", lambda window_s=0.05: 8)
        with threads.thread_count("auto") as n:
            assert n == 1
        with threads.thread_count(2) as n:
            assert n == 2 and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        with threads.thread_count(None) as n:
            assert n == 1
    finally:
        torch.set_num_threads(before)


def test_free_cores_on_this_machine_is_in_range():
    assert 1 <= threads.free_cores(0.02) <= threads.usable_cores()
