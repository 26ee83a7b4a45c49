"""The dense credit forms and both placebos (mrt_engine/rl/rewards.py), as pure functions and as
the trainer's algorithms on one shared rollout (issue 25 item 2)."""
import dataclasses
import random
from collections import Counter

import pytest
import torch

from mrt_engine.progress import ProgressResult, progress_from_j
from mrt_engine.rl import (centred_progress, dense_progress_rewards, progress_to_go, shuffle_across_traces,
                           shuffle_within_traces)
from mrt_engine.rl.algorithms import ALGORITHMS, MRTDense, StepContext
from mrt_engine.rl.rollout import strip_eos

pytestmark = pytest.mark.usefixtures("one_thread")

DENSE = ("mrt_dense", "mrt_dense_to_go", "mrt_dense_centred", "mrt_dense_placebo", "mrt_dense_placebo_within")
PLACEBOS = ("mrt_dense_placebo", "mrt_dense_placebo_within")


# -- the pure functions -----------------------------------------------------------------------------
def test_progress_to_go_sums_from_the_episode_to_the_end():
    j = [0.1, 0.3, 0.2, 1.0]
    prg = progress_from_j(j)                      # [0.2, -0.1, 0.8]
    out = progress_to_go(prg)
    assert out.tolist() == pytest.approx([0.9, 0.7, 0.8])
    assert out[0].item() == pytest.approx(j[-1] - j[0])  # the whole trace's progress: R - J_0 with an outcome end
    assert progress_to_go([]).numel() == 0


def test_centred_progress_leaves_one_out_at_the_same_episode_index():
    # group 0: three traces of 2, 3 and 1 episodes; group 1: one trace (nobody to compare with)
    progress = [[0.0, 1.0], [0.5, 0.0, 0.25], [1.0], [0.3, 0.7]]
    out = centred_progress(progress, [0, 0, 0, 1])
    assert out[0].tolist() == pytest.approx([0.0 - (0.5 + 1.0) / 2, 1.0 - 0.0])
    assert out[1].tolist() == pytest.approx([0.5 - (0.0 + 1.0) / 2, 0.0 - 1.0, 0.25])  # episode 2: no other trace has one
    assert out[2].tolist() == pytest.approx([1.0 - (0.0 + 0.5) / 2])
    assert out[3].tolist() == pytest.approx([0.3, 0.7])
    # a group whose traces all make the same progress at the same point gets no credit at all
    same = centred_progress([[0.0, 1.0, 0.0]] * 4, [7] * 4)
    assert all(torch.equal(c, torch.zeros(3)) for c in same)
    with pytest.raises(ValueError, match="group ids"):
        centred_progress([[0.1]], [0, 1])


def test_placebos_keep_the_credit_values_and_move_them():
    progress = [[0.0, 1.0, -0.5], [0.25, 0.25], [0.9], [0.1, 0.2, 0.3, 0.4]]
    across = shuffle_across_traces(progress, random.Random(0))
    assert [len(r) for r in across] == [3, 2, 1, 4]
    assert Counter(v for r in across for v in r) == Counter(v for r in progress for v in r)
    for seed in range(20):
        within = shuffle_within_traces(progress, random.Random(seed))
        assert [Counter(r) for r in within] == [Counter(r) for r in progress]  # each trace's values, so its total
        assert within[0] != progress[0] and within[3] != progress[3]  # unequal values always move
        assert within[1] == progress[1] and within[2] == progress[2]  # equal values or one episode cannot
    assert progress[0] == [0.0, 1.0, -0.5]  # the input is not changed


def test_alpha_zero_places_no_credit():
    out = dense_progress_rewards([torch.tensor([0.5, -1.0])], [[(0, 2), (2, 5)]], 6, alpha=0.0)
    assert torch.equal(out, torch.zeros(1, 6))


