"""Backend choice for every op: CUDA tensors -> Triton, CPU tensors -> the torch reference.

``backend="triton"`` forces the Triton kernel (on CPU this needs ``TRITON_INTERPRET=1``,
which tests set); ``backend="torch"`` forces the reference.
"""
from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = (None, "auto", "triton", "torch")


def use_triton(backend: str | None, *tensors: torch.Tensor) -> bool:
    """True when the Triton kernel should run for these tensors."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; expected one of {BACKENDS[1:]} (or None for auto)")
    if backend == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors if t is not None)
    if backend == "triton":
        if not on_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(
                "backend='triton' on CPU tensors needs the Triton interpreter: set TRITON_INTERPRET=1 "
                "before the first kernel call (tests do this in conftest), or use backend='torch'"
            )
        return True
    return on_cuda and _triton_available()


def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def check(cond: bool, msg: str) -> None:
    """Raise ValueError(msg) when ``cond`` is false (input checks that name the field)."""
    if not cond:
        raise ValueError(msg)
