"""bench/common: the one timer, the one peak-memory probe, and the layout rules of bench/."""
from pathlib import Path

import torch

from bench.common.memory import peak_memory
from bench.common.report import format_columns
from bench.common.timing import medians, run_interleaved

ROOT = Path(__file__).resolve().parent.parent


def test_run_interleaved_rotates_the_order_and_skips_warmup_rounds():
    calls = []
    cases = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = run_interleaved(cases, repeats=2, warmup=1)
    assert calls == list("abc" "bca" "cab")
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2, "c": 2}
    assert set(medians(times)) == {"a", "b", "c"}


def test_run_interleaved_settles_before_every_call_untimed():
    events = []
    times = run_interleaved({"a": lambda: events.append("a"), "b": lambda: events.append("b")}, repeats=2,
                            warmup=1, settle=lambda: events.append("settle"))
    assert events == ["settle", "a", "settle", "b", "settle", "b", "settle", "a", "settle", "a", "settle", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}


def test_run_interleaved_drops_a_failing_case_and_reports_it():
    errors = {}

    def boom():
        raise RuntimeError("broken")

    times = run_interleaved({"ok": lambda: None, "bad": boom}, repeats=3, warmup=0,
                            on_error=lambda name, exc: errors.setdefault(name, str(exc)))
    assert errors == {"bad": "broken"} and len(times["ok"]) == 3 and times["bad"] == []


def test_peak_memory_sees_a_64_mib_tensor_and_leaves_this_process_as_it_was():
    calls = []
    threads = torch.get_num_threads()

    def fn():
        calls.append(1)
        x = torch.ones(16 << 20, dtype=torch.float32)  # 64 MiB, written: resident
        return float(x[-1])

    peak = peak_memory(fn, "cpu")
    assert calls == [1], "fn must run exactly once in the calling process (the child's run stays there)"
    assert torch.get_num_threads() == threads, "the child's thread setting leaked into this process"
    if peak is not None:  # Linux: /proc/self/clear_refs
        assert 48 * 2**20 <= peak <= 128 * 2**20, peak / 2**20


def test_format_columns_pads_all_but_a_long_last_column():
    text = format_columns(("a", "status"), [("xx", "a long status line")])
    assert text.splitlines() == ["a  | status", "---|-------", "xx | a long status line"]


def test_bench_files_stay_small():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in (ROOT / "bench").rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 450} == {}
    assert sizes["bench/throughput.py"] <= 250
    assert not (ROOT / "bench" / "generation.py").exists() and not (ROOT / "bench" / "progress.py").exists(), \
        "stage selections are flags of bench/throughput.py (--stage), not files"
    assert not [p for p in (ROOT / "bench").rglob("*.py") if "sys.path.insert" in p.read_text()], \
        "the bench imports the library and itself by name: run it as python -m bench.<module>"
