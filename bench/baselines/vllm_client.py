"""The vLLM baseline: find a python that has vLLM, and drive ``vllm_worker.py`` under it.

vLLM pins its own torch and transformers, so it usually lives in its own virtualenv
(``make vllm-venv`` builds ``.venv-vllm``); the worker runs there as a subprocess, driven
request by request so that its runs interleave with ours.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .hf_export import checkpoint_for
from .vllm_worker import MARK

REPO = Path(__file__).resolve().parents[2]
VLLM_VENV = REPO / ".venv-vllm"  # made by `make vllm-venv` (scripts/setup_vllm_venv.sh)
WORKER = Path(__file__).resolve().with_name("vllm_worker.py")
# Run the worker with neither its folder nor the working directory on sys.path: files there
# (this folder's modules, the repo's top-level folders) must not shadow the venv's packages.
_LAUNCH = "import runpy, sys; sys.path = [p for p in sys.path if p]; runpy.run_path(sys.argv[1], run_name='__main__')"
NOT_INSTALLED = ("vLLM is not installed: run `make vllm-venv` (builds .venv-vllm, found automatically), "
                 "or pass --vllm-python / set MRT_VLLM_PYTHON to a python that has vllm")


def vllm_python_candidates(explicit: str | None = None) -> list[str]:
    """Where a python with vLLM may be: ``explicit``, ``$MRT_VLLM_PYTHON``, the repo's ``.venv-vllm``."""
    found = [explicit, os.environ.get("MRT_VLLM_PYTHON"), str(VLLM_VENV / "bin" / "python")]
    return [py for py in found if py]


