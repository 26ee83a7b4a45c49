"""mrt_dense with ``algo.progress.mode: score`` on the shipped demo model.

The J values the trainer turns into advantages must be exactly what a separately built
``ProgressEstimator(mode="score", method="fast")`` returns for the same completions at the
same weights (snapshotted right before each update), placed on the right completion tokens;
and the policy must still learn.
"""
import copy
import warnings

import pytest
import torch

from mrt_engine.config import TrainConfig
from mrt_engine.episodes import SingleEpisodeWarning
from mrt_engine.integrations._common import episode_token_spans as char_episode_spans, token_char_ends
from mrt_engine.progress import ProgressEstimator
from mrt_engine.config.presets import shipped_config
from mrt_engine.rl.rollout_progress import episode_token_spans
from mrt_engine.rl.rollout import strip_eos
from mrt_engine.trainer import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


def score_config(tmp_path) -> TrainConfig:
    d = shipped_config("demo")
    # the chain-task demo model, whose signal these short runs were sized for (the demo
    # itself now runs the digit regime)
    d["model"]["name"], d["data"]["task"] = "demo", "chain"
    d["data"].update(num_train=16, num_eval=0, seed=123)  # the warm start's own problems: some solved
    d["rollout"].update(group_size=2, max_tokens=384, temperature=0.7)
    d["algo"]["name"] = "mrt_dense"
    d["algo"]["progress"].update(mode="score", natural_end="close", max_cuts=4)
    d["optim"].update(lr=1e-3, weight_decay=0.0, micro_batch_size=4, warmup_ratio=0.0)
    d.update(steps=2, prompts_per_step=4, output_dir=str(tmp_path / "run"), tensorboard=False, progress_bar=False,
             num_threads=None)
    return TrainConfig.from_dict(d)


def test_mrt_dense_score_progress_matches_a_separate_estimator(tmp_path, monkeypatch):
    cfg = score_config(tmp_path)
    trainer = Trainer(cfg)
    model, tok = trainer.model, trainer.tok
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []
    real = trainer.algorithm.credit

    def spy(ctx, rollout):
        # the weights the progress was estimated with: nothing has been updated since rollout
        state = {n: p.detach().clone() for n, p in model.named_parameters()}
        credit = real(ctx, rollout)
        seen.append((list(rollout.samples), rollout.progress, state, credit.batch, credit.advantages))
        return credit

    monkeypatch.setattr(trainer.algorithm, "credit", spy)
    result = trainer.run()
    assert result.steps == 2 and len(seen) == 2
    assert model.training, "the update leaves the policy in train mode"
    assert all(h["time/progress_s"] > 0 and h["time/generation_s"] > 0 for h in result.history)
    # score mode is exact: the logged reliability is 1 and the noise 0 by construction
    assert all(h["progress/split_half_r"] == 1.0 and h["progress/spearman_brown"] == 1.0
               and h["progress/noise_sd"] == 0.0 for h in result.history)

    # a separately constructed estimator on a copy of the snapshotted weights
    other = copy.deepcopy(model)
    estimator = ProgressEstimator(other, tok, mode="score", method="fast", template=cfg.algo.progress.template,
                                  scheme=cfg.algo.progress.scheme, segment_options={"max_cuts": 4})
    num_multi = 0
    for samples, progress, state, batch, adv in seen:
        with torch.no_grad():
            for n, p in other.named_parameters():
                p.copy_(state[n])
        traces = [strip_eos(s.completion_ids, tok) for s in samples]
        with warnings.catch_warnings():  # rollouts of one episode: the trainer silences this hint too
            warnings.simplefilter("ignore", SingleEpisodeWarning)
            ref = estimator.estimate([s.context_ids for s in samples], traces, [s.problem.answer for s in samples])
        assert len(progress) == len(samples)
        for s, p, r, ids in zip(samples, progress, ref, traces):
            assert p.j == r.j, "trainer's J differs from the separate estimator's at the same weights"
            assert all(0.0 <= x <= 1.0 for x in p.j) and p.num_episodes == r.num_episodes
            num_multi += r.num_episodes > 1
            # spans: the estimator's token cuts, which the char-offset mapping of the
            # integrations agrees with (the last episode also covers the EOS)
            spans = char_episode_spans(r, token_char_ends(tok, ids))
            if spans:
                spans[-1] = (spans[-1][0], len(s.completion_ids))
            assert episode_token_spans(p, len(s.completion_ids)) == spans
        # the advantages carry alpha * progress_k on episode k's tokens on top of one outcome term
        for i, (s, p) in enumerate(zip(samples, progress)):
            start = batch.completion_start[i]
            row = adv[i, start:start + len(s.completion_ids)]
            spans = episode_token_spans(p, len(s.completion_ids))
            rest = torch.cat([row[a:b] - cfg.algo.alpha * p.progress[k] for k, (a, b) in enumerate(spans)])
            if rest.numel():
                torch.testing.assert_close(rest, rest[:1].expand_as(rest), rtol=0, atol=1e-6)
    assert num_multi, "no completion had more than one episode: the test checks nothing per cut"
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, f"no parameter changed in 2 steps; history: {result.history}"
    # step 2 estimated J with the weights step 1 wrote (the live policy, no stale copy)
    assert any(not torch.equal(seen[1][2][n], before[n]) for n in before)


def test_score_estimator_config_checks():
    with pytest.raises(ValueError, match="mode="):
        TrainConfig.from_dict({"algo": {"name": "mrt_dense", "progress": {"mode": "sampled"}}})
    with pytest.raises(ValueError, match="scoring template"):
        TrainConfig.from_dict({"algo": {"name": "mrt_dense", "progress": {"mode": "score", "template": "r1"}}})
    with pytest.raises(ValueError, match="scoring template"):
        TrainConfig.from_dict({"algo": {"name": "mrt_star", "progress": {
            "mode": "score", "template": {"text": "\n\nAnswer: ", "answer_prefix": "Answer: "}}}})
    cfg = TrainConfig.from_dict({"algo": {"name": "mrt_star", "progress": {"mode": "score", "template": "boxed"}}})
    assert cfg.algo.progress.mode == "score"
    assert TrainConfig().algo.progress.mode == "sample"


def test_progress_needs_a_reference_answer(tiny):
    from types import SimpleNamespace

    from mrt_engine.rl.rollout_progress import estimate_progress
    from mrt_engine.rl.rollout import Sample

    model, tok = tiny
    est = ProgressEstimator(model, tok, mode="score", template="boxed")
    sample = Sample(SimpleNamespace(problem="1+1?", answer=""), 0, [5, 6], [7, 8, tok.eos_token_id], "x")
    with pytest.raises(ValueError, match="reference answer"):
        estimate_progress(est, tok, [sample])
    sample.problem.answer = 2  # numbers are normalised to their string form
    (res,) = estimate_progress(est, tok, [sample])
    assert res.cut_tokens[-1] == 2  # the trailing EOS is not part of the segmented trace
