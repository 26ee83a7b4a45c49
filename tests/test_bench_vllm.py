"""The vLLM baseline's plumbing, without vLLM: why it is missing, and the worker protocol
against a stand-in ``vllm`` package (issue 14: "not installed" must not read "head_dim")."""
import csv
import stat
import sys

import pytest

from bench.baselines import vllm_client
from bench.baselines.vllm_client import VLLMWorker, find_vllm_python, vllm_python_or_reason

FAKE_VLLM = '''
class SamplingParams:
    def __init__(self, n=1, max_tokens=16, seed=None, **kw):
        self.n, self.max_tokens = n, max_tokens

class _Out:
    def __init__(self, ids):
        self.token_ids, self.text = ids, " ".join(map(str, ids))

class _Req:
    def __init__(self, outs):
        self.outputs = outs

class LLM:
    def __init__(self, **kw):
        self.kw, self.resets = kw, 0
    def generate(self, prompts, params, use_tqdm=False):
        return [_Req([_Out(list(range(p.max_tokens))) for _ in range(p.n)]) for p in params]
    def reset_prefix_cache(self):
        self.resets += 1
'''


@pytest.fixture
def no_vllm(monkeypatch, tmp_path):
    """No vLLM anywhere, whatever this machine has: no $MRT_VLLM_PYTHON, no .venv-vllm, and
    ``vllm`` hidden from this python's import path (a ``None`` in ``sys.modules``: ``import
    vllm`` raises ModuleNotFoundError and ``importlib.util.find_spec`` answers None)."""
    monkeypatch.delenv("MRT_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(vllm_client, "VLLM_VENV", tmp_path / "no-venv")
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "vllm", None)


def test_no_vllm_hides_it_from_this_python(no_vllm):
    import importlib.util

    assert importlib.util.find_spec("vllm") is None
    with pytest.raises(ModuleNotFoundError):
        import vllm  # noqa: F401


@pytest.fixture
def fake_vllm_python(tmp_path):
    """A 'python' whose environment has the stand-in vllm package (PYTHONPATH set inside,
    since the worker launcher drops the caller's PYTHONPATH)."""
    pkg = tmp_path / "site" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_VLLM)
    py = tmp_path / "python"
    py.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path / 'site'} exec {sys.executable} \"$@\"\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return str(py)


def reason(**kw):
    args = dict(model_name="tiny", head_dim=16, device_type="cpu", skip=False, random_init=False, vllm_python=None)
    return vllm_python_or_reason(**{**args, **kw})


def test_not_installed_says_so_and_how_to_get_it_not_head_dim(no_vllm):
    py, why = reason()
    assert py is None
    assert "not installed" in why and "make vllm-venv" in why and "--vllm-python" in why
    assert "head_dim" not in why


def test_a_missing_explicit_python_is_named(no_vllm, tmp_path):
    py, why = find_vllm_python(str(tmp_path / "nope" / "python"))
    assert py is None and "does not exist" in why and str(tmp_path / "nope") in why


def test_head_dim_is_the_reason_only_when_vllm_is_there(no_vllm, fake_vllm_python):
    py, why = reason(vllm_python=fake_vllm_python)
    assert py is None and "head_dim=16" in why and "not installed" not in why
    assert reason(vllm_python=fake_vllm_python, head_dim=64) == (fake_vllm_python, "")
    assert reason(vllm_python=fake_vllm_python, device_type="cuda") == (fake_vllm_python, "")


def test_skip_and_random_init_come_first(no_vllm):
    assert reason(skip=True)[1] == "skipped (--no-vllm)"
    assert "random-init" in reason(random_init=True)[1]


def test_worker_file_answers_requests_under_another_python(fake_vllm_python, tmp_path):
    worker = VLLMWorker(fake_vllm_python, log_path=tmp_path / "vllm.log")
    try:
        worker.start(str(tmp_path), dtype="float32")
        assert worker.wait_started(timeout=60) >= 0
        rep = worker.generate([[1, 2, 3], [4]], n=2, max_tokens=5, temperature=0.7, seeds=[0, 1], timeout=60)
        assert rep["num_tokens"] == 2 * 2 * 5 and len(rep["texts"]) == 2 and len(rep["texts"][0]) == 2
        worker.reset_prefix_cache()
    finally:
        worker.close()
    assert worker.proc.poll() is not None


def test_quick_cli_row_says_not_installed(no_vllm, tmp_path):
    """The real CLI (in this process, so ``no_vllm`` hides vLLM even where CI built its venv):
    the generation stage's vLLM row gives the install hint."""
    from bench import throughput

    assert throughput.main(["--quick", "--no-progress", "--device", "cpu", "--stage", "generation",
                            "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "throughput.csv"))}
    assert rows["vLLM"]["status"] == "unavailable"
    assert "not installed" in rows["vLLM"]["reason"] and "make vllm-venv" in rows["vLLM"]["reason"]
    assert "head_dim" not in rows["vLLM"]["reason"]


def test_start_vllm_exports_the_model_and_starts_the_worker(fake_vllm_python, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MRT_BENCH_CACHE", str(tmp_path / "cache"))
    model, tok = tiny
    worker, why = vllm_client.start_vllm(fake_vllm_python, name="tiny", model=model, tokenizer=tok, device_type="cpu",
                                         dtype="float32", threads=1, log_dir=tmp_path)
    try:
        assert worker is not None, why
        ckpt = tmp_path / "cache" / "tiny"
        assert (ckpt / "config.json").exists() and list(ckpt.glob("*.safetensors"))
        assert worker.generate([[1, 2]], n=1, max_tokens=3, temperature=1.0)["num_tokens"] == 3
    finally:
        if worker is not None:
            worker.close()


def test_wait_idle_waits_out_a_busy_process_group_and_returns_at_once_when_idle(tmp_path):
    """The settle step of the benchmark: the worker's group (here a stand-in that spins for
    0.8 s in a child, as vLLM's engine core does after a request) is waited out."""
    import subprocess
    import sys
    import time

    child = tmp_path / "spin.py"
    child.write_text("import time\nt = time.time()\nwhile time.time() - t < 0.8:\n    pass\n")
    leader = tmp_path / "leader.py"
    leader.write_text(f"import subprocess, sys, time\nsubprocess.run([sys.executable, {str(child)!r}])\n"
                      "time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, str(leader)], start_new_session=True)
    worker = object.__new__(VLLMWorker)
    worker.proc = proc
    try:
        time.sleep(0.3)  # the child is spinning by now
        waited = worker.wait_idle(window_s=0.2, timeout_s=5)
        assert 0.3 <= waited < 4, waited
        used = worker.cpu_seconds()
        assert used >= 0.4, f"the group's CPU time was not counted: {used}"
        assert worker.wait_idle(window_s=0.2, timeout_s=5) < 0.5  # idle now: one window
    finally:
        proc.kill()
        proc.wait()
