"""Smoke test of the headline benchmark: ``bench/throughput.py --quick`` on the tiny model.

No timing assertions (benchmarks report ratios; tests check that they run and write their
outputs). A stage whose component is not installed must still say so in its own row.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("generation", "score", "sample", "logprob", "step", "update")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("throughput")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "throughput.py"), "--quick", "--no-progress",
                           "--no-vllm", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"throughput.py --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, proc


def test_quick_run_writes_csv_png_and_markdown(quick_run):
    out, _ = quick_run
    for name in ("throughput.csv", "throughput.png", "throughput.md"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_stage_has_a_row_with_machine_info(quick_run):
    out, proc = quick_run
    rows = list(csv.DictReader(open(out / "throughput.csv")))
    stages = {r["stage"].split(" [")[0] for r in rows}
    assert set(STAGES) <= stages, f"stages without a row: {set(STAGES) - stages}"
    for r in rows:
        assert r["device"] == "cpu" and r["dtype"] == "float32" and r["torch"] and r["machine"]
        assert r["status"] in ("ok", "unavailable", "error"), r
        assert r["status"] == "ok" or r["reason"], f"row without numbers must say why: {r}"
        if r["status"] == "ok" and r["role"] != "share":
            assert float(r["median_s"]) > 0 and int(r["num_repeats"]) >= 1
    # The share of an MRT step per phase, from the step stage's timed rounds.
    shares = [r for r in rows if r["role"] == "share"]
    if any(r["stage"].startswith("step [") and r["status"] == "ok" for r in rows):
        assert {"generation", "policy update"} <= {r["method"] for r in shares}
        assert all(float(r["median_s"]) >= 0 for r in shares)
    assert not [r for r in rows if r["status"] == "error"], \
        "stages raised:\n" + "\n".join(f"{r['stage']} {r['method']}: {r['reason']}" for r in rows if r["status"] == "error")
    # The baseline of the log-prob stage needs only torch: it must always produce numbers.
    logprob = [r for r in rows if r["stage"].startswith("logprob") and r["role"] == "baseline"]
    assert logprob and all(r["status"] == "ok" and r["peak_mem_mb"] for r in logprob)
    assert "speed-up vs baselines" in proc.stdout