def find_vllm_python(explicit: str | None = None) -> tuple[str | None, str]:
    """(python executable with vLLM, or None; why not). Looks at ``vllm_python_candidates``,
    then this python."""
    for py in vllm_python_candidates(explicit):
        if not os.path.exists(py):
            if py == explicit:
                return None, f"--vllm-python / $MRT_VLLM_PYTHON {py} does not exist ({NOT_INSTALLED})"
            continue
        probe = subprocess.run([py, "-c", "import importlib.util,sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
                               capture_output=True, timeout=120)
        if probe.returncode == 0:
            return py, ""
        if py == explicit:
            return None, f"{py} has no vllm package ({NOT_INSTALLED})"
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable, ""
    return None, NOT_INSTALLED


def vllm_python_or_reason(*, model_name: str, head_dim: int, device_type: str, skip: bool, random_init: bool,
                          vllm_python: str | None) -> tuple[str | None, str]:
    """(python to run the worker with, "") or (None, the real reason the baseline is missing).

    The reasons come in this order: skipped, no checkpoint, not installed, then what this
    model needs that an installed vLLM lacks (its CPU attention wants head_dim % 32 == 0).
    """
    if skip:
        return None, "skipped (--no-vllm)"
    if random_init:
        return None, f"not run for the random-init {model_name} (no checkpoint to load)"
    py, why = find_vllm_python(vllm_python)
    if py is None:
        return None, why
    if device_type == "cpu" and head_dim % 32:
        return None, f"vLLM's CPU attention does not support head_dim={head_dim} (this model's)"
    return py, ""


def start_vllm(python: str, *, name: str, model, tokenizer, device_type: str, dtype: str, threads: int | None,
               log_dir: Path):
    """(started worker, "") or (None, why it failed). Starting takes minutes: nothing is timed meanwhile."""
    worker = None
    try:
        ckpt = checkpoint_for(name, model, tokenizer)
        env = {}
        if threads is not None and device_type == "cpu":  # same CPU threads as ours
            env["VLLM_CPU_OMP_THREADS_BIND"] = "0" if threads == 1 else f"0-{threads - 1}"
        worker = VLLMWorker(python, log_path=Path(log_dir) / f"vllm-{Path(name).name}.log", env=env)
        # CPU: vLLM disables inductor there anyway; eager mode skips a multi-minute graph capture.
        extra = {"gpu_memory_utilization": 0.3} if device_type == "cuda" else {"enforce_eager": True}
        worker.start(str(ckpt), dtype=dtype, enable_prefix_caching=True,
                     max_model_len=min(8192, int(getattr(model.config, "max_position_embeddings", 8192))), extra=extra)
        worker.wait_started()
        return worker, ""
    except Exception as exc:  # noqa: BLE001 - the baseline is optional; say why it is missing
        if worker is not None:
            with contextlib.suppress(Exception):
                worker.close()
        return None, f"vLLM failed to start ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


class VLLMWorker:
    """A vLLM ``LLM`` in a subprocess, driven request by request (so its runs interleave
    with ours). Start-up (~80 s on a 2-core CPU) happens in :meth:`start`, untimed."""

    def __init__(self, python: str, *, log_path: str | Path, env: dict | None = None):
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **(env or {}))
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")   # GiB; the default takes too much of a shared box
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.pop("PYTHONPATH", None)  # our checkout must not shadow the venv's packages
        self._log = open(self.log_path, "w")
        # Own process group: vLLM forks an engine core and workers; close() ends them all.
        self.proc = subprocess.Popen([python, "-c", _LAUNCH, str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, bufsize=1,
                                     start_new_session=True)
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.init_s: float | None = None

    def _pump(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self._replies.put(json.loads(line[len(MARK):]))
            else:
                self._log.write(line)
        self._replies.put({"ok": False, "error": f"vLLM worker exited (code {self.proc.poll()}); see {self.log_path}"})

    def _send(self, obj: dict) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"vLLM worker is not running (exit code {self.proc.returncode}); see {self.log_path}")
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _answer(self, timeout: float, what: str) -> dict:
        try:
            rep = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"vLLM {what} in {timeout:.0f} s; see {self.log_path}") from None
        if not rep.get("ok"):
            raise RuntimeError(f"vLLM: {rep.get('error')}; log: {self.log_path}")
        return rep

    def start(self, model_dir: str, *, dtype: str, enable_prefix_caching: bool = True, max_model_len: int = 4096,
              seed: int = 0, extra: dict | None = None) -> None:
        """Send the start request; :meth:`wait_started` collects the answer (load our own model meanwhile)."""
        llm = dict(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, seed=seed, max_model_len=max_model_len,
                   enable_prefix_caching=enable_prefix_caching, max_num_seqs=256, **(extra or {}))
        self._send({"cmd": "init", "llm": llm})

    def wait_started(self, timeout: float = 900) -> float:
        self.init_s = self._answer(timeout, "did not start")["init_s"]
        return self.init_s

    def generate(self, prompts: list[list[int]], *, n: int, max_tokens: int, temperature: float, top_p: float = 1.0,
                 stop_token_ids: list[int] | None = None, ignore_eos: bool = False, seeds: list[int] | None = None,
                 timeout: float = 1800) -> dict:
        """{"texts": [[n texts] per prompt], "num_tokens": generated tokens, "elapsed_s": in-worker time}."""
        params = dict(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p, ignore_eos=ignore_eos,
                      stop_token_ids=list(stop_token_ids or []), skip_special_tokens=False)
        self._send({"cmd": "generate", "prompts": prompts, "params": params, "seeds": seeds})
        return self._answer(timeout, "gave no answer")

    def reset_prefix_cache(self) -> None:
        """Empty vLLM's prefix cache (between timed rounds: each round starts cold)."""
        self._send({"cmd": "reset_prefix_cache"})
        self._answer(120, "gave no answer")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, seconds) used so far by the worker's whole process group:
        the worker, vLLM's engine core and its workers, and children of theirs that ended.
        0.0 where /proc is missing."""
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total = 0
        for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    # the command may hold spaces: fields are counted after its closing ')'
                    fields = f.read().rpartition(")")[2].split()
            except OSError:  # the process ended while we looked
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp: the worker leads its own session
                # utime, stime, and those of its children already reaped (cutime, cstime)
                total += sum(int(x) for x in fields[11:15])
        return total / tick

    def wait_idle(self, *, window_s: float = 0.25, max_busy: float = 0.1, timeout_s: float = 10.0) -> float:
        """Block until the worker's process group is idle; returns the seconds waited.

        After a request vLLM's engine core keeps about one core busy for another ~1-2 s
        (measured here: 100% of a core in the first 0.5 s, 33% in the next 1.5 s, 1% after);
        a case timed inside that window shares 2 cores with it and reads ~40% slow.
        Idle means under ``max_busy`` of a core over ``window_s``; gives up after ``timeout_s``.
        """
        start = time.perf_counter()
        before = self.cpu_seconds()
        while time.perf_counter() - start < timeout_s:
            time.sleep(window_s)
            now = self.cpu_seconds()
            if now - before < max_busy * window_s:
                break
            before = now
        return time.perf_counter() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"cmd": "quit"})
                self._answer(30, "gave no answer")
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a stuck worker is killed below
                pass
        try:  # whatever vLLM left behind in the group (engine core, workers)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        self._log.close()
