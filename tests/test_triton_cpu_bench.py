"""The CUDA code path on CPU: ``MRT_TRITON_CPU=1`` (with ``TRITON_INTERPRET=1``) sends every
auto-dispatched op and the engine's ``auto`` decode through the Triton launchers under the
interpreter, and the headline benchmark runs whole through them at ``r1-mini`` (heads of 128,
GQA 6:1, q/k/v bias: the 1.5B model's kernel constants) in fp32 and bf16."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mrt_engine.engine.runner import resolve_backend
from mrt_engine.ops import (
    branch_decode_attention,
    paged_decode_attention,
    plan_decode,
    prefix_suffix_attention,
    selective_log_prob,
)
from mrt_engine.ops._dispatch import interpreter_cache, use_triton

ROOT = Path(__file__).resolve().parent.parent


def test_switch_sends_cpu_tensors_to_triton(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.delenv("MRT_TRITON_CPU", raising=False)
    assert not use_triton(None, x) and resolve_backend("auto", torch.device("cpu")) == "sdpa"
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert use_triton(None, x) and use_triton("auto", x) and not use_triton("torch", x)
    assert resolve_backend("auto", torch.device("cpu")) == "ops"
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        use_triton(None, x)


def test_bf16_goes_in_as_fp32_with_only_the_named_blocks(monkeypatch):
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g = torch.Generator().manual_seed(0)
    kc, vc = (torch.randn(9, 4, 1, 128, generator=g).bfloat16() for _ in range(2))  # [blocks, size, Hkv, D]
    q = torch.randn(3, 6, 128, generator=g).bfloat16()
    tables, lens = [[7, 2], [7, 2, 5], [7, 2, 8]], [6, 10, 11]  # a shared prefix, then each row's own tail
    padded = torch.tensor([[7, 2, 0], [7, 2, 5], [7, 2, 8]], dtype=torch.int32)
    k, v, t = interpreter_cache(kc, vc, padded)
    assert k.dtype == torch.float32 and k.shape[0] == 5 and int(t.max()) < 5  # blocks 0, 2, 5, 7, 8 only
    assert torch.equal(k[t.long()], kc[padded.long()].float())
    plan = plan_decode(tables, lens, block_size=4)
    ours = branch_decode_attention(q, kc, vc, **plan.attention_args(), scale=128 ** -0.5)
    ref = branch_decode_attention(q.float(), kc.float(), vc.float(), **plan.attention_args(), scale=128 ** -0.5,
                                  backend="torch")
    assert ours.dtype == torch.bfloat16 and torch.allclose(ours.float(), ref, atol=2e-2)
    flat = paged_decode_attention(q, kc, vc, block_tables=padded, context_lens=torch.tensor(lens), scale=128 ** -0.5)
    assert torch.allclose(flat.float(), ref, atol=2e-2)
    h, w = torch.randn(5, 128, generator=g).bfloat16(), torch.randn(40, 128, generator=g).bfloat16()
    tgt = torch.randint(0, 40, (5,), generator=g)
    assert torch.allclose(selective_log_prob(h, w, tgt), selective_log_prob(h.float(), w.float(), tgt, backend="torch"),
                          atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_quick_bench_at_r1_mini_runs_through_the_triton_launchers(tmp_path, dtype):
    env = dict(os.environ, MRT_TRITON_CPU="1", TRITON_INTERPRET="1",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "throughput.py"), "--quick", "--device", "cpu",
                           "--model", "r1-mini", "--dtype", dtype, "--no-vllm", "--no-progress", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "throughput.csv")))
    assert {r["dtype"] for r in rows} == {dtype}
    errors = [f"{r['stage']} {r['method']}: {r['reason']}" for r in rows if r["status"] == "error"]
    assert not errors, "\n".join(errors)
    ours = {r["stage"].split(" [")[0] for r in rows if r["role"] == "ours" and r["status"] == "ok"}
    assert {"generation", "score", "sample", "logprob", "step"} <= ours


def _logprobs_of(model, prompt_ids, token_ids):
    ids = torch.tensor(prompt_ids + token_ids)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[None]).logits[0].float(), -1)
    return logp[len(prompt_ids) - 1:-1].gather(1, torch.tensor(token_ids)[:, None]).squeeze(1)


def test_engine_prefill_and_decode_through_the_kernels_match_the_cpu_path(monkeypatch):
    # Under the switch the engine prefills through ops.paged_prefill_attention (one launch per
    # layer for all chunks) and decodes through the cascade kernels; chunked prefill (a budget of
    # 8 tokens), prefix-cache hits, a cut at 0, a one-token prompt and one branch give the CPU
    # path's greedy tokens.
    from mrt_engine.engine import Generator, SamplingParams
    from mrt_engine.models import load_model

    model, tok = load_model("tiny", tiny_config=dict(initializer_range=0.5))
    prompts = [tok.encode("The quick brown fox jumps over the lazy dog, and then it runs far into the forest"),
               tok.encode("x")[:1]]
    suffix = tok.encode(" Answer:")
    greedy = SamplingParams(n=2, temperature=0.0, max_tokens=6, ignore_eos=True)
    one = SamplingParams(n=1, temperature=0.0, max_tokens=6, ignore_eos=True)

    def run(**engine):
        gen = Generator(model, tok, num_blocks=256, block_size=4, max_num_batched_tokens=8, **engine)
        outs = gen.generate(prompts, greedy)
        branched = gen.branch_many([(prompts[0], [0, 5, 9, len(prompts[0])], [suffix] * 4), (prompts[1], [1], [[]])],
                                   [greedy, one])
        tokens = [[o.token_ids for o in out] for out in outs]
        tokens += [[o.token_ids for o in cut] for trace in branched for cut in trace]
        return gen, tokens

    monkeypatch.delenv("MRT_TRITON_CPU", raising=False)
    cpu_gen, cpu_tokens = run()
    assert not cpu_gen.runner.triton_kernels
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    gen, tokens = run()
    assert gen.runner.backend == "ops" and gen.runner.triton_kernels
    assert tokens == cpu_tokens
    _, tokens = run(cascade_work_list=True)  # decode's cascade as one launch over a work list
    assert tokens == cpu_tokens


@pytest.mark.parametrize("work_list", [False, True])
def test_engine_through_the_kernels_in_bf16_at_r1_mini(monkeypatch, work_list):
    # The 1.5B model's kernel constants (heads of 128, GQA 6:1, q/k/v bias) in bf16: every
    # sampled token's log-prob is the model's own (bf16 enters the kernels as fp32 here).
    from mrt_engine.engine import Generator, SamplingParams
    from mrt_engine.models import load_model

    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    model, tok = load_model("r1-mini", dtype="bfloat16")
    with torch.no_grad():  # sharper attention and head than the random init's near-uniform ones:
        model.lm_head.weight.mul_(30)  # bf16 noise moves a log-prob by ~0.13, dropping the cached keys by ~40
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(4)
    gen = Generator(model, tok, num_blocks=64, block_size=16, max_num_batched_tokens=24, cascade_work_list=work_list)
    assert gen.runner.triton_kernels
    prompt = list(range(3, 40))
    params = SamplingParams(n=3, temperature=1.0, max_tokens=5, seed=4, logprobs=True, ignore_eos=True)
    for cut in gen.branch(prompt, [0, 17, len(prompt)], [[7, 8], [7, 8], [7]], params):
        for sample in cut:
            ref = _logprobs_of(model, sample.prompt_ids, sample.token_ids)
            torch.testing.assert_close(torch.tensor(sample.logprobs), ref, atol=0.5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_varlen_prefill_is_one_kernel_launch_under_the_switch(monkeypatch, dtype):
    # The score path's trace prefill (no cache): every sequence a suffix at cut 0 of an empty
    # prefix, one launch for all; the same as one fused SDPA call per sequence.
    from mrt_engine.engine.forward import varlen_causal_attention

    g = torch.Generator().manual_seed(1)
    lens = [1, 37, 5, 130]
    q, k, v = (torch.randn(sum(lens), h, 16, generator=g).to(dtype) for h in (6, 1, 1))
    indptr = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()])
    monkeypatch.delenv("MRT_TRITON_CPU", raising=False)
    ref = varlen_causal_attention(indptr, 0.25)(0, q.float(), k.float(), v.float())
    monkeypatch.setenv("MRT_TRITON_CPU", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    calls = []
    import mrt_engine.engine.forward as forward

    monkeypatch.setattr(forward, "prefix_suffix_attention",
                        lambda *a, **kw: calls.append(1) or prefix_suffix_attention(*a, **kw))
    out = varlen_causal_attention(indptr, 0.25)(0, q, k, v)
    assert calls == [1] and out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, **({} if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)))
