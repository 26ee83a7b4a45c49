"""Rewards, advantages and losses against hand-computed values."""
import math

import pytest
import torch

from mrt_engine.rl import (aggregate, dense_progress_rewards, episode_progress, group_advantages, kl_k3,
                           length_penalty_rewards, policy_loss, scalar_mrt_advantages, token_advantages)


def test_group_advantages_std_and_none():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    a = group_advantages(r, 4, scale="std", eps=0.0 + 1e-12)
    # group 1: mean 0.25, population std sqrt(0.1875) = 0.4330
    s = math.sqrt(0.1875)
    assert torch.allclose(a[:4], torch.tensor([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s]), atol=1e-5)
    assert torch.equal(a[4:], torch.zeros(4))  # equal rewards -> no signal
    a = group_advantages(r, 4, scale="none")
    assert torch.allclose(a, torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="divisible"):
        group_advantages(r, 3)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(r, 4, scale="max")


def test_scalar_mrt_termination_baseline():
    # prefix 0: continuations [term, term, cont, cont] rewards [1, 0, 1, 1] -> baseline 0.5
    # prefix 1: [term, cont, cont, cont] rewards [0, 1, 0, 1] -> baseline 0
    r = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    t = torch.tensor([[True, True, False, False], [True, False, False, False]])
    a = scalar_mrt_advantages(r, t)
    assert torch.allclose(a, torch.tensor([[0.5, -0.5, 0.5, 0.5], [0.0, 1.0, 0.0, 1.0]]))
    # differs from the group-mean baseline (GRPO, no std) on the same rewards
    assert not torch.allclose(a.flatten(), group_advantages(r.flatten(), 4, scale="none"))
    # no terminated continuation: error, unless an estimated J at the prefix is given
    t2 = torch.tensor([[True, False, False, False], [False, False, False, False]])
    with pytest.raises(ValueError, match="no terminated"):
        scalar_mrt_advantages(r, t2)
    a2 = scalar_mrt_advantages(r, t2, baseline=torch.tensor([0.9, 0.25]))
    assert torch.allclose(a2[0], torch.tensor([0.0, -1.0, 0.0, 0.0]))  # sampled baseline 1.0 wins
    assert torch.allclose(a2[1], torch.tensor([-0.25, 0.75, -0.25, 0.75]))


def test_episode_progress_and_dense_placement():
    prg = episode_progress(torch.tensor([0.1, 0.4, 0.3, 0.9]))
    assert torch.allclose(prg, torch.tensor([0.3, -0.1, 0.6]))
    # trace 0: three episodes on tokens [0,2), [2,5), [5,6); trace 1: one episode [0,3)
    dense = dense_progress_rewards([prg, torch.tensor([0.5])], [[(0, 2), (2, 5), (5, 6)], [(0, 3)]], 7, alpha=2.0)
    expect = torch.tensor([[0.6, 0.6, -0.2, -0.2, -0.2, 1.2, 0.0],
                           [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(dense, expect)
    with pytest.raises(ValueError, match="episodes"):
        dense_progress_rewards([prg], [[(0, 2)]], 7)
    with pytest.raises(ValueError, match="outside"):
        dense_progress_rewards([torch.tensor([1.0])], [[(3, 9)]], 7)


def test_token_advantages_adds_dense_on_mask():
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])
    dense = torch.tensor([[0.0, 0.5, -0.5, 0.0], [0.0, 0.0, 0.25, 0.25]])
    a = token_advantages(torch.tensor([1.0, -1.0]), mask, dense)
    assert torch.allclose(a, torch.tensor([[0.0, 1.5, 0.5, 0.0], [0.0, 0.0, -0.75, -0.75]]))


def test_length_penalty():
    r = length_penalty_rewards(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([10, 40, 20]), max_tokens=40, coef=0.5)
    assert torch.allclose(r, torch.tensor([0.875, 0.5, -0.25]))
    r = length_penalty_rewards(torch.tensor([1.0, 0.0]), torch.tensor([20, 20]), max_tokens=40, coef=0.5,
                               only_correct=True)
    assert torch.allclose(r, torch.tensor([0.75, 0.0]))


def test_aggregation_modes():
    l = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    m = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert aggregate(l, m, "grpo").item() == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert aggregate(l, m, "dapo").item() == pytest.approx(10 / 4)
    assert aggregate(l, m, "dr_grpo", max_tokens=5).item() == pytest.approx(10 / (2 * 5))
    # micro-batches with global normalisers sum to the full-batch loss
    for mode in ("grpo", "dapo", "dr_grpo"):
        full = aggregate(l, m, mode, max_tokens=5)
        parts = sum(aggregate(l[i:i + 1], m[i:i + 1], mode, max_tokens=5, total_sequences=2, total_tokens=4)
                    for i in range(2))
        assert parts.item() == pytest.approx(full.item())
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate(l, m, "dr_grpo")


def test_clipped_surrogate_hand_values():
    logp = torch.log(torch.tensor([[0.6, 0.3, 0.5]])).requires_grad_()
    old = torch.log(torch.tensor([[0.4, 0.5, 0.5]]))
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.tensor([[1, 1, 0]])
    out = policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.2, aggregation="dapo")
    # token 0: ratio 1.5, A=+1 -> min(1.5, 1.2) = 1.2 (clipped); token 1: ratio 0.6, A=-1 ->
    # min(-0.6, -0.8) = -0.8 (clipped); token 2 masked.
    assert out.loss.item() == pytest.approx(-(1.2 - 0.8) / 2, abs=1e-6)
    assert out.clip_frac.item() == pytest.approx(1.0)
    out.loss.backward()
    assert torch.allclose(logp.grad, torch.zeros_like(logp))  # both tokens clipped: no gradient
    # on-policy (old = logp): gradient of the loss is -A * mask / num_tokens
    logp2 = torch.log(torch.tensor([[0.6, 0.3, 0.5]])).requires_grad_()
    out = policy_loss(logp2, logp2.detach(), adv, mask, aggregation="dapo")
    out.loss.backward()
    assert torch.allclose(logp2.grad, torch.tensor([[-0.5, 0.5, 0.0]]))
    # clip-higher (DAPO): ratio 1.5 inside 1 + 0.6
    out = policy_loss(logp.detach(), old, adv, mask, clip_low=0.2, clip_high=0.6, aggregation="dapo")
    assert out.loss.item() == pytest.approx(-(1.5 - 0.8) / 2, abs=1e-6)


