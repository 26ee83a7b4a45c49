"""Rollout pieces with a scripted generator: scalar-MRT prefix continuations, forced-termination
branches through the one estimator (J per cut, episode token spans), packing, and the
algorithms' credit."""
import random
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from mrt_engine.config import AlgoConfig, EstimatorConfig, RolloutConfig, TrainConfig
from mrt_engine.engine import GenerationOutput, SamplingParams
from mrt_engine.progress import ProgressEstimator, token_curve
from mrt_engine.rl.algorithms import Rollout, StepContext, build_algorithm
from mrt_engine.models import demo_tokenizer
from mrt_engine.rl.rollout_progress import episode_token_spans, estimate_progress
from mrt_engine.rl.rollout import Sample, pack, sample_prefix_continuations
from mrt_engine.prompts import TerminationTemplate, encode

TEMPLATE = TerminationTemplate(text="\n\nFinal: \\boxed{", answer_prefix="\\boxed{", answer_suffix="}", name="t")
TRACE = "Try 2+2=5.\n\nNo.\n\nHmm.\n\nWait, 2+2=4.\n\nYes.\n\nSo.\n\nAlternatively, \\boxed{4}"


@dataclass
class Problem:
    id: str
    problem: str
    answer: str
    task: str = "test"
    meta: dict = None


def _reply(tok, context_ids) -> str:
    """'4}' to a forced termination once the context states 2+2=4, else '5}'; TRACE to a prompt."""
    text = tok.decode(context_ids)
    if text.endswith("\\boxed{"):
        return "4}" if "2+2=4" in text else "5}"
    return TRACE


class ScriptedBackend:
    """A rollout backend (``generate``) that answers by :func:`_reply`; records every call."""

    def __init__(self, tok):
        self.tok = tok
        self.calls = []

    def generate(self, prompts, s: SamplingParams):
        self.calls.append((prompts, s))
        out = []
        for p in prompts:
            reply = _reply(self.tok, p)
            out.append([GenerationOutput(list(p), encode(self.tok, reply), reply, None, "stop") for _ in range(s.n)])
        return out


class ScriptedGenerator:
    """What the estimator's sample mode calls (``branch``), answering by :func:`_reply`."""

    def __init__(self, tok):
        self.tok = tok
        self.forward = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=4096)))
        self.calls = []

    def branch(self, prefix_ids, cuts, suffix_ids, params):
        self.calls.append(list(cuts))
        outs = []
        for cut, suffix in zip(cuts, suffix_ids):
            context = list(prefix_ids[:cut]) + list(suffix)
            reply = _reply(self.tok, context)
            outs.append([GenerationOutput(context, encode(self.tok, reply), reply, None, "stop")] * params.n)
        return outs

    def branch_many(self, traces, params):  # what sample mode calls: all traces of a step at once
        return [self.branch(prefix, cuts, suffixes, p) for (prefix, cuts, suffixes), p in zip(traces, params)]


def _estimator(tok, gen=None):
    config = EstimatorConfig(mode="sample", template=TEMPLATE, num_branches=2, max_answer_tokens=4, max_cuts=6,
                             temperature=1.0, natural_end="outcome")
    return ProgressEstimator(None, tok, generator=gen or ScriptedGenerator(tok), config=config)


def _sample(tok, reward: float):
    prompt = encode(tok, "Q: 2+2?\n")
    ids = encode(tok, TRACE) + [tok.eos_token_id]
    return Sample(Problem("p", "2+2?", "4"), 0, prompt, ids, TRACE, reward=reward), prompt, ids


def test_branching_j_per_cut_and_episode_spans():
    tok = demo_tokenizer()
    s, prompt, ids = _sample(tok, 1.0)
    gen = ScriptedGenerator(tok)
    (res,) = estimate_progress(_estimator(tok, gen), tok, [s])
    # r1 episodes: "Try..No..Hmm." | "Wait, 2+2=4..Yes..So." | "Alternatively, \boxed{4}"
    assert res.num_episodes == 3 and res.natural_end == "outcome"
    assert res.j == [0.0, 0.0, 1.0, 1.0]  # empty prefix, after ep 1, after ep 2, natural end (= outcome)
    assert res.progress == [0.0, 1.0, 0.0]
    ep2, ep3 = TRACE.index("Wait"), TRACE.index("Alternatively")
    end = len(ids) - 1  # the trace without its EOS
    assert res.cut_tokens == [0, ep2, ep3, end]  # byte tokens == chars here
    assert gen.calls == [[len(prompt), len(prompt) + ep2, len(prompt) + ep3]]  # no branches at the natural end
    spans = episode_token_spans(res, len(ids))
    assert spans == [(0, ep2), (ep2, ep3), (ep3, len(ids))]  # the last episode covers the EOS token
    tokens, _ = token_curve(res)
    assert all(a <= b for a, b in zip(tokens, tokens[1:]))
    assert res.tokens_at_cut[-1] == len(prompt) + end  # the outcome's cut spends the trace, no answer


