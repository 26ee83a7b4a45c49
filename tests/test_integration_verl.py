"""verl: run tests/verl_venv_checks.py inside the verl virtualenv and require it to pass.

verl 0.9.1 pins transformers<5.11, so it lives in its own venv, built by
scripts/setup_verl_venv.sh (``make verl-venv``). The venv is ``$VERL_VENV``, default
``<repo>/.venv-verl``. When ``VERL_VENV`` is set (as ``make test`` does) a missing venv is a
failure; when it is unset and the default venv is absent the check is skipped with the
command that builds it.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = "tests/verl_venv_checks.py"


def _venv_python() -> Path | None:
    venv = os.environ.get("VERL_VENV")
    path = Path(venv) if venv else ROOT / ".venv-verl"
    python = path / "bin" / "python"
    if python.exists():
        return python
    if venv:
        pytest.fail(f"VERL_VENV={venv} has no bin/python; build it with: scripts/setup_verl_venv.sh {venv}")
    pytest.skip(f"no verl virtualenv at {path}; build it with scripts/setup_verl_venv.sh (or set VERL_VENV)")
    return None


@pytest.mark.slow  # ~1 min: starts verl and loads the tiny model twice in the venv
def test_verl_checks_pass_inside_the_verl_venv():
    python = _venv_python()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["VERL_USE_EXTERNAL_MODULES"] = "mrt_engine.integrations.verl"  # how users register our pieces
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", CHECKS],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"verl checks failed in {python}:\n{tail}"
    assert " passed" in proc.stdout and " skipped" not in proc.stdout and "failed" not in proc.stdout, tail


def test_verl_module_without_verl_says_how_to_install():
    """In the main environment (no verl) the import fails with the set-up hint."""
    if sys.modules.get("verl") is not None or _has("verl"):
        pytest.skip("verl is installed in this environment")
    with pytest.raises(ModuleNotFoundError, match="setup_verl_venv.sh"):
        import mrt_engine.integrations.verl  # noqa: F401


def _has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