def test_kl_k3_and_kl_term():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    k3 = kl_k3(logp, ref)
    assert torch.allclose(k3, torch.tensor([[0.5 - math.log(0.5) - 1, 0.0]]), atol=1e-6)
    mask = torch.ones(1, 2)
    adv = torch.zeros(1, 2)
    out = policy_loss(logp, logp, adv, mask, ref_logp=ref, kl_coef=0.1, aggregation="grpo")
    assert out.loss.item() == pytest.approx(0.1 * k3.mean().item(), abs=1e-7)
    assert out.kl.item() == pytest.approx(k3.mean().item(), abs=1e-7)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp, adv, mask, kl_coef=0.1)


def test_policy_update_moves_log_probs_with_the_advantage_sign():
    from mrt_engine.config import AlgoConfig, OptimConfig
    from mrt_engine.models import build_demo_model
    from mrt_engine.trainer.dist import PolicyLogProbs
    from mrt_engine.trainer.optim import build_optimizer
    from mrt_engine.rl.rollout import Sample, pack
    from mrt_engine.trainer.update import batch_log_probs, policy_update

    model, _ = build_demo_model()
    policy = PolicyLogProbs(model)  # the module the update calls (DDP/FSDP2 wrap this one)
    batch = pack([Sample(None, 0, [1, 5, 6], [7, 8, 9, 2], ""), Sample(None, 0, [1, 5, 6], [10, 11, 2], "")], 0)
    adv = batch.loss_mask.float() * torch.tensor([[1.0], [-1.0]])  # reinforce row 0, discourage row 1
    opt = build_optimizer(model, OptimConfig(lr=1e-3, weight_decay=0.0))
    before = batch_log_probs(policy, batch, micro_batch_size=1).sum(1)
    for aggregation in ("grpo", "dapo"):
        out = policy_update(policy, opt, batch, adv, algo=AlgoConfig(aggregation=aggregation),
                            optim=OptimConfig(micro_batch_size=1), max_tokens=8)
        assert out["grad_norm"] > 0
    after = batch_log_probs(policy, batch, micro_batch_size=1).sum(1)
    assert after[0] > before[0] and after[1] < before[1]


def test_token_log_probs_match_full_logits():
    from mrt_engine.models import build_demo_model
    from mrt_engine.rl.logprobs import token_log_probs

    model, _ = build_demo_model()
    ids = torch.randint(3, 259, (2, 9))
    attn = torch.ones_like(ids)
    attn[1, 6:] = 0
    mask = torch.zeros_like(ids)
    mask[0, 3:] = 1
    mask[1, 2:6] = 1
    lp = token_log_probs(model, ids, attn, mask)
    full = torch.log_softmax(model(input_ids=ids, attention_mask=attn).logits.float(), -1)
    ref = full[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]
    assert torch.allclose(lp[:, 1:], ref, atol=1e-5) and lp[:, 0].abs().sum() == 0
    lp.sum().backward()  # differentiable through the fused op
    assert model.lm_head.weight.grad is not None
