"""The exact-J toy (docs/toy.md): its closed form and exact metrics agree with sampling, and the
credit claims it exists to check hold over seeds with a 95% interval (paired by seed)."""
import json

import pytest
import torch

from mrt_engine.cli import main
from mrt_engine.experiments.exact_j_toy import (ToyConfig, closed_form_j, exact_metrics, initial_logits, mean_ci,
                                                rollout, t_quantile_975, train_arm)

SEEDS = range(60)  # 30 seeds resolve dense vs GRPO easily; the k=1 cost needs more (docs/toy.md)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_closed_form_j_matches_monte_carlo():
    # J(n) = 1 - (1-p)^n is the chance that at least one of n productive episodes finds the answer
    p, gen = 0.3, torch.Generator().manual_seed(0)
    for n in range(6):
        found = (torch.rand(200_000, max(n, 1), generator=gen) < p)[:, :n].any(dim=1).float().mean()
        assert abs(float(found) - float(closed_form_j(n, p))) < 4e-3, n


def test_exact_metrics_match_sampled_traces():
    cfg = ToyConfig()
    logits = initial_logits(cfg) + torch.randn(cfg.max_episodes, 3, generator=torch.Generator().manual_seed(1))
    ro = rollout(logits, 100_000, torch.Generator().manual_seed(2), cfg.p)
    exact = exact_metrics(logits, cfg)
    redundant = float((ro.actions == 1).sum()) / float(ro.num_thinking.sum())
    assert abs(float(ro.outcome.mean()) - exact["success"]) < 0.01
    assert abs(float(ro.num_thinking.float().mean()) - exact["episodes"]) < 0.03
    assert abs(redundant - exact["redundant_fraction"]) < 0.01


def test_t_quantile_and_interval():
    assert t_quantile_975(29) == pytest.approx(2.045, abs=2e-3)
    assert t_quantile_975(11) == pytest.approx(2.201, abs=2e-3)  # first df past the table
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / 3 ** 0.5, rel=0.02)


@pytest.fixture(scope="module")
def finals():
    cfg = ToyConfig()
    arms = {"grpo": ("grpo", None), "dense": ("mrt_dense", None), "dense_k1": ("mrt_dense", 1)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: [train_arm(cfg, *arm, s)["final"] for s in SEEDS] for name, arm in arms.items()}
    finally:
        torch.set_num_threads(threads)


def _diff(finals, a, b, metric="redundant_fraction"):
    return mean_ci(x[metric] - y[metric] for x, y in zip(finals[a], finals[b]))


def test_dense_mrt_cuts_redundant_episodes_faster_than_grpo(finals):
    # GRPO gives a redundant episode its trace's outcome credit; dense MRT pays it 0 progress
    # while productive episodes earn J(n+1) - J(n), so after the same steps fewer are redundant.
    mean, half = _diff(finals, "dense", "grpo")
    assert mean + half < 0, (mean, half)
    mean, half = _diff(finals, "dense", "grpo", "success")
    assert mean - half > 0, (mean, half)


def test_one_sample_j_erases_part_of_the_gain(finals):
    # k=1: the progress of every episode is a difference of two coin flips; redundant ones get
    # +-1 noise, so the policy learns slower than with exact J, yet still beats outcome-only GRPO.
    mean, half = _diff(finals, "dense_k1", "dense")
    assert mean - half > 0, (mean, half)
    mean, half = _diff(finals, "dense_k1", "grpo")
    assert mean + half < 0, (mean, half)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="init_probs"):
        ToyConfig(init_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="p=1.5"):
        ToyConfig(p=1.5)
    with pytest.raises(ValueError, match="aggregation=.sum."):
        ToyConfig(aggregation="sum")
    with pytest.raises(ValueError, match="algo='ppo'"):
        train_arm(ToyConfig(steps=1), "ppo", None, 0)


def test_cli_quick_writes_json_and_table(tmp_path, capsys):
    assert main(["toy", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data["seeds"] == [0, 1, 2] and data["config"]["steps"] == 10
    assert len(data["runs"]) == 3 * len(data["arms"])
    table = (tmp_path / "toy.md").read_text()
    assert all(f"| {arm} |" in table for arm in data["arms"])
    assert "| grpo |" in capsys.readouterr().out
    assert main(["toy", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert main(["toy", "--steps", "-1", "--out", str(tmp_path)]) == 2


def test_dense_with_alpha_zero_is_grpo():
    # the control: with no progress term dense MRT is outcome-only GRPO, run for run (exact J
    # draws no randomness), so the gain above comes from the progress credit alone
    cfg = ToyConfig(alpha=0.0, steps=15)
    assert train_arm(cfg, "mrt_dense", None, 3)["final"] == train_arm(cfg, "grpo", None, 3)["final"]


def test_scalar_mrt_length_bias_comes_from_sequence_mean_aggregation():
    # scalar MRT's baseline J(prefix) sits below the value of reasoning on, so most continuation
    # advantages are positive; the per-sequence mean of aggregation="grpo" then weights a short
    # continuation's tokens more, and "answer" gains. A constant normaliser (dr_grpo) removes most of it.
    seeds = range(20)
    seq_mean = [train_arm(ToyConfig(), "mrt_scalar", None, s)["final"]["episodes"] for s in seeds]
    constant = [train_arm(ToyConfig(aggregation="dr_grpo"), "mrt_scalar", None, s)["final"]["episodes"] for s in seeds]
    mean, half = mean_ci(c - q for c, q in zip(constant, seq_mean))
    assert mean - half > 0, (mean, half)
