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
from mrt_engine.ops import branch_decode_attention, paged_decode_attention, plan_decode, selective_log_prob
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
