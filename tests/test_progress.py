"""Score mode: the fast path (prefill once, branch at cuts) matches the naive re-encoding path."""
import copy
import json
import math

import pytest

from mrt_engine.models import load_model
from mrt_engine.progress import ProgressEstimator, ProgressResult

PROBLEM = "What is 2 + 3?"
MANY = ("Let me compute 2 + 3.\n\nTwo plus three is five.\n\nSo it is 5.\n\n"
        "Wait, let me check that again.\n\n2 + 3: count 3, 4, 5.\n\nYes, 5.\n\n"
        "Alternatively, 3 + 2 = 5.\n\nSame.\n\nGood.\n\nSo the answer is \\boxed{5}.")
ONE = "Two plus three is five, so \\boxed{5}."
TRACES = [MANY, ONE, ""]


def assert_same(fast, naive, rel=1e-4, atol=1e-4):
    for a, b in zip(fast, naive):
        assert a.cut_tokens == b.cut_tokens and a.episodes == b.episodes
        for x, y in zip(a.log_j, b.log_j):
            assert abs(x - y) <= rel * abs(y) + 1e-6, (a.log_j, b.log_j)
        assert a.j == pytest.approx(b.j, abs=atol, rel=rel)
        assert a.progress == pytest.approx(b.progress, abs=atol, rel=rel)


def _estimate(model, tok, method, traces=TRACES, answers=None, **kw):
    answers = answers or ["5"] * len(traces)
    est = ProgressEstimator(model, tok, mode="score", method=method, **kw)
    return est.estimate([PROBLEM] * len(traces), traces, answers)


def test_cuts_and_shapes(tiny):
    model, tok = tiny
    many, one, empty = _estimate(model, tok, "fast")
    assert many.num_episodes == 3 and len(many.j) == 4 and len(many.progress) == 3
    assert "".join(many.episodes) == MANY
    assert many.cut_chars[0] == 0 and many.cut_chars[-1] == len(MANY)
    assert many.cut_tokens == sorted(many.cut_tokens) and many.natural_end_included
    assert one.num_episodes == 1 and len(one.j) == 2
    # An empty trace: one cut (the empty prefix), no progress, no natural end.
    assert empty.num_episodes == 0 and len(empty.j) == 1 and empty.progress == [] and not empty.natural_end_included
    assert many.outcome == 1.0 and empty.outcome == 0.0
    for r in (many, one, empty):
        assert all(0 < j < 1 for j in r.j) and r.j_stderr == [0.0] * len(r.j)
        assert r.progress == pytest.approx([b - a for a, b in zip(r.j, r.j[1:])])
    # Every cut after the first sees more of the trace.
    assert many.tokens_at_cut[1] < many.tokens_at_cut[2]


def test_fast_matches_naive_tiny(tiny):
    model, tok = tiny
    assert_same(_estimate(model, tok, "fast"), _estimate(model, tok, "naive"))


def test_fast_matches_naive_when_split_small(tiny):
    # A tiny budget forces chunked prefill of each trace and one suffix per pass.
    model, tok = tiny
    naive = _estimate(model, tok, "naive", traces=[MANY, ONE])
    assert_same(_estimate(model, tok, "fast", traces=[MANY, ONE], max_batch_tokens=32), naive)
    assert_same(_estimate(model, tok, "fast", traces=[MANY, ONE], max_batch_tokens=120), naive)


def test_answer_forms_sum(tiny):
    model, tok = tiny
    both = _estimate(model, tok, "fast", traces=[ONE], answers=[["5", "five"]])[0]
    a = _estimate(model, tok, "fast", traces=[ONE], answers=["5"])[0]
    b = _estimate(model, tok, "fast", traces=[ONE], answers=["five"])[0]
    assert both.j == pytest.approx([x + y for x, y in zip(a.j, b.j)], rel=1e-5)
    assert_same([both], _estimate(model, tok, "naive", traces=[ONE], answers=[["5", "five"]]))


def test_shares_parameters_and_sees_updates(tiny):
    model, tok = tiny
    model = copy.deepcopy(model)
    est = ProgressEstimator(model, tok)
    before = est.estimate([PROBLEM], [ONE], ["5"])[0].log_j
    import torch

    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)  # an "optimizer step" on the model itself
    after = est.estimate([PROBLEM], [ONE], ["5"])[0].log_j
    assert after != before
    assert_same(est.estimate([PROBLEM], [ONE], ["5"]), _estimate(model, tok, "naive", traces=[ONE]))


def test_result_json_round_trip(tiny):
    model, tok = tiny
    res = _estimate(model, tok, "fast")
    for r in res:
        line = json.dumps(r.to_json())
        back = ProgressResult.from_json(json.loads(line))
        assert back.j == r.j and back.cut_tokens == r.cut_tokens and back.progress == r.progress
    with pytest.raises(ValueError, match="lacks fields"):
        ProgressResult.from_json({"j": [0.1]})