def _ctx(cfg, tok):
    return StepContext(cfg, ScriptedBackend(tok), tok, _estimator(tok), tok.pad_token_id, seed=lambda salt: salt)


def test_dense_advantages_land_on_episode_tokens():
    tok = demo_tokenizer()
    (s0, prompt, ids), (s1, _, _) = _sample(tok, 1.0), _sample(tok, 0.0)
    cfg = TrainConfig(algo=AlgoConfig(name="mrt_dense", alpha=0.5, advantage_scale="none"),
                      rollout=RolloutConfig(group_size=2, max_tokens=200))
    ctx = _ctx(cfg, tok)
    rollout = Rollout([s0, s1], 2, progress=ctx.progress([s0, s1]))
    assert "progress" in ctx.timings
    credit = build_algorithm(cfg).credit(ctx, rollout)
    adv = credit.advantages
    start, ep2, ep3 = len(prompt), TRACE.index("Wait"), TRACE.index("Alternatively")
    # sample 0: outcome +0.5; episode 2 has progress +1 -> +0.5 * 1; sample 1: outcome -0.5 and
    # its natural end is wrong, so the last episode's progress is 0 - 1 = -1 -> -0.5
    assert torch.allclose(adv[0, start:start + ep2], torch.full((ep2,), 0.5))
    assert torch.allclose(adv[0, start + ep2:start + ep3], torch.full((ep3 - ep2,), 1.0))
    assert torch.allclose(adv[1, start + ep3:start + len(ids)], torch.full((len(ids) - ep3,), -1.0))
    assert adv[:, :start].abs().sum() == 0  # nothing on the prompt
    assert credit.metrics["num_episodes"] == 3


def test_scalar_prefix_continuations():
    tok = demo_tokenizer()
    problems = [Problem("a", "2+2?", "4"), Problem("b", "2+2 again?", "4")]
    backend = ScriptedBackend(tok)
    samples = sample_prefix_continuations(backend, tok, problems, sampling=SamplingParams(max_tokens=300, temperature=1.0, seed=3),
                                          num_continuations=4, num_terminate=2, max_answer_tokens=4, template=TEMPLATE,
                                          scheme="r1", segment_options={}, rng=random.Random(0))
    assert len(samples) == 8
    for g in range(2):
        group = [s for s in samples if s.group == g]
        assert [s.terminated for s in group] == [True, True, False, False]
        k = group[0].meta["prefix_episodes"]
        assert 0 <= k < group[0].meta["num_episodes"] == 3
        # terminated continuations see prompt + prefix + termination; the others prompt + prefix
        term_ctx = tok.decode(group[0].context_ids)
        assert term_ctx.endswith(TEMPLATE.text) and not tok.decode(group[2].context_ids).endswith(TEMPLATE.text)
        prompt_len = len(group[2].context_ids) - group[2].prefix_tokens
        prefix_text = tok.decode(group[2].context_ids[prompt_len:])
        assert TRACE.startswith(prefix_text) and (k == 0) == (prefix_text == "")
        # forced answers are right exactly when the prefix already holds 2+2=4 (k >= 2)
        assert all(s.reward == float(k >= 2) for s in group[:2])
        assert all(s.reward == 1.0 for s in group[2:])  # full trace ends in \boxed{4}
    cfg = TrainConfig(algo=AlgoConfig(name="mrt_scalar", num_continuations=4, num_terminate=2),
                      rollout=RolloutConfig(max_tokens=300))
    credit = build_algorithm(cfg).credit(_ctx(cfg, tok), Rollout(samples, 4))
    batch, adv = credit.batch, credit.advantages
    for i, s in enumerate(samples):
        base = float(s.meta["prefix_episodes"] >= 2)
        trained = batch.loss_mask[i].bool()
        assert torch.allclose(adv[i][trained], torch.full((int(trained.sum()),), s.reward - base))


def test_pack_masks_only_completions():
    tok = demo_tokenizer()
    s1 = Sample(None, 0, [1, 2, 3], [4, 5], "")
    s2 = Sample(None, 0, [1], [6, 7, 8, 9], "")
    b = pack([s1, s2], pad_id=0)
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5], [1, 6, 7, 8, 9]]
    assert b.loss_mask.tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]
    s3 = Sample(None, 0, [1], [2], "")
    b = pack([s1, s3], pad_id=0)
    assert b.attention_mask.tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    assert b.rows(1, 2).input_ids.tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="empty context"):
        pack([Sample(None, 0, [], [1], "")], 0)
