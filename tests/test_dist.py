"""Scale-out with real processes: torchrun, gloo over localhost, 2 ranks, the demo model.

- 2 steps of grpo and of mrt_dense under ddp and under fsdp2 give the same parameters as one
  process on the same global batch (fp32; tolerance ATOL below);
- a run killed with SIGKILL after a checkpoint and resumed under torchrun reproduces the
  uninterrupted run's metrics;
- a rank that raises makes the whole job exit non-zero, well within the process-group timeout.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from metric_rows import assert_same_metrics
from mrt_engine.config import TrainConfig
from mrt_engine.config.presets import shipped_config
from mrt_engine.trainer.logger import read_metrics
from mrt_engine.trainer import train
from mrt_engine.trainer.checkpoint import PAUSE_ENV

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")]

ATOL = 2e-5  # fp32: the ranks' smaller batches sum in another order than one process's


def _config(out: Path, algo: str, **over) -> dict:
    d = shipped_config("demo")
    # the chain-task demo model, whose signal these short runs were sized for (the demo
    # itself now runs the digit regime)
    d["model"]["name"], d["data"]["task"] = "demo", "chain"
    d["data"].update(num_train=16, num_eval=0, seed=123)  # the warm start's problems: some solved
    d["rollout"].update(group_size=2, max_tokens=384, temperature=0.7)
    d["algo"]["name"] = algo
    d["optim"].update(lr=1e-3, weight_decay=0.0, micro_batch_size=4, warmup_ratio=0.0)
    d.update(steps=2, prompts_per_step=4, output_dir=str(out), tensorboard=False, progress_bar=False,
             num_threads=None)
    d.update(over)
    return d


def _torchrun(cfg: dict, tmp: Path, *, timeout: float = 600, script: list[str] | None = None,
             env: dict | None = None):
    path = tmp / f"{Path(cfg['output_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2"]  # --standalone: a free local port
    cmd += script or ["-m", "mrt_engine.cli", "train", "--config", str(path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True), timeout


def _run(cfg: dict, tmp: Path, **kw) -> str:
    proc, timeout = _torchrun(cfg, tmp, **kw)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _weights(out_dir: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    ckpt = sorted((Path(out_dir) / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))[-1]
    return load_file(str(ckpt / "model.safetensors"))


@pytest.mark.parametrize("algo", ["grpo", "mrt_dense"])
def test_two_ranks_match_one_process(tmp_path, algo):
    single = _config(tmp_path / f"single_{algo}", algo)
    result = train(TrainConfig.from_dict(single))
    ref = _weights(single["output_dir"])
    assert result.steps == 2
    start = _weights_of_start(tmp_path, algo)
    moved = max((ref[k] - start[k]).abs().max().item() for k in ref)
    assert moved > 10 * ATOL, "the policy barely moved: the comparison would show nothing"
    for strategy in ("ddp", "fsdp2"):
        cfg = _config(tmp_path / f"{strategy}_{algo}", algo, parallel={"strategy": strategy})
        _run(cfg, tmp_path)
        got = _weights(cfg["output_dir"])
        assert sorted(got) == sorted(ref)
        diff = max((got[k] - ref[k]).abs().max().item() for k in ref)
        print(f"{algo} {strategy}: largest parameter difference vs one process {diff:.2e}")
        assert diff <= ATOL, f"{algo} under {strategy}: parameters differ from one process by {diff:.2e}"
        (Path(cfg["output_dir"]) / "max_diff.json").write_text(json.dumps({"max_abs_diff": diff}))


def _weights_of_start(tmp: Path, algo: str) -> dict[str, torch.Tensor]:
    """The demo model's parameters before training, under the checkpoint's names."""
    from mrt_engine.trainer.setup import build_model

    cfg = TrainConfig.from_dict(_config(tmp / "unused", algo))
    model, _ = build_model(cfg.model, seed=cfg.seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it. torchrun starts each rank in a session
    of its own, so a kill of the launcher's process group would leave the ranks running."""
    import psutil

    root = psutil.Process(proc.pid)
    procs = [root, *root.children(recursive=True)]
    assert len(procs) >= 3, f"expected the launcher and 2 ranks, found {procs}"
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=60)
    assert not alive, f"still running after SIGKILL: {alive}"


def test_killed_run_resumes_under_torchrun_with_the_same_metrics(tmp_path):
    """Killed at one fixed point (rank 0 pauses half-way through writing step 2: step 1 is
    whole), so what is resumed never depends on how fast the machine is."""
    full = _config(tmp_path / "full", "mrt_dense", steps=3, save_every=1, parallel={"strategy": "ddp"})
    _run(full, tmp_path)
    ref = {r["step"]: r for r in read_metrics(Path(full["output_dir"]) / "metrics.jsonl") if "reward" in r}
    assert sorted(ref) == [1, 2, 3]

    part = _config(tmp_path / "part", "mrt_dense", steps=3, save_every=1, parallel={"strategy": "ddp"})
    proc, _ = _torchrun(part, tmp_path, env={PAUSE_ENV: "2"})
    root = Path(part["output_dir"]) / "checkpoints"
    marker = root / ".paused_step_2"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    _kill_tree(proc)  # the launcher and both ranks, mid-write
    out, _ = proc.communicate(timeout=60)
    assert marker.exists(), f"the run never paused in step 2's checkpoint write:\n{out[-3000:]}"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_1"], "step 1 whole, step 2 not yet renamed in"

    part["resume"] = True
    _run(part, tmp_path)
    rows = [r for r in read_metrics(Path(part["output_dir"]) / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3], "the log was cut back to step 1, then each step once"
    for row in rows:  # step 1 from the killed run, 2 and 3 from the resumed one
        assert_same_metrics(ref[row["step"]], row, rel=1e-6, abs=1e-7, where=f"step {row['step']}")


def test_a_failing_rank_ends_the_job(tmp_path):
    cfg = _config(tmp_path / "fail", "grpo", parallel={"strategy": "ddp", "timeout_s": 60})
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump(cfg))
    script = [str(Path(__file__).parent / "dist_fail_rank.py"), str(path)]
    t0 = time.time()
    proc, _ = _torchrun(cfg, tmp_path, script=script)
    out, _ = proc.communicate(timeout=300)
    elapsed = time.time() - t0
    assert proc.returncode != 0, out[-3000:]
    assert "rank 1 fails on purpose" in out
    assert elapsed < 60 + 120, f"the job took {elapsed:.0f} s to end after a rank failed"


def test_strategy_needs_torchrun(tmp_path):
    cfg = _config(tmp_path / "solo", "grpo", parallel={"strategy": "fsdp2"})
    with pytest.raises(RuntimeError, match="torchrun"):
        train(TrainConfig.from_dict(cfg))


def test_no_hand_written_all_reduce_of_gradients():
    import inspect

    import mrt_engine.trainer.dist as dist_mod
    import mrt_engine.trainer.update as update_mod

    for mod in (dist_mod, update_mod):
        assert "all_reduce(p.grad" not in inspect.getsource(mod)
    assert not hasattr(dist_mod, "all_reduce_grads")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
