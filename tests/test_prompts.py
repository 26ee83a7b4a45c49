"""Meta-prover prompts on the real SmolLM2 tokenizer and an R1-style chat template."""
import copy
import re
from pathlib import Path

import pytest

from mrt_engine.episodes import segment, token_cut_points
from mrt_engine.prompts import (
    BOXED_TERMINATION,
    R1_SCORING_TERMINATION,
    R1_TERMINATION,
    TEMPLATES,
    TerminationTemplate,
    answer_ids,
    chat_text,
    get_template,
    meta_prover_ids,
    natural_close_ids,
    prompt_ids,
    termination_ids,
)

MRT_DOC = Path(__file__).resolve().parent.parent / "docs" / "method.md"  # the method in the repo
# DeepSeek-R1-distill style: BOS written by the template, <｜User｜>/<｜Assistant｜> roles and
# the assistant turn opened with "<think>\n". Written for these tests.
R1_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)
PROBLEM = "What is $\\frac{1}{2} + \\frac{1}{3}$? Put the answer in \\boxed{}."
TRACE = (
    "Okay, so I need to add 1/2 and 1/3.\n\nThe common denominator is 6.\n\n"
    "So 3/6 + 2/6 = 5/6.\n\nWait, let me check: 0.5 + 0.333 = 0.833.\n\n"
    "That is 5/6. Yes.\n\nSo the answer is 5/6."
)


def _decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _with_bos_added(tok, bos_token=None):
    """A copy of ``tok`` whose encode adds a BOS (optionally a different BOS token)."""
    tok = copy.deepcopy(tok)
    if bos_token is not None:
        tok.bos_token = bos_token
    tok.add_bos_token = True
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    return tok


@pytest.fixture(scope="module")
def r1_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = R1_CHAT_TEMPLATE
    return tok


def test_r1_termination_is_the_doc_text_exactly():
    doc = MRT_DOC.read_text()
    block = re.search(r"```\n(Time is up\..*?)```", doc, re.S).group(1)
    # The fenced block ends with the fence's own newline; the text ends where the answer begins.
    assert block == R1_TERMINATION.text + "\n"
    assert R1_TERMINATION.text.endswith("</think>\n\n**Step-by-Step Explanation and Answer:**\n\n1. **")
    assert not R1_TERMINATION.scorable


def test_scoring_templates_end_where_the_answer_begins():
    assert R1_SCORING_TERMINATION.text.endswith("</think>\n\nThe final answer is \\boxed{")
    # Same stop sentence as the R1 text, up to and including "</think>\n\n".
    head = R1_TERMINATION.text[: R1_TERMINATION.text.index("</think>") + len("</think>\n\n")]
    assert R1_SCORING_TERMINATION.text.startswith(head)
    assert BOXED_TERMINATION.text.endswith("\\boxed{") and "</think>" not in BOXED_TERMINATION.text
    assert BOXED_TERMINATION.text.startswith("\n\nTime is up.")
    for t in (R1_SCORING_TERMINATION, BOXED_TERMINATION):
        assert t.scorable and t.answer_suffix == "}"
    assert BOXED_TERMINATION.natural_close == "\n\nThe final answer is \\boxed{"
    assert R1_SCORING_TERMINATION.natural_close == "\n</think>\n\nThe final answer is \\boxed{"


def test_template_registry_and_errors():
    assert TEMPLATES["r1"] is R1_TERMINATION and get_template(None) is R1_TERMINATION
    assert get_template(None, scoring=True) is R1_SCORING_TERMINATION
    assert get_template("boxed", scoring=True) is BOXED_TERMINATION
    with pytest.raises(ValueError, match="unknown termination template"):
        get_template("nope")
    with pytest.raises(ValueError, match="sampling only"):
        get_template(R1_TERMINATION, scoring=True)
    with pytest.raises(ValueError, match="must end with answer_prefix"):
        TerminationTemplate("Stop now.", answer_prefix="Answer:")
    with pytest.raises(ValueError, match="non-empty"):
        TerminationTemplate("")
    custom = TerminationTemplate("\nStop. Answer: [", answer_prefix="Answer: [", name="mine", answer_suffix="]")
    assert custom.natural_close == "\n\nAnswer: [" and custom.scorable


def test_prompt_ids_smollm2_template(tokenizer):
    ids = prompt_ids(tokenizer, PROBLEM)
    text = chat_text(tokenizer, PROBLEM)
    assert text.endswith("<|im_start|>assistant\n")
    assert _decode(tokenizer, ids) == text
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
    with_system = prompt_ids(tokenizer, PROBLEM, system="Be brief.")
    assert _decode(tokenizer, with_system).startswith("<|im_start|>system\nBe brief.<|im_end|>")


