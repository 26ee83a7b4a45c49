"""The framework-free pieces every adapter shares: spans, reward forms, answers, errors."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrt_engine.integrations import _common as C
from mrt_engine.progress import ProgressResult


def _result(episodes, j, outcome=1.0):
    cuts = [0]
    for text in episodes:
        cuts.append(cuts[-1] + len(text))
    return ProgressResult(episodes=list(episodes), cut_chars=cuts, cut_tokens=list(range(len(cuts))), j=list(j),
                          j_stderr=[0.0] * len(j), progress=[b - a for a, b in zip(j[:-1], j[1:])],
                          tokens_at_cut=[0.0] * len(j), outcome=outcome, natural_end_included=True)


def test_token_spans_follow_the_last_character_of_each_token():
    res = _result(["abc ", "de", "fgh"], [0.1, 0.2, 0.4, 0.3])  # cuts at chars 0, 4, 6, 9
    # Tokens ending at chars 2, 5, 5 (decodes to nothing), 6, 9, 12 (after the thinking).
    ends = [2, 5, 5, 6, 9, 12]
    assert C.episode_token_spans(res, ends) == [(0, 1), (1, 4), (4, 5)]
    dense = C.dense_rewards(res, C.episode_token_spans(res, ends), len(ends), alpha=2.0)
    assert dense.tolist() == pytest.approx([0.2, 0.4, 0.4, 0.4, -0.2, 0.0])
    last = C.last_token_rewards(res, C.episode_token_spans(res, ends), len(ends), alpha=2.0, outcome_index=5)
    assert last.tolist() == pytest.approx([0.2, 0.0, 0.0, 0.4, -0.2, 1.0])
    assert last.sum().item() == pytest.approx(1.0 + 2.0 * (0.3 - 0.1))


def test_token_straddling_a_boundary_goes_to_the_later_episode():
    res = _result(["ab", "cd"], [0.0, 0.5, 1.0])  # cut at char 2
    ends = [1, 3, 4]  # token 1 covers chars 1..3, across the cut
    assert C.episode_token_spans(res, ends) == [(0, 1), (1, 3)]


def test_empty_episode_span_and_its_reward_position():
    res = _result(["ab", "", "cd"], [0.0, 0.5, 0.7, 1.0])
    ends = [1, 2, 3, 4]
    spans = C.episode_token_spans(res, ends)
    assert spans == [(0, 2), (2, 2), (2, 4)]
    last = C.last_token_rewards(res, spans, 4, alpha=1.0, outcome_index=3)
    assert last.tolist() == pytest.approx([0.0, 0.5, 0.2, 0.3 + 1.0])


def test_token_char_ends_match_decoded_prefixes(tokenizer):
    ids = tokenizer("Wait, 2+2 = 4 ✓ so \\boxed{4}", add_special_tokens=False)["input_ids"]
    ends = C.token_char_ends(tokenizer, ids)
    assert ends[-1] == len(tokenizer.decode(ids, skip_special_tokens=True))
    assert all(a <= b for a, b in zip(ends, ends[1:]))


def test_scalar_forms():
    res = _result(["a", "b"], [0.1, 0.3, 0.6], outcome=1.0)
    assert C.scalar_reward(res, form="progress", alpha=2.0, include_outcome=False) == pytest.approx(1.0)
    assert C.scalar_reward(res, form="progress", alpha=2.0, include_outcome=True) == pytest.approx(2.0)
    assert C.scalar_reward(res, form="termination_baseline", alpha=2.0, include_outcome=False) == pytest.approx(0.9)
    assert C.scalar_reward(res, form="dense", alpha=2.0, include_outcome=False) == 1.0
    empty = _result([], [0.2], outcome=0.0)
    assert C.scalar_reward(empty, form="progress", alpha=1.0, include_outcome=True) == 0.0
    with pytest.raises(ValueError, match="form="):
        C.scalar_reward(res, form="sparse", alpha=1.0, include_outcome=False)
    ungraded = _result(["a"], [0.1, 0.2], outcome=None)
    with pytest.raises(ValueError, match="outcome"):
        C.scalar_reward(ungraded, form="progress", alpha=1.0, include_outcome=True)


def test_reference_answers_and_columns():
    assert C.reference_answer(3, index=0) == "3"
    assert C.reference_answer(["1/2", 0.5], index=0) == ["1/2", "0.5"]
    with pytest.raises(TypeError, match="example 4"):
        C.reference_answer({"a": 1}, index=4)
    with pytest.raises(KeyError, match="'answer'.*\\['problem', 'solution'\\].*answer_column"):
        C.answer_column({"solution": ["1"], "problem": ["p"]}, "answer", 1, what="X")
    with pytest.raises(ValueError, match="entries for 2"):
        C.answer_column({"answer": ["1"]}, "answer", 2, what="X")


def test_message_text():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "q"}]}]
    assert C.message_text(chat, role="user") == "q"
    assert C.message_text("plain") == "plain"
    with pytest.raises(ValueError, match="'assistant'"):
        C.message_text(chat, role="assistant")


def test_scorer_restores_training_mode_and_needs_a_model(tiny):
    model, tok = tiny
    model.train()
    try:
        C.ProgressScorer(model, tok).estimate(["What is 1+1?"], ["2, \\boxed{2}"], ["2"])
        assert model.training
    finally:
        model.eval()
    with pytest.raises(RuntimeError, match="bind"):
        C.ProgressScorer().estimate(["q"], ["t"], ["1"])
    with pytest.raises(ValueError, match="mode="):
        C.EstimatorConfig(mode="exact")


@pytest.mark.parametrize("module,framework,hint", [
    ("mrt_engine.integrations.trl", "trl", "pip install trl"),
    ("mrt_engine.integrations.verl", "verl", "setup_verl_venv.sh"),
])
def test_missing_framework_says_what_to_install(monkeypatch, module, framework, hint):
    monkeypatch.setitem(sys.modules, framework, None)  # as if not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ModuleNotFoundError, match=hint):
        importlib.import_module(module)


def test_package_import_pulls_in_no_framework():
    """Importing the package (and the OpenRLHF file, which imports no OpenRLHF) loads no framework."""
    code = ("import sys, mrt_engine.integrations, mrt_engine.integrations.openrlhf; "
            "print(sorted(m for m in ('trl', 'verl', 'openrlhf', 'mrt_engine.integrations.trl') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
