"""End to end on the tiny model: plan + shared-prefix attention + fused log-prob score every
(trace, cut, suffix) exactly like a plain HF forward over ``trace[:cut] + suffix``."""
import pytest
import torch

from mrt_engine.engine.forward import DecoderForward, varlen_causal_attention
from mrt_engine.ops import plan_scoring, prefix_suffix_attention, selective_log_prob


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_planned_scoring_matches_hf_on_each_prefix(tiny, backend):
    model, _ = tiny
    fwd = DecoderForward(model)
    g = torch.Generator().manual_seed(0)
    vocab = fwd.shape.vocab_size
    t0 = torch.randint(0, vocab, (11,), generator=g).tolist()
    traces = [t0, torch.randint(0, vocab, (6,), generator=g).tolist(), t0[:7]]  # trace 2 is a prefix of trace 0
    cuts = [[0, 5, 11], [6], [3, 7]]
    suffixes = [[torch.randint(0, vocab, (n,), generator=g).tolist() for n in ns] for ns in ([3, 2, 4], [1], [2, 3])]
    plan = plan_scoring([len(t) for t in traces], cuts, [[len(s) for s in ss] for ss in suffixes], trace_tokens=traces)
    assert plan.unique_traces.tolist() == [0, 1]  # the prefix trace is served from trace 0's rows

    # Prefill the unique traces once, keeping each layer's K/V.
    cache = {}
    prefill_ids = torch.tensor([x for u in plan.unique_traces.tolist() for x in traces[u]])
    positions = torch.cat([torch.arange(len(traces[u])) for u in plan.unique_traces.tolist()])
    causal = varlen_causal_attention(plan.trace_indptr, fwd.shape.scale)

    def prefill(layer, q, k, v):
        cache[layer] = (k, v)
        return causal(layer, q, k, v)

    # Score every suffix against its cut through the shared prefix rows.
    def score(layer, q, k, v):
        kp, vp = cache[layer]
        return prefix_suffix_attention(q, k, v, kp, vp, **plan.attention_args(), scale=fwd.shape.scale, backend=backend)

    flat = [s for ss in suffixes for s in ss]  # plan order: trace by trace, cut by cut
    with torch.no_grad():
        fwd.hidden_states(prefill_ids, positions, prefill)
        hidden = fwd.hidden_states(torch.tensor([x for s in flat for x in s]), plan.suffix_positions, score)
        # Row r predicts suffix token r+1 within the same suffix.
        rows = [r for a, b in zip(plan.suffix_indptr.tolist(), plan.suffix_indptr.tolist()[1:]) for r in range(a, b - 1)]
        targets = torch.tensor([x for s in flat for x in s[1:]])
        logp = selective_log_prob(hidden[rows], fwd.lm_head.weight, targets, backend=backend)

        expected = []
        for t, ks in enumerate(cuts):
            for k, cut in enumerate(ks):
                ids = torch.tensor(traces[t][:cut] + suffixes[t][k])
                lp = torch.log_softmax(model(ids[None]).logits[0].double(), -1)
                expected += [lp[cut + j, ids[cut + j + 1]].item() for j in range(len(suffixes[t][k]) - 1)]
    torch.testing.assert_close(logp.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-4)


def test_score_path_prefills_repeated_traces_once(tiny, monkeypatch):
    """score_fast plans with ops.plan_scoring: a trace repeated in a batch is prefilled once
    and scored from the same rows, with the log-probs of the plain re-encoding."""
    from mrt_engine.progress import ProgressEstimator
    from mrt_engine.progress import score

    model, tok = tiny
    prefilled = []
    real = score.prefill
    monkeypatch.setattr(score, "prefill", lambda fwd, seqs, max_tokens: prefilled.append(len(seqs)) or
                        real(fwd, seqs, max_tokens))
    trace = "Two plus three is five.\n\nSo \\boxed{5}."
    args = (["What is 2 + 3?"] * 3, [trace, trace, "Five."], ["5"] * 3)
    fast = ProgressEstimator(model, tok, mode="score", method="fast").estimate(*args)
    naive = ProgressEstimator(model, tok, mode="score", method="naive").estimate(*args)
    assert prefilled == [2]  # one batch: the repeated trace once, the other trace once
    # Same rows, but the two suffixes sit at different batch positions, and a blocked matmul
    # may round them differently (CI saw a 1e-6 gap): equal to float32 rounding, not bitwise.
    assert fast[0].log_j == pytest.approx(fast[1].log_j, abs=1e-5, rel=1e-6)
    for a, b in zip(fast, naive):
        assert a.log_j == pytest.approx(b.log_j, abs=1e-4, rel=1e-4)
