"""The trainer end to end on the shipped demo model (byte-level Llama, ~0.8M parameters).

Each algorithm runs 3 steps; the policy's parameters must change and the generator must run
the very tensors the optimizer updated (no copy). A run killed after step k and resumed must
reproduce the uninterrupted run's metrics for steps k+1..k+3 on CPU.
"""
import copy

import pytest
import torch

from metric_rows import assert_same_metrics
from mrt_engine.config import TrainConfig
from mrt_engine.config.presets import shipped_config
from mrt_engine.trainer.logger import read_metrics
from mrt_engine.trainer import Trainer, train

ALGOS = ("grpo", "mrt_scalar", "mrt_dense", "mrt_dense_placebo", "length_penalty", "star", "mrt_star",
         "mrt_dense_to_go", "mrt_dense_centred", "mrt_dense_placebo_within")


pytestmark = pytest.mark.usefixtures("one_thread")


def small_config(tmp_path, algo: str, **over) -> TrainConfig:
    d = shipped_config("demo")
    # the chain-task demo model, whose signal these short runs were sized for (the demo
    # itself now runs the digit regime)
    d["model"]["name"], d["data"]["task"] = "demo", "chain"
    # the warm start's own training problems (data seed of DEMO_SFT): the weak demo model gets
    # some of them right, so every algorithm sees a learning signal within 3 small steps
    d["data"].update(num_train=16, num_eval=0, seed=123)
    d["rollout"].update(group_size=2, max_tokens=512, temperature=0.7)
    d["algo"].update(name=algo, star_num_samples=2, num_continuations=3, num_terminate=1)
    d["algo"]["progress"].update(num_branches=2, max_cuts=3)
    d["optim"].update(lr=1e-3, weight_decay=0.0, micro_batch_size=4, warmup_ratio=0.0)
    d.update(steps=3, prompts_per_step=4, output_dir=str(tmp_path / algo), tensorboard=False, progress_bar=False,
             num_threads=None)
    for k, v in over.items():
        d[k] = v
    return TrainConfig.from_dict(d)


@pytest.mark.parametrize("algo", ALGOS)
def test_three_steps_change_the_policy_and_the_generator_sees_it(tmp_path, algo):
    cfg = small_config(tmp_path, algo)
    trainer = Trainer(cfg)
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen_weights = _generator_weights(trainer)
    steps = []
    real_credit = trainer.algorithm.credit

    def spy(ctx, rollout):  # what each step trained on
        credit = real_credit(ctx, rollout)
        steps.append((ctx, rollout, credit))
        return credit

    trainer.algorithm.credit = spy
    result = trainer.run()
    if algo.startswith("mrt_dense"):
        _check_dense_credit(cfg, steps, placebo="placebo" in algo)
    assert result.steps == 3 and len(result.history) == 3
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    signal = [h.get("adv_abs_mean", h.get("num_kept", 0)) for h in result.history]
    assert any(signal), f"{algo}: no learning signal in 3 steps (all rewards equal?): {result.history}"
    assert changed, f"{algo}: no parameter changed in 3 steps; history: {result.history}"
    # no copy: the generator's tensors are the model's parameters, so it sees the new values
    for name, tensor in gen_weights.items():
        assert tensor is dict(model.named_parameters())[name]
    assert any(not torch.equal(gen_weights[n], before[n]) for n in gen_weights)
    for h in result.history:
        assert 0.0 <= h["reward"] <= 1.0 and h["completion_tokens"] > 0 and h["lr"] > 0
    assert (tmp_path / algo / "checkpoints" / "step_3" / "model.safetensors").exists()


def _check_dense_credit(cfg, steps, *, placebo: bool):
    """The trained advantages carry a dense term (they are not GRPO's on the same rollout), and a
    placebo's are not mrt_dense's on the same rollout while keeping its multiset of progress."""
    from mrt_engine.rl.algorithms import ALGORITHMS

    def advantages(name, ctx, rollout):
        return ALGORITHMS[name](cfg).credit(ctx, rollout).advantages

    not_grpo = not_real = 0
    for ctx, rollout, credit in steps:
        not_grpo += not torch.allclose(credit.advantages, advantages("grpo", ctx, rollout))
        if placebo:
            not_real += not torch.allclose(credit.advantages, advantages("mrt_dense", ctx, rollout))
            shuffled = ALGORITHMS[cfg.algo.name](cfg).episode_credit(rollout)
            real = [r.progress for r in rollout.progress]
            assert sorted(v for c in shuffled for v in c) == pytest.approx(sorted(v for c in real for v in c))
            assert [len(c) for c in shuffled] == [len(c) for c in real]
    assert not_grpo, "the dense term is missing: every step's advantages equal GRPO's on its rollout"
    assert not_real or not placebo, "the placebo moved no credit: its advantages equal mrt_dense's on every step"


def _generator_weights(trainer) -> dict:
    """Name -> tensor as the rollout backend holds them."""
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    backend = trainer.backend
    if hasattr(backend, "generator"):
        fwd = backend.generator.forward
        held = [fwd.embed_tokens.weight, fwd.layers[0].self_attn.q_proj.weight, fwd.layers[-1].mlp.down_proj.weight]
    else:
        held = [p for p in backend.model.parameters()][:3]
    out = {names[id(t)]: t for t in held if id(t) in names}
    assert len(out) == len(held), "the generator holds tensors that are not the policy's parameters (a copy)"
    return out


@pytest.mark.parametrize("algo", ["mrt_dense"])
def test_resume_continues_exactly(tmp_path, algo):
    full = small_config(tmp_path / "full", algo, steps=4, save_every=1)
    ref = train(full)
    part = small_config(tmp_path / "part", algo, steps=4, save_every=1)
    train(part, stop_after=1)  # as if killed after step 1's checkpoint
    part.resume = True
    resumed = train(part)
    assert [h["step"] for h in resumed.history] == [2, 3, 4]
    for a, b in zip(ref.history[1:], resumed.history):
        assert_same_metrics(a, b, where=f"step {a['step']}: uninterrupted vs resumed")  # exactly
    # the JSONL log of the resumed run holds each step once
    steps = [r["step"] for r in read_metrics(tmp_path / "part" / algo / "metrics.jsonl") if "reward" in r]
    assert steps == [1, 2, 3, 4]


def test_tiny_smollm2_tokenizer_path(tmp_path, tiny):
    """The BPE-tokenizer path (load_model('tiny'): random weights, SmolLM2 tokenizer) runs
    through the engine, segmenter and update. A random policy never finishes a trace, so every
    reward and length is equal and there is no signal to move the weights: only the wiring is
    checked here (the demo-model tests above check learning)."""
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    cfg = small_config(tmp_path, "mrt_dense", steps=2)
    cfg.model.name = "tiny"
    cfg.rollout.max_tokens = 24
    trainer = Trainer(cfg, model=model, tokenizer=tok)
    result = trainer.run()
    assert result.steps == 2 and all(h["completion_tokens"] == 24 and h["truncated"] == 1.0 for h in result.history)
    assert _generator_weights(trainer)
