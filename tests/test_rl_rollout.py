"""Rollout pieces with a scripted generator: scalar-MRT prefix continuations, forced-termination
branching (J per cut, episode token spans), packing, and per-algorithm advantages."""
import random
from dataclasses import dataclass

import pytest
import torch

from mrt_engine.rl.algorithms import advantages_for
from mrt_engine.rl.branching import estimate_trace_progress
from mrt_engine.rl.config import AlgoConfig
from mrt_engine.rl.demo_model import demo_tokenizer
from mrt_engine.rl.generation import Completion, Sampling
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


class ScriptedBackend:
    """Answers a forced termination with '4}' once the context states 2+2=4, else '5}';
    a plain prompt gets TRACE; records every call."""

    def __init__(self, tok):
        self.tok = tok
        self.calls = []

    def generate(self, prompts, s: Sampling):
        self.calls.append((prompts, s))
        out = []
        for p in prompts:
            text = self.tok.decode(p)
            if text.endswith("\\boxed{"):
                reply = "4}" if "2+2=4" in text else "5}"
            else:
                reply = TRACE
            ids = encode(self.tok, reply)
            out.append([Completion(ids, reply, "stop") for _ in range(s.n)])
        return out


def test_branching_j_per_cut_and_episode_spans():
    tok = demo_tokenizer()
    problem = Problem("p", "2+2?", "4")
    prompt = encode(tok, "Q: 2+2?\n")
    ids = encode(tok, TRACE) + [tok.eos_token_id]
    s = Sample(problem, 0, prompt, ids, TRACE, reward=1.0)
    (res,) = estimate_trace_progress(ScriptedBackend(tok), tok, [s], template=TEMPLATE, scheme="r1",
                                     segment_options={}, max_cuts=6, num_branches=2, answer_max_tokens=4,
                                     temperature=1.0)
    # r1 episodes: "Try..No..Hmm." | "Wait, 2+2=4..Yes..So." | "Alternatively, \boxed{4}"
    assert len(res.episode_spans) == 3
    assert res.j == [0.0, 0.0, 1.0, 1.0]  # empty prefix, after ep 1, after ep 2, natural end (= outcome)
    assert res.progress.tolist() == [0.0, 1.0, 0.0]
    ep2 = TRACE.index("Wait")
    assert res.cut_tokens == [0, ep2, TRACE.index("Alternatively")]  # byte tokens == chars here
    assert res.episode_spans[1] == (ep2, TRACE.index("Alternatively"))
    assert res.episode_spans[-1][1] == len(ids)  # the last episode covers the EOS token
    assert all(a <= b for a, b in zip(res.tokens_at_cut, res.tokens_at_cut[1:]))


def test_dense_advantages_land_on_episode_tokens():
    tok = demo_tokenizer()
    problem = Problem("p", "2+2?", "4")
    prompt = encode(tok, "Q: 2+2?\n")
    ids = encode(tok, TRACE) + [tok.eos_token_id]
    samples = [Sample(problem, 0, prompt, ids, TRACE, reward=1.0), Sample(problem, 0, prompt, ids, TRACE, reward=0.0)]
    progress = estimate_trace_progress(ScriptedBackend(tok), tok, samples, template=TEMPLATE, scheme="r1",
                                       segment_options={}, max_cuts=6, num_branches=2, answer_max_tokens=4,
                                       temperature=1.0)
    batch = pack(samples, tok.pad_token_id)
    algo = AlgoConfig(name="mrt_dense", alpha=0.5, advantage_scale="none")
    adv, metrics = advantages_for(algo, samples, batch, group_size=2, max_tokens=200, progress=progress)
    start, ep2, ep3 = len(prompt), TRACE.index("Wait"), TRACE.index("Alternatively")
    # sample 0: outcome +0.5; episode 2 has progress +1 -> +0.5 * 1; sample 1: outcome -0.5 and
    # its natural end is wrong, so the last episode's progress is 0 - 1 = -1 -> -0.5
    assert torch.allclose(adv[0, start:start + ep2], torch.full((ep2,), 0.5))
    assert torch.allclose(adv[0, start + ep2:start + ep3], torch.full((ep3 - ep2,), 1.0))
    assert torch.allclose(adv[1, start + ep3:start + len(ids)], torch.full((len(ids) - ep3,), -1.0))
    assert adv[:, :start].abs().sum() == 0  # nothing on the prompt


def test_scalar_prefix_continuations():
    tok = demo_tokenizer()
    problems = [Problem("a", "2+2?", "4"), Problem("b", "2+2 again?", "4")]
    backend = ScriptedBackend(tok)
    samples = sample_prefix_continuations(backend, tok, problems, sampling=Sampling(max_tokens=300, temperature=1.0, seed=3),
                                          num_continuations=4, num_terminate=2, answer_max_tokens=4, template=TEMPLATE,
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
    algo = AlgoConfig(name="mrt_scalar", num_continuations=4, num_terminate=2)
    batch = pack(samples, tok.pad_token_id)
    adv, metrics = advantages_for(algo, samples, batch, group_size=4, max_tokens=300)
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
