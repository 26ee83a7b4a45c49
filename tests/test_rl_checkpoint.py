"""Checkpoints (atomic, safetensors, full trainer state), metrics log, prompt cursor."""
import json

import pytest
import torch

from mrt_engine.trainer.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from mrt_engine.trainer.data import PromptSampler
from mrt_engine.models import build_demo_model
from mrt_engine.trainer.logger import MetricsLogger, read_metrics
from mrt_engine.trainer.optim import build_optimizer, build_scheduler
from mrt_engine.config import OptimConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def _train_a_bit(model, opt, sched, steps=2):
    for _ in range(steps):
        loss = model(input_ids=torch.randint(0, 200, (2, 8))).logits.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_save_load_roundtrip_restores_everything(tmp_path):
    model, _ = build_demo_model(seed=0)
    cfg = OptimConfig(lr=1e-3, warmup_ratio=0.5)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, 10)
    _train_a_bit(model, opt, sched)
    sampler = PromptSampler(list(range(10)), seed=1)
    sampler.next(7)
    path = save_checkpoint(tmp_path, 2, model=model, optimizer=opt, scheduler=sched, cursor=sampler.state(),
                           extra={"eval_before": {"pass@1": 0.5}})
    assert sorted(f.name for f in path.iterdir()) == ["config.json", "model.safetensors", "trainer_state.pt"]
    assert not list((tmp_path / "checkpoints").glob(".tmp*"))  # nothing half-written left behind
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    expected_next = sampler.next(5)

    model2, _ = build_demo_model(seed=1)
    held = model2.model.layers[0].self_attn.q_proj.weight
    opt2 = build_optimizer(model2, cfg)
    sched2 = build_scheduler(opt2, cfg, 10)
    torch.manual_seed(123)
    state = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert held is model2.model.layers[0].self_attn.q_proj.weight  # loaded in place
    for (n, a), (_, b) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(a, b), n
    assert sched2.last_epoch == 2 and sched2.get_last_lr() == sched.get_last_lr()
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert state["step"] == 2 and state["extra"]["eval_before"]["pass@1"] == 0.5
    # RNG and data cursor continue where they were saved
    torch.manual_seed(999)
    load_checkpoint(path, model=model2)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), expected_draw)
    s2 = PromptSampler(list(range(10)), seed=1)
    s2.load_state(state["cursor"])
    assert s2.next(5) == expected_next


def test_keep_last_and_latest(tmp_path):
    model, _ = build_demo_model()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model=model, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_3"]
    assert latest_checkpoint(tmp_path).name == "step_3"
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_load_rejects_a_different_model(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model, _ = build_demo_model()
    path = save_checkpoint(tmp_path, 1, model=model)
    other = LlamaForCausalLM(LlamaConfig(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    with pytest.raises(ValueError, match="does not match|shape"):
        load_checkpoint(path, model=other)


def test_metrics_logger_truncates_on_resume(tmp_path):
    log = MetricsLogger(tmp_path, total_steps=5, tensorboard=True, progress_bar=False)
    for s in range(1, 5):
        log.log(s, {"reward": s / 10, "x": torch.tensor(1.5)})
    log.close()
    assert (tmp_path / "tensorboard").is_dir()
    log = MetricsLogger(tmp_path, total_steps=5, initial_step=2, tensorboard=False, progress_bar=False)
    log.log(3, {"reward": 0.9})
    log.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["reward"] == 0.9 and rows[0]["x"] == 1.5
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["reward"] == 0.1


def test_prompt_sampler_epochs():
    s = PromptSampler(list("abcd"), seed=0)
    first = s.next(4)
    assert sorted(first) == list("abcd")
    second = s.next(4)
    assert sorted(second) == list("abcd") and s.state() == {"epoch": 1, "pos": 4}


def test_rank_sharding_and_single_process_defaults():
    from mrt_engine.trainer import dist

    assert dist.rank() == 0 and dist.world_size() == 1 and dist.mean_metrics({"a": 1.0}) == {"a": 1.0}
    items = list(range(8))
    assert dist.shard(items, of_rank=1, num_ranks=4) == [2, 3]
    assert sum((dist.shard(items, of_rank=r, num_ranks=4) for r in range(4)), []) == items
    with pytest.raises(ValueError, match="multiple of the world size"):
        dist.shard(list(range(6)), of_rank=0, num_ranks=4)