# -- bad input ----------------------------------------------------------------------------------
def test_empty_answer_is_an_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="item 1: the reference answer is empty"):
        _estimate(model, tok, "fast", traces=[ONE, ONE], answers=["5", " "])
    with pytest.raises(ValueError, match="no reference answer"):
        _estimate(model, tok, "fast", traces=[ONE], answers=[[]])


def test_mismatched_lengths(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="one entry per item"):
        ProgressEstimator(model, tok).estimate([PROBLEM], [ONE, ONE], ["5"])


def test_trace_longer_than_context():
    model, tok = load_model("tiny", tiny_config={"max_position_embeddings": 96})
    with pytest.raises(ValueError, match="item 0: .* positions but the model has 96"):
        _estimate(model, tok, "fast", traces=[MANY * 3])


def test_reference_that_does_not_round_trip(tiny):
    from tokenizers import normalizers

    model, tok = tiny
    tok = copy.deepcopy(tok)
    tok.backend_tokenizer.normalizer = normalizers.NFKC()  # folds the ligature "\ufb01" into "fi"
    with pytest.raises(ValueError, match="does not round-trip"):
        _estimate(model, tok, "fast", traces=[ONE], answers=["\ufb01ve"])


def test_bad_config():
    with pytest.raises(ValueError, match="mode="):
        ProgressEstimator(None, object(), mode="guess", generator=object())
    with pytest.raises(ValueError, match="method="):
        ProgressEstimator(None, object(), method="magic", generator=object())


def test_sampling_template_rejected_in_score_mode(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="sampling only"):
        ProgressEstimator(model, tok, mode="score", template="r1")


def test_bf16_fast_path_stays_near_fp32(tiny):
    """bf16 on CPU (the benchmark's --dtype bfloat16 rows): the fast path agrees with the
    naive bf16 path and stays near the fp32 numbers. On the random tiny model log J moves by
    ~2e-3 (SmolLM2-135M on the benchmark trace: 0.13, i.e. J within ~13%, docs/benchmarks.md)."""
    import torch

    model, tok = tiny
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    fast = _estimate(bf16, tok, "fast")
    fp32 = _estimate(model, tok, "fast")
    for a, b in zip(fast, _estimate(bf16, tok, "naive")):
        assert a.log_j == pytest.approx(b.log_j, abs=2e-3)
    for a, b in zip(fast, fp32):
        assert a.log_j == pytest.approx(b.log_j, abs=1e-2)
        assert a.log_j != b.log_j  # the bf16 weights really ran


@pytest.mark.slow
def test_fast_matches_naive_smollm2(smollm2):
    model, tok = smollm2
    fast = _estimate(model, tok, "fast", template="boxed", max_batch_tokens=512)
    naive = _estimate(model, tok, "naive", template="boxed")
    assert_same(fast, naive)
    # A real model puts real mass on the right answer once the trace has said it.
    assert fast[0].j[-1] > 1e-3 and not any(math.isnan(x) for r in fast for x in r.j)


def test_token_id_traces_and_prompts(tiny):
    # The trainer passes the engine's token ids: they are kept exactly and give the same J.
    model, tok = tiny
    from mrt_engine.prompts import prompt_ids

    ids = tok(MANY, add_special_tokens=False).input_ids
    est = ProgressEstimator(model, tok, template="boxed")
    by_text = est.estimate([PROBLEM], [MANY], ["5"])[0]
    by_ids = est.estimate([prompt_ids(tok, PROBLEM)], [ids], ["5"])[0]
    assert by_ids.cut_tokens == by_text.cut_tokens and by_ids.episodes == by_text.episodes
    assert by_ids.log_j == pytest.approx(by_text.log_j, rel=1e-6)
    with pytest.raises(TypeError, match="trace must be a str or a list of token ids"):
        est.estimate([PROBLEM], [3.5], ["5"])


def test_think_close_splits_thinking_from_answer(tiny):
    model, tok = tiny
    trace = MANY.replace("So the answer is \\boxed{5}.", "Done.") + "</think>\n\nThe answer is \\boxed{5}."
    res = ProgressEstimator(model, tok, template="boxed").estimate([PROBLEM], [trace], ["5"])[0]
    assert "</think>" not in "".join(res.episodes) and "".join(res.episodes) == trace.split("</think>")[0]
    assert res.outcome == 1.0  # graded on the whole trace, answer included
    ids = tok(trace, add_special_tokens=False).input_ids
    by_ids = ProgressEstimator(model, tok, template="boxed").estimate([PROBLEM], [ids], ["5"])[0]
    assert by_ids.episodes == res.episodes and by_ids.outcome == 1.0


@pytest.mark.cuda
def test_fast_matches_naive_on_cuda(tiny):
    # On CUDA the fast path runs the Triton scoring-attention and log-prob kernels.
    model, tok = tiny
    model = copy.deepcopy(model).to("cuda")
    assert_same(_estimate(model, tok, "fast"), _estimate(model, tok, "naive"))
