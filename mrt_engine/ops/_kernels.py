"""Load the Triton kernel package (``mrt_engine.kernels``) on first use.

Loading is lazy: ``TRITON_INTERPRET`` is read when ``@triton.jit`` runs, so the kernels must
be imported after it is set (the tests set it in conftest; a GPU run leaves it unset).
"""
from __future__ import annotations

import importlib
from types import ModuleType


def load() -> ModuleType:
    """Return the ``mrt_engine.kernels`` package."""
    return importlib.import_module("mrt_engine.kernels")