# -- the trainer's algorithms on one rollout ----------------------------------------------------------
def _fixed_progress(tokenizer):
    """A stand-in estimator: J at 3 forced cuts then the trace's own outcome, different per trace
    (so every credit form differs from the others), cuts spread over the trace's tokens."""

    def estimate(estimator, tok, samples, **kwargs):
        out = []
        for i, s in enumerate(samples):
            n = len(strip_eos(s.completion_ids, tokenizer))
            cuts = [0, n // 3, 2 * n // 3, n]
            j = [0.05 * (i % 3), 0.1 + 0.2 * (i % 4), 0.6 - 0.1 * (i % 5), float(s.reward)]
            out.append(ProgressResult(episodes=["e"] * 3, cut_chars=cuts, cut_tokens=cuts, j=j, j_stderr=[0.0] * 4,
                                      progress=progress_from_j(j), tokens_at_cut=[float(c) for c in cuts],
                                      outcome=float(s.reward), natural_end_included=True, mode="sample",
                                      scores=[[v, v] for v in j[:3]] + [[float(s.reward)]], natural_end="outcome"))
        return out

    return estimate


@pytest.fixture(scope="module")
def shared_rollout(tmp_path_factory):
    """One mrt_dense rollout on the demo model (J fixed as above) and the context to credit it."""
    import mrt_engine.rl.algorithms as algorithms
    from mrt_engine.trainer import Trainer
    from test_train import small_config

    cfg = small_config(tmp_path_factory.mktemp("credit"), "mrt_dense", steps=1)
    trainer = Trainer(cfg)
    real = algorithms.estimate_progress
    algorithms.estimate_progress = _fixed_progress(trainer.tok)
    try:
        ctx = StepContext(cfg, trainer.backend, trainer.tok, trainer.estimator, trainer.pad_id,
                          seed=lambda salt: trainer._seed(0, salt))
        trainer.model.eval()
        rollout = trainer.algorithm.rollout(ctx, trainer.sampler.next(cfg.prompts_per_step))
    finally:
        algorithms.estimate_progress = real
    assert rollout.credit_seed == ctx.seed(5)
    return cfg, ctx, rollout


def _advantages(cfg, ctx, rollout, name, **algo):
    cfg = dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, name=name, **algo))
    return ALGORITHMS[name](cfg).credit(ctx, rollout)


def _episode_credit_from_advantages(credit, grpo, rollout, alpha):
    """Per trace, the credit each episode's tokens carry: (advantage - GRPO's) / alpha at the
    episode's first token (a token of an episode carries only that episode's value)."""
    from mrt_engine.rl.rollout_progress import episode_token_spans

    out = []
    dense = (credit.advantages - grpo.advantages) / alpha
    for i, (p, s) in enumerate(zip(rollout.progress, rollout.samples)):
        start = credit.batch.completion_start[i]
        out.append([dense[i, start + a].item() for a, b in episode_token_spans(p, s.num_completion_tokens) if b > a])
    return out


def test_each_dense_form_on_the_same_rollout(shared_rollout):
    cfg, ctx, rollout = shared_rollout
    alpha = cfg.algo.alpha
    assert alpha > 0
    grpo = _advantages(cfg, ctx, rollout, "grpo")
    real = _advantages(cfg, ctx, rollout, "mrt_dense")
    assert all(len(c) == 3 for c in _episode_credit_from_advantages(real, grpo, rollout, alpha)), \
        "every episode spans tokens (the stand-in cuts need traces of 3+ tokens)"
    real_credit = _episode_credit_from_advantages(real, grpo, rollout, alpha)
    assert real_credit == [pytest.approx(r.progress, abs=1e-6) for r in rollout.progress]  # own progress on own tokens
    advantages = {"mrt_dense": real.advantages}
    for name in DENSE[1:]:
        credit = _advantages(cfg, ctx, rollout, name)
        assert torch.equal(credit.batch.loss_mask, real.batch.loss_mask)
        advantages[name] = credit.advantages
        got = _episode_credit_from_advantages(credit, grpo, rollout, alpha)
        if name == "mrt_dense_to_go":
            assert got == [pytest.approx(progress_to_go(r.progress).tolist(), abs=1e-6) for r in rollout.progress]
        elif name == "mrt_dense_centred":
            groups = [s.group for s in rollout.samples]
            want = centred_progress([r.progress for r in rollout.progress], groups)
            assert got == [pytest.approx(w.tolist(), abs=1e-6) for w in want]
        elif name == "mrt_dense_placebo":  # the batch's multiset of credit values, placed elsewhere
            assert sorted(v for c in got for v in c) == pytest.approx(sorted(v for c in real_credit for v in c), abs=1e-6)
        else:  # within: each trace keeps its multiset, hence its total
            assert [sorted(c) for c in got] == [pytest.approx(sorted(c), abs=1e-6) for c in real_credit]
            assert [sum(c) for c in got] == pytest.approx([sum(c) for c in real_credit], abs=1e-5)
    # the real credit is not GRPO's, and no form (placebos included) reproduces another
    assert not torch.equal(real.advantages, grpo.advantages)
    names = list(advantages)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(advantages[a], advantages[b]), f"{a} and {b} give the same advantages"
    # the same rollout gives the same placebo: the permutation is drawn from the rollout's seed
    for name in PLACEBOS:
        assert torch.equal(_advantages(cfg, ctx, rollout, name).advantages, advantages[name])


def test_alpha_zero_makes_every_dense_form_grpo(shared_rollout):
    cfg, ctx, rollout = shared_rollout
    grpo = _advantages(cfg, ctx, rollout, "grpo").advantages
    for name in DENSE:
        assert torch.equal(_advantages(cfg, ctx, rollout, name, alpha=0.0).advantages, grpo), name


def test_every_dense_form_is_an_mrt_dense_with_its_own_credit():
    for name in DENSE:
        assert issubclass(ALGORITHMS[name], MRTDense)
        assert ALGORITHMS[name].__doc__ and "paper" in ALGORITHMS[name].__doc__  # says its relation to it
