"""bench/gpu_full.sh, the one prepared GPU run, in its CPU dry-run mode: the same stages, budgets,
packing and summary as on the GPU, at tiny sizes, so a GPU session spends its minutes measuring."""
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_full.sh"


def _budgets() -> dict[str, int]:
    line = next(line for line in SCRIPT.read_text().splitlines() if line.startswith("BUDGETS="))
    return {k: int(v) for k, v in (kv.split(":") for kv in line.split('"')[1].split(","))}


def test_budgets_cover_every_stage_and_sum_under_9_minutes():
    from bench.stages import STAGES

    budgets = _budgets()
    assert sum(budgets.values()) < 9 * 60, budgets
    assert set(STAGES) <= set(budgets), f"stages without a budget: {set(STAGES) - set(budgets)}"
    assert budgets["preflight"] <= 90  # fails fast: a fix reruns on the still-warm machine


@pytest.mark.slow
def test_dry_run_passes_its_checks(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, GPU_FULL_DRY="1", OUT=str(out), TMPDIR=str(tmp_path))
    env.pop("MRT_TRITON_CPU", None)
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all(p.is_file() for p in out.iterdir()), files
    assert {"summary.txt", "throughput.csv", "results.tar.gz", "floors.txt", "env.txt"} <= set(files)
    summary = (out / "summary.txt").read_text()
    assert proc.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1]), "the summary must be printed last"
    total = int(re.search(r"budget_total_s=(\d+)", summary).group(1))
    assert total == sum(_budgets().values()) < 540
    stages = ["env", "floors", "preflight", *(out / "env.txt").read_text().split("stages: ")[1].split()[:6],
              "kernels", "profile"]
    for name in stages:
        assert re.search(rf"^{name}\s+ok\s", summary, re.M), f"stage {name} did not run ok:\n{summary}"
    assert "1.777 B parameters" in (out / "floors.txt").read_text()  # the 1.5B floors, from meta
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("preflight/throughput.csv") for n in names) and any(n.endswith("kernels.csv") for n in names)
