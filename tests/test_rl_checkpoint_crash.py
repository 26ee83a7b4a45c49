"""Crash safety with a real kill: a training subprocess SIGKILLed in the middle of a checkpoint
write leaves the previous checkpoint intact and loadable, and `mrt-engine train --resume`
continues from it with the metrics of an uninterrupted run. Also: a crafted pickle in a
checkpoint is refused, never run."""
import copy
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from mrt_engine.errors import MRTUserError
from mrt_engine.trainer.checkpoint import PAUSE_ENV, latest_checkpoint, load_checkpoint, load_trainer_state, save_checkpoint
from mrt_engine.config.presets import shipped_config
from mrt_engine.models import build_demo_model
from mrt_engine.trainer.logger import read_metrics
from mrt_engine.trainer.optim import build_optimizer, build_scheduler
from mrt_engine.config import OptimConfig

TIMING = ("tokens_per_s", "step_time_s")  # and every "time/..." key: wall-clock, differs run to run


def _config(path):
    d = copy.deepcopy(shipped_config("demo"))
    # the chain-task demo model, whose signal these short runs were sized for (the demo
    # itself now runs the digit regime)
    d["model"]["name"], d["data"]["task"] = "demo", "chain"
    d["data"].update(num_train=16, num_eval=0, seed=123)
    d["rollout"].update(group_size=2, max_tokens=256)
    d["algo"].update(name="grpo")
    d["optim"].update(lr=1e-3, micro_batch_size=4, warmup_ratio=0.0)
    d.update(steps=4, save_every=1, prompts_per_step=4, tensorboard=False, progress_bar=False, num_threads=1)
    path.write_text(yaml.safe_dump(d))
    return path


def _train(cfg, out, *extra, env=None):
    cmd = [sys.executable, "-m", "mrt_engine.cli", "train", "--config", str(cfg), "--output-dir", str(out), *extra]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _rows(out):
    return {r["step"]: {k: v for k, v in r.items() if k not in TIMING and not k.startswith("time/")}
            for r in read_metrics(out / "metrics.jsonl") if "loss" in r}


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path):
    cfg = _config(tmp_path / "cfg.yaml")
    full, part = tmp_path / "full", tmp_path / "part"
    ref = _train(cfg, full)
    killed = _train(cfg, part, env={PAUSE_ENV: "2"})  # pauses half-way through writing step 2
    marker = part / "checkpoints" / ".paused_step_2"
    deadline = time.time() + 300
    while not marker.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), killed.communicate()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    root = part / "checkpoints"
    # the half-written step 2 sits in a temporary folder; `latest` still names step 1, intact
    assert [p.name for p in root.glob(".tmp_step_2_*")] and not (root / "step_2").exists()
    assert (root / "latest").read_text().strip() == "step_1"
    assert latest_checkpoint(part) == root / "step_1"
    model, _ = build_demo_model()
    assert load_checkpoint(root / "step_1", model=model, restore_rng=False)["step"] == 1

    resumed = _train(cfg, part, "--resume")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert ref.wait(timeout=600) == 0, ref.communicate()
    assert not list(root.glob(".tmp_*"))  # the next save cleaned up the leftover
    assert (root / "latest").read_text().strip() == "step_4"
    a, b = _rows(full), _rows(part)
    assert sorted(b) == [1, 2, 3, 4]  # each step once: the log was cut back to step 1
    for step in (2, 3, 4):
        assert a[step] == b[step], f"step {step}: uninterrupted {a[step]} vs resumed {b[step]}"
    # step 1 updated the weights (a learning signal), so steps 2-4 sample from weights, RNG and
    # prompt cursor that only a correct restore reproduces
    assert a[1]["adv_abs_mean"] != 0.0 and a[1]["grad_norm"] > 0.0, a[1]


def test_trainer_state_loads_with_weights_only(tmp_path):
    model, _ = build_demo_model()
    cfg = OptimConfig(lr=1e-3)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, 10)
    model(input_ids=torch.randint(0, 200, (2, 8))).logits.mean().backward()
    opt.step()
    sched.step()
    import numpy as np

    extra = {"eval_before": {"pass@1": np.float64(0.25), "n": np.int64(3)}, "hist": np.arange(3)}
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched,
                           cursor={"epoch": 0, "pos": 2}, extra=extra)
    state = torch.load(path / "trainer_state.pt", weights_only=True)  # raises if anything is unsafe
    assert state["extra"]["eval_before"] == {"pass@1": 0.25, "n": 3}
    assert torch.equal(state["extra"]["hist"], torch.arange(3))
    assert set(state) == {"step", "rng", "cursor", "extra", "optimizer", "scheduler"}
    with pytest.raises(TypeError, match=r"extra\['bad'\] is a object"):
        save_checkpoint(tmp_path, 2, model=model, extra={"bad": object()})


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.target}",))


def test_a_crafted_pickle_is_refused_not_run(tmp_path):
    model, _ = build_demo_model()
    path = save_checkpoint(tmp_path, 1, model=model)
    _Evil.target = tmp_path / "pwned"
    torch.save({"step": 1, "payload": _Evil()}, path / "trainer_state.pt")
    with pytest.raises(MRTUserError, match="refused to load.*could run code"):
        load_checkpoint(path, model=model)
    with pytest.raises(MRTUserError, match="refused"):
        load_trainer_state(path)
    assert not _Evil.target.exists()


def test_a_checkpoint_from_before_the_tensor_rng_state_still_loads(tmp_path):
    import numpy as np

    model, _ = build_demo_model()
    path = save_checkpoint(tmp_path, 1, model=model)
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    np.random.seed(5)
    state["rng"]["numpy"] = np.random.get_state()  # the old layout: a uint32 ndarray inside
    expected = np.random.rand(3)
    torch.save(state, path / "trainer_state.pt")
    np.random.seed(0)
    load_checkpoint(path, model=model)
    assert np.array_equal(np.random.rand(3), expected)
