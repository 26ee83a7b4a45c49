"""Sample mode's forced-answer budget comes from the template (EstimatorConfig.max_answer_tokens=None).

The test model is a bigram chain: every layer's output is zeroed, so the logits depend on the
last token only, and each token of a scripted answer embeds to its own basis vector whose
lm_head row points at the next token. Decoding after the R1 template's ``1. **`` then
writes the script: a short explanation, ``Final answer**: \\boxed{42}``, EOS. The script is
longer than the old default budget of 32 tokens, so the budget decides whether the box is reached.
"""
import pytest
import torch

from mrt_engine.models import load_model
from mrt_engine.progress import ProgressEstimator
from mrt_engine.prompts import BOXED_ANSWER_TOKENS, OPEN_ANSWER_TOKENS, TEMPLATES, get_template

from test_progress import MANY, PROBLEM

SCRIPT = ("Add the given numbers carefully since nineteen plus twenty three equals forty two by simple "
          "addition of tens then units, which I verify once more. Final answer**: \\boxed{42}")


@pytest.fixture(scope="module")
def scripted():
    model, tok = load_model("tiny", tiny_config={"tie_word_embeddings": False, "num_hidden_layers": 1,
                                                 "hidden_size": 128, "intermediate_size": 64})
    term = tok(TEMPLATES["r1"].text, add_special_tokens=False).input_ids
    chain = [term[-1]] + tok(SCRIPT, add_special_tokens=False).input_ids
    if len(set(chain)) != len(chain):  # e.g. the byte-level fallback tokenizer (no SmolLM2 package)
        pytest.skip("this tokenizer splits the script into repeated tokens; a bigram script needs distinct ones")
    assert len(chain) <= model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb.zero_()
        head.zero_()
        for k, (cur, nxt) in enumerate(zip(chain, chain[1:] + [tok.eos_token_id])):
            emb[cur, k] = 1.0
            head[nxt, k] = 50.0
    return model, tok, len(chain) - 1  # tokens in the scripted answer (before EOS)


def _estimate(model, tok, method, **options):
    # temperature 1: the scripted logit leads by 50, so every draw follows the script
    est = ProgressEstimator(model, tok, mode="sample", method=method, num_branches=2, temperature=1.0,
                            natural_end="forced", **options)
    return est, est.estimate([PROBLEM], [MANY], ["42"])[0]


def test_template_budgets():
    assert get_template(None).max_answer_tokens == OPEN_ANSWER_TOKENS  # r1 (sample mode)
    assert get_template("boxed").max_answer_tokens == BOXED_ANSWER_TOKENS
    assert get_template(None, scoring=True).max_answer_tokens == BOXED_ANSWER_TOKENS
    assert get_template({"text": "\n\nAnswer: \\boxed{", "answer_prefix": "\\boxed{"}).max_answer_tokens == 16
    assert get_template({"text": "\n\nAnswer:", "max_answer_tokens": 7}).max_answer_tokens == 7
    with pytest.raises(ValueError, match="max_answer_tokens"):
        get_template({"text": "\n\nAnswer:", "max_answer_tokens": 0})


@pytest.mark.parametrize("method", ["naive", "fast"])
def test_default_budget_reaches_the_boxed_answer(scripted, method):
    model, tok, script_len = scripted
    assert script_len > 32  # what makes the old default too short
    est, res = _estimate(model, tok, method)
    assert est.config.max_answer_tokens == OPEN_ANSWER_TOKENS  # resolved from the r1 template
    assert res.j == [1.0] * len(res.j) and len(res.j) >= 2
    assert all(a == "42" for cut in res.answers for a in cut)
    # the old default cuts every answer before the box: graded 0
    _, old = _estimate(model, tok, method, max_answer_tokens=32)
    assert old.j == [0.0] * len(old.j)
    assert all(a is None for cut in old.answers for a in cut)


def test_explicit_budget_wins(scripted):
    model, tok, _ = scripted
    est = ProgressEstimator(model, tok, mode="sample", max_answer_tokens=5)
    assert est.config.max_answer_tokens == 5
    assert ProgressEstimator(model, tok, mode="sample", template="boxed").config.max_answer_tokens == 16
