"""OpenRLHF, the real package: run tests/openrlhf_venv_checks.py inside the OpenRLHF virtualenv.

OpenRLHF 0.11.2 pins transformers==5.15.0 and needs flash-attn/deepspeed (CUDA builds), so it
lives in its own venv, installed without its dependencies by scripts/setup_openrlhf_venv.sh
(``make openrlhf-venv``). The venv is ``$OPENRLHF_VENV``, default ``<repo>/.venv-openrlhf``; a
missing venv fails when that is set or in CI, and is skipped otherwise (tests/venvs.py).
"""
import pytest

from venvs import run_in_venv, venv_python

CHECKS = "tests/openrlhf_venv_checks.py"


@pytest.mark.slow  # ~1 min: imports OpenRLHF and loads the tiny model twice in the venv
def test_openrlhf_checks_pass_inside_the_openrlhf_venv():
    python = venv_python("OPENRLHF_VENV", ".venv-openrlhf", script="scripts/setup_openrlhf_venv.sh",
                         target="openrlhf-venv")
    proc, tail = run_in_venv(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", CHECKS], timeout=900)
    assert proc.returncode == 0, f"OpenRLHF checks failed in {python}:\n{tail}"
    assert " passed" in proc.stdout and " skipped" not in proc.stdout and "failed" not in proc.stdout, tail