def test_prompt_ids_r1_template_single_bos(r1_tokenizer):
    expected = r1_tokenizer.bos_token + "<｜User｜>" + PROBLEM + "<｜Assistant｜><think>\n"
    assert chat_text(r1_tokenizer, PROBLEM) == expected
    ids = prompt_ids(r1_tokenizer, PROBLEM)
    assert _decode(r1_tokenizer, ids) == expected
    assert ids.count(r1_tokenizer.bos_token_id) == 1 and ids[0] == r1_tokenizer.bos_token_id
    # The tokenizer also adds a BOS: the template already wrote one, so there is still one.
    doubled = _with_bos_added(r1_tokenizer)
    naive = doubled(chat_text(doubled, PROBLEM))["input_ids"]
    assert naive[:2] == [doubled.bos_token_id] * 2  # what we guard against
    ids2 = prompt_ids(doubled, PROBLEM)
    assert ids2 == ids


def test_prompt_ids_adds_the_tokenizers_bos_when_the_template_has_none(tokenizer):
    tok = _with_bos_added(tokenizer, bos_token="<|endoftext|>")
    ids = prompt_ids(tok, PROBLEM)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert _decode(tok, ids) == "<|endoftext|>" + chat_text(tok, PROBLEM)


def test_prompt_ids_errors(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        prompt_ids(tok, PROBLEM)
    with pytest.raises(TypeError, match="problem must be a str"):
        prompt_ids(tokenizer, ["not", "a", "string"])


@pytest.mark.parametrize("template", [R1_TERMINATION, R1_SCORING_TERMINATION, BOXED_TERMINATION])
@pytest.mark.parametrize("chat", ["smollm2", "r1"])
def test_meta_prover_ids_decode_exactly(tokenizer, r1_tokenizer, template, chat):
    tok = r1_tokenizer if chat == "r1" else tokenizer
    for prefix in ["", "Okay, so I need to add 1/2 and 1/3.\n\n", TRACE]:
        ids = meta_prover_ids(tok, PROBLEM, prefix, template)
        assert _decode(tok, ids) == chat_text(tok, PROBLEM) + prefix + template.text
        assert ids[:2].count(tok.bos_token_id) == 1


@pytest.mark.parametrize("chat", ["smollm2", "r1"])
def test_meta_prover_prefix_cut_at_episode_boundaries(tokenizer, r1_tokenizer, chat):
    tok = r1_tokenizer if chat == "r1" else tokenizer
    episodes = segment(TRACE, "r1", tokenizer=tok)
    assert len(episodes) == 2  # "Wait" is paragraph 3, so it starts the second episode
    trace_ids = tok(TRACE, add_special_tokens=False)["input_ids"]
    prompt = prompt_ids(tok, PROBLEM)
    term = termination_ids(tok, R1_SCORING_TERMINATION)
    for e, cut in zip(episodes, token_cut_points(episodes)):
        prefix_text = TRACE[: e.char_end]
        ids = meta_prover_ids(tok, PROBLEM, trace_ids[:cut], R1_SCORING_TERMINATION)
        assert ids == prompt + trace_ids[:cut] + term
        assert _decode(tok, ids) == chat_text(tok, PROBLEM) + prefix_text + R1_SCORING_TERMINATION.text
        assert prefix_text.endswith("\n\n") and TRACE[e.char_end :].startswith("Wait")
    # Natural end: the whole trace closed with </think>, then the answer lead.
    ids = prompt + trace_ids + natural_close_ids(tok, R1_SCORING_TERMINATION)
    assert _decode(tok, ids).endswith("So the answer is 5/6.\n</think>\n\nThe final answer is \\boxed{")


def test_answer_ids(tokenizer):
    ids = answer_ids(tokenizer, "\\frac{5}{6}", R1_SCORING_TERMINATION)
    assert _decode(tokenizer, ids) == "\\frac{5}{6}}"
    assert _decode(tokenizer, answer_ids(tokenizer, "5/6", "boxed")) == "5/6}"
    assert answer_ids(tokenizer, "5/6") == answer_ids(tokenizer, "5/6", R1_SCORING_TERMINATION)
    with pytest.raises(ValueError, match="sampling only"):
        answer_ids(tokenizer, "5/6", R1_TERMINATION)
    with pytest.raises(ValueError, match="non-empty"):
        answer_ids(tokenizer, "", BOXED_TERMINATION)
    # The answer's tokens do not depend on the cut: the seam after "\boxed{" is a token boundary.
    term = termination_ids(tokenizer, BOXED_TERMINATION)
    full = term + ids
    assert _decode(tokenizer, full) == BOXED_TERMINATION.text + "\\frac{5}{6}}"
