"""Find a side virtualenv and run a check file in it (vLLM, OpenRLHF: packages whose pins the
main environment cannot hold). Not a test module: imported by the tests that use a venv.

The venv is ``$<VAR>``, default ``<repo>/<default>``. A missing venv is a failure when the
variable is set or in CI (``CI=true``, where ``make test`` builds the venvs first); otherwise
the test is skipped with the command that builds it.
"""
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def venv_python(var: str, default: str, *, script: str, target: str) -> Path:
    venv = os.environ.get(var)
    path = Path(venv) if venv else ROOT / default
    python = path / "bin" / "python"
    if python.exists():
        return python
    if venv or os.environ.get("CI") == "true":
        pytest.fail(f"no venv at {path} ({var}); build it with: bash {script} {path}")
    pytest.skip(f"no venv at {path}; build it with `make {target}` (or set {var})")


def run_in_venv(python: Path, args: list[str], *, timeout: int) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``python -P args`` at the repo root with this checkout's mrt_engine importable.

    Returns the process and the tail of its output.

    Only ``mrt_engine`` goes on the path (a symlink in a temporary directory), not the checkout
    root, and ``-P`` keeps the working directory off it: the venv must import its own packages,
    not the checkout's files (``bench/``, ``tests/``) by accident.
    """
    with tempfile.TemporaryDirectory(prefix="mrt_path_") as path:
        os.symlink(ROOT / "mrt_engine", Path(path) / "mrt_engine")
        env = dict(os.environ)
        env["PYTHONPATH"] = path  # not the main environment's path: the venv has its own packages
        proc = subprocess.run([str(python), "-P", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return proc, (proc.stdout + proc.stderr)[-6000:]
