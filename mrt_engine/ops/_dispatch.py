"""Backend choice for every op: CUDA tensors -> Triton, CPU tensors -> the torch reference.

``backend="triton"`` forces the Triton kernel (on CPU this needs ``TRITON_INTERPRET=1``,
which tests set); ``backend="torch"`` forces the reference.

``MRT_TRITON_CPU=1`` (with ``TRITON_INTERPRET=1``) makes CPU tensors take the CUDA path: every
auto-dispatched op, and the engine's ``auto`` decode, runs the Triton launchers under the
interpreter, so a whole CPU run goes through the code a GPU run takes. bf16 inputs enter the
kernels as fp32 there (:func:`interpreter_dtype`: the interpreter computes bf16 wrongly).
"""
from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = (None, "auto", "triton", "torch")
TRITON_CPU_ENV = "MRT_TRITON_CPU"


def triton_on_cpu() -> bool:
    """True when ``MRT_TRITON_CPU=1``: CPU tensors run the Triton launchers (under the interpreter)."""
    if os.environ.get(TRITON_CPU_ENV) != "1":
        return False
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(f"{TRITON_CPU_ENV}=1 runs the Triton launchers on CPU tensors: set TRITON_INTERPRET=1 too")
    return True


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
    return (on_cuda or triton_on_cpu()) and _triton_available()


def _upcast(t) -> bool:
    return t is not None and not t.is_cuda and t.dtype == torch.bfloat16 and triton_on_cpu()


def interpreter_dtype(*tensors):
    """The tensors as the Triton launchers take them: under ``MRT_TRITON_CPU=1`` bf16 CPU tensors
    as fp32 (the interpreter has no bf16), every other one as it is (``backend="triton"`` on bf16
    CPU tensors without the switch is refused by the launchers)."""
    return tuple(t.float() if _upcast(t) else t for t in tensors)


def interpreter_cache(k_cache, v_cache, *tables):
    """:func:`interpreter_dtype` for a paged KV cache (which may hold GiBs): fp32 copies of only the
    blocks ``tables`` name, and the tables renumbered into them -> (k, v, *tables)."""
    if not _upcast(k_cache):
        return (k_cache, v_cache, *tables)
    used = torch.unique(torch.cat([t.reshape(-1) for t in tables]).long())
    remap = torch.zeros(k_cache.shape[0], dtype=torch.long)
    remap[used] = torch.arange(used.numel())
    return (k_cache[used].float(), v_cache[used].float(), *(remap[t.long()].to(t.dtype) for t in tables))


def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def check(cond: bool, msg: str) -> None:
    """Raise ValueError(msg) when ``cond`` is false (input checks that name the field)."""
    if not cond:
        raise ValueError(msg)
