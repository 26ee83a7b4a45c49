"""OpenRLHF: the reward_func file, fed inputs shaped as OpenRLHF builds them.

OpenRLHF (not installable here) decodes ``prompt + response`` token rows with
``skip_special_tokens=False`` (left padding, EOS and right padding included) into
``queries``, passes the chat-templated prompt strings as ``prompts`` and the ``--label_key``
column as ``labels``, and reads ``rewards``, ``scores`` and ``extra_logs`` from the dict.
"""
import importlib.util

import pytest
import torch

from mrt_engine.integrations import openrlhf
from mrt_engine.progress import EstimatorConfig, ProgressScorer
from mrt_engine.progress import ProgressEstimator

ALPHA = 1e10  # random tiny model: J near 1e-10
PROBLEMS = ["What is 2+3?", "What is 7-4?", "What is 2*6?"]
RESPONSES = ["2 plus 3 is \\boxed{5}", "Wait, it is 4? No: \\boxed{3}", "I think \\boxed{11}"]
LABELS = ["5", "3", "12"]


def _openrlhf_batch(tok):
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in PROBLEMS]
    rows = [tok(p, add_special_tokens=False)["input_ids"] + tok(r, add_special_tokens=False)["input_ids"]
            + [tok.eos_token_id] for p, r in zip(prompts, RESPONSES)]
    width = max(map(len, rows)) + 2
    pad = tok.pad_token_id
    # left padding as OpenRLHF's generate batches, plus trailing pad on the shorter rows
    sequences = [[pad] * (width - len(r) - 1) + r + [pad] for r in rows]
    queries = tok.batch_decode(sequences, skip_special_tokens=False)
    return queries, prompts


def test_reward_func_returns_openrlhf_dict_with_estimator_values(tiny):
    model, tok = tiny
    queries, prompts = _openrlhf_batch(tok)
    assert all(q.endswith(tok.decode([tok.pad_token_id])) for q in queries)  # special tokens really are there
    fn = openrlhf.make_reward_func(ProgressScorer(model, tok, EstimatorConfig()), alpha=ALPHA)
    out = fn(queries, prompts, LABELS)
    assert set(out) == {"rewards", "scores", "extra_logs"}
    ref = ProgressEstimator(model, tok).estimate(PROBLEMS, RESPONSES, LABELS)
    want = [r.outcome + ALPHA * sum(r.progress) for r in ref]
    assert out["rewards"].dtype == torch.float32 and out["rewards"].shape == (3,)
    assert out["rewards"].tolist() == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert out["scores"].tolist() == [1.0, 1.0, 0.0]  # graded outcome: 5 right, 3 right, 11 wrong
    assert set(out["extra_logs"]) == {"mrt_progress", "mrt_outcome", "mrt_j0"}
    assert out["extra_logs"]["mrt_j0"].tolist() == pytest.approx([r.j[0] for r in ref], rel=1e-4)


def test_response_and_problem_are_recovered_from_openrlhf_strings(tiny):
    tok = tiny[1]
    queries, prompts = _openrlhf_batch(tok)
    specials = tuple(tok.all_special_tokens)
    assert [openrlhf.split_response(q, p, special_tokens=specials) for q, p in zip(queries, prompts)] == RESPONSES
    assert [openrlhf._problem_text(tok, p) for p in prompts] == PROBLEMS
    assert openrlhf._problem_text(tok, "plain prompt") == "plain prompt"


def test_termination_baseline_form_and_bonus_only(tiny):
    model, tok = tiny
    queries, prompts = _openrlhf_batch(tok)
    scorer = ProgressScorer(model, tok, EstimatorConfig())
    ref = ProgressEstimator(model, tok).estimate(PROBLEMS, RESPONSES, LABELS)
    tb = openrlhf.make_reward_func(scorer, form="termination_baseline")(queries, prompts, LABELS)
    assert tb["rewards"].tolist() == pytest.approx([r.outcome - r.j[0] for r in ref], rel=1e-6, abs=1e-12)
    bonus = openrlhf.make_reward_func(scorer, alpha=ALPHA, include_outcome=False)(queries, prompts, LABELS)
    assert bonus["rewards"].tolist() == pytest.approx([ALPHA * sum(r.progress) for r in ref], rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="scalar reward"):
        openrlhf.make_reward_func(scorer, form="dense")


def test_missing_labels_name_the_flag(tiny):
    queries, prompts = _openrlhf_batch(tiny[1])
    fn = openrlhf.make_reward_func(ProgressScorer(*tiny))
    with pytest.raises(ValueError, match="--label_key"):
        fn(queries, prompts, None)
    with pytest.raises(ValueError, match="--label_key"):
        fn(queries, prompts, ["5", "", "12"])


def test_module_entry_point_reads_its_environment(tiny, monkeypatch):
    """The file OpenRLHF loads by path: reward_func configured from MRT_* variables."""
    spec = importlib.util.spec_from_file_location("reward_module", openrlhf.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # what --remote_rm_url <file.py> does
    monkeypatch.delenv("MRT_PROGRESS_MODEL", raising=False)
    with pytest.raises(RuntimeError, match="MRT_PROGRESS_MODEL"):
        module.reward_func(["q"], ["q"], ["1"])

    loaded = []
    monkeypatch.setenv("MRT_PROGRESS_MODEL", "tiny")
    monkeypatch.setenv("MRT_ALPHA", str(ALPHA))
    monkeypatch.setattr("mrt_engine.models.load_model", lambda name, **kw: loaded.append((name, kw)) or tiny)
    module._default_reward_func.cache_clear()
    queries, prompts = _openrlhf_batch(tiny[1])
    out = module.reward_func(queries, prompts, LABELS)
    assert loaded == [("tiny", {"device": "cpu", "dtype": "float32"})]
    ref = ProgressEstimator(*tiny).estimate(PROBLEMS, RESPONSES, LABELS)
    assert out["rewards"].tolist() == pytest.approx([r.outcome + ALPHA * sum(r.progress) for r in ref],
                                                    rel=1e-4, abs=1e-6)
