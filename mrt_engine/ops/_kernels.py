"""Load the Triton kernel package without ever running a bare ``import kernels``.

Installed wheels ship ``kernels/`` as ``mrt_engine.kernels``. From a plain checkout that
module does not exist, so the checkout's top-level ``kernels/`` directory is loaded under
the same name through importlib (a PyPI package called ``kernels`` exists; importing it by
its bare name would pick up the wrong code). Loading is lazy: ``TRITON_INTERPRET`` is read
when ``@triton.jit`` runs, so the kernels must be imported after it is set.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

_NAME = "mrt_engine.kernels"


def load() -> ModuleType:
    """Return the ``mrt_engine.kernels`` package (installed copy or the checkout's kernels/)."""
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    try:
        return importlib.import_module(_NAME)
    except ModuleNotFoundError as exc:
        if exc.name != _NAME:
            raise
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    init = os.path.join(root, "kernels", "__init__.py")
    if not os.path.exists(init):
        raise ImportError(
            f"Triton kernels not found: neither {_NAME} is installed nor {init} exists; "
            "install mrt_engine or run from a checkout"
        )
    spec = importlib.util.spec_from_file_location(_NAME, init, submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return module
