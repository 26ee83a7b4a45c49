"""Scale-out with real processes: torchrun, gloo over localhost, 2 ranks, the demo model.

- 2 steps of grpo and of mrt_dense under ddp and under fsdp2 give the same parameters as one
  process on the same global batch (fp32; tolerance ATOL below);
- a run killed with SIGKILL after a checkpoint and resumed under torchrun reproduces the
  uninterrupted run's metrics;
- a rank that raises makes the whole job exit non-zero, well within the process-group timeout.
"""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mrt_engine.config import TrainConfig
from mrt_engine.config.presets import shipped_config
from mrt_engine.trainer.logger import read_metrics
from mrt_engine.trainer import train

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")]

ATOL = 2e-5  # fp32: the ranks' smaller batches sum in another order than one process's
TIMING = ("tokens_per_s", "step_time_s")


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


def _torchrun(cfg: dict, tmp: Path, *, timeout: float = 600, script: list[str] | None = None):
    path = tmp / f"{Path(cfg['output_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2"]  # --standalone: a free local port
    cmd += script or ["-m", "mrt_engine.cli", "train", "--config", str(path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
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


def test_killed_run_resumes_under_torchrun_with_the_same_metrics(tmp_path):
    full = _config(tmp_path / "full", "mrt_dense", steps=3, save_every=1, parallel={"strategy": "ddp"})
    _run(full, tmp_path)
    ref = {r["step"]: r for r in read_metrics(Path(full["output_dir"]) / "metrics.jsonl") if "reward" in r}

    part = _config(tmp_path / "part", "mrt_dense", steps=3, save_every=1, parallel={"strategy": "ddp"})
    proc, _ = _torchrun(part, tmp_path)
    first = Path(part["output_dir"]) / "checkpoints" / "step_1"
    deadline = time.time() + 600
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, mid-run
    proc.wait()
    assert first.exists(), "the run never wrote its first checkpoint"
    done = max(int(p.name[5:]) for p in first.parent.glob("step_*"))
    assert done < 3, "the run finished before it was killed: nothing to resume"

    part["resume"] = True
    _run(part, tmp_path)
    rows = [r for r in read_metrics(Path(part["output_dir"]) / "metrics.jsonl") if "reward" in r]
    resumed = {r["step"]: r for r in rows[-(3 - done):]}
    assert sorted(resumed) == list(range(done + 1, 4))
    for step, row in resumed.items():
        for key, value in ref[step].items():
            if key not in TIMING and not key.startswith("time/"):
                assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-7), f"step {step} {key}"


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
