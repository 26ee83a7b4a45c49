"""Checkpoints: model weights in safetensors plus optimizer, scheduler, RNG and data-cursor
state, written so that a run killed at any moment leaves its previous checkpoint intact.

Layout of ``<output_dir>/checkpoints/``::

    step_<k>/model.safetensors   weights (tied weights stored once)
    step_<k>/trainer_state.pt    optimizer, scheduler, RNG, cursor, step, extra
    step_<k>/config.json         the model's config
    latest                       "step_<k>": the newest complete checkpoint, written last

Crash safety. A checkpoint is written into ``.tmp_step_<k>_<pid>/``, every file fsynced, then
renamed into place (one atomic ``os.replace``; the directory is fsynced), and only then is
``latest`` replaced (a temporary file, fsync, rename). A kill at any point leaves either the old
``latest`` pointing at an intact checkpoint or the new one complete; the next save removes any
``.tmp_*`` leftovers. ``latest_checkpoint`` follows ``latest`` and falls back to the highest
complete ``step_*`` folder when there is no pointer (checkpoints from before the pointer).

Safe loading. ``trainer_state.pt`` holds only tensors, numbers, strings, lists, tuples and
dicts (the numpy RNG state is stored as a tensor), so it is read with
``torch.load(weights_only=True)``: a crafted pickle (one whose ``__reduce__`` would run code) is
refused with an :class:`~mrt_engine.errors.MRTUserError`, never executed. Checkpoints from
before this layout (numpy RNG state as an ndarray) still load: numpy's array-rebuilding globals
are allowlisted, as torch documents.

Test hook: with ``MRT_CHECKPOINT_PAUSE_STEP=<k>`` in the environment, saving step ``k`` stops
half-way (weights written, trainer state not yet), creates ``checkpoints/.paused_step_<k>`` and
sleeps, so a test can SIGKILL the process in the middle of a write
(tests/test_rl_checkpoint_crash.py; the distributed save honours it on rank 0, for
tests/test_dist.py). Nothing else reads it.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from mrt_engine.errors import MRTUserError

_PREFIX = "step_"
LATEST = "latest"
_FILES = ("model.safetensors", "trainer_state.pt")  # what makes a checkpoint complete
PAUSE_ENV = "MRT_CHECKPOINT_PAUSE_STEP"


def rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # numpy's state as a tensor, so trainer_state.pt loads with weights_only=True
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy().astype(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unique_state(model) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers, each storage once (the first name of a tied pair)."""
    seen, out = set(), {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if name not in model.state_dict():
            continue  # non-persistent buffer (e.g. RoPE inv_freq)
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        out[name] = t.detach().contiguous()
    return out


def save_weights(model, path: str | Path, *, dtype: torch.dtype | None = None) -> None:
    """Model weights to one safetensors file (tied weights stored once; ``dtype`` to shrink)."""
    from safetensors.torch import save_file

    state = {k: (v.to(dtype) if dtype is not None else v).cpu() for k, v in _unique_state(model).items()}
    save_file(state, str(path))


def load_weights(model, path: str | Path) -> None:
    """Copy weights from a safetensors file into ``model`` in place (tensor identity kept, so a
    generator holding references to the parameters sees the loaded values)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path}; pass a model.safetensors file or a checkpoint folder")
    state = load_file(str(path))
    expected = _unique_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MRTUserError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]} "
                         "(wrong model for this checkpoint?)")
    with torch.no_grad():
        for name, target in expected.items():
            if target.shape != state[name].shape:
                raise MRTUserError(f"{path}: {name}: checkpoint shape {tuple(state[name].shape)} != model shape {tuple(target.shape)}")
            target.copy_(state[name])


def _plain(value, where: str):
    """``value`` as tensors, numbers, strings, lists, tuples and dicts only (what
    ``torch.load(weights_only=True)`` reads back): numpy values are converted; anything else is
    a TypeError naming where it sits, raised before a file is written."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    raise TypeError(f"checkpoint {where} is a {type(value).__name__}: a checkpoint holds only tensors, numbers, "
                    "strings, lists, tuples and dicts (so loading never unpickles code); convert it first")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pause_for_test(root: Path, step: int) -> None:
    if os.environ.get(PAUSE_ENV) == str(step):
        (root / f".paused_{_PREFIX}{step}").touch()
        time.sleep(3600)  # the test SIGKILLs us here


def _write_latest(root: Path, name: str) -> None:
    tmp = root / f".tmp_{LATEST}_{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / LATEST)
    _fsync(root)


def _remove(path: Path, root: Path) -> None:
    """Move aside (atomic) then delete, so no half-deleted step_* folder is ever listed."""
    trash = root / f".trash_{path.name}_{os.getpid()}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(output_dir: str | Path, step: int, *, model, optimizer=None, scheduler=None, cursor=None,
                    extra: dict | None = None, keep_last: int = 2) -> Path:
    """Write ``checkpoints/step_<step>`` crash-safely, then point ``latest`` at it; keep the
    newest ``keep_last`` ones (see the module docstring)."""
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(".tmp_*"), *root.glob(".trash_*")]:  # left by a killed save
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    state = {"step": int(step), "rng": rng_state(), "cursor": _plain(cursor, "cursor"),
             "extra": _plain(extra or {}, "extra"),
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": _plain(scheduler.state_dict(), "scheduler") if scheduler is not None else None}
    final = root / f"{_PREFIX}{step}"
    tmp = root / f".tmp_{_PREFIX}{step}_{os.getpid()}"
    tmp.mkdir()
    save_weights(model, tmp / "model.safetensors")
    pause_for_test(root, step)
    torch.save(state, tmp / "trainer_state.pt")
    if hasattr(model, "config") and hasattr(model.config, "to_dict"):
        (tmp / "config.json").write_text(json.dumps(model.config.to_dict(), indent=1, default=str))
    for f in tmp.iterdir():  # flush file contents before the rename makes them visible
        _fsync(f)
    _fsync(tmp)
    if final.exists():  # a step redone after a resume from an older `latest`
        _remove(final, root)
    os.replace(tmp, final)
    _fsync(root)
    _write_latest(root, final.name)
    for old in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else []:
        _remove(old, root)
    return final


def _complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _FILES)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete ``step_*`` folders, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
             and p.name[len(_PREFIX):].isdigit() and _complete(p)]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names, else the highest complete ``step_*``; None if none."""
    root = Path(output_dir) / "checkpoints"
    pointer = root / LATEST
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if named.parent == root and named.name.startswith(_PREFIX) and _complete(named):
            return named
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _old_numpy_rng_globals() -> list:
    # Checkpoints written before the numpy RNG state became a tensor hold a uint32 ndarray;
    # these globals only rebuild arrays (torch's documented allowlist for numpy), never run code.
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


_OLD_NUMPY_RNG = _old_numpy_rng_globals()


def load_trainer_state(path: str | Path) -> dict:
    """``trainer_state.pt`` of a checkpoint folder, unpickled with ``weights_only=True``."""
    file = Path(path) / "trainer_state.pt"
    if not file.is_file():
        raise MRTUserError(f"{path} is not a complete checkpoint (no trainer_state.pt); "
                           "resume from another one or start fresh")
    try:
        with torch.serialization.safe_globals(_OLD_NUMPY_RNG):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message is a page long; keep the line naming the refused global
        found = re.search(r"(?:Unsupported|unsupported) (?:global|GLOBAL|operand)[^\n]*", str(exc))
        first = found.group(0).rstrip(".") if found else type(exc).__name__
        raise MRTUserError(
            f"{file}: refused to load: it holds Python objects beyond tensors, numbers, strings, lists and dicts, "
            f"and unpickling them could run code ({first}). mrt_engine never writes such a file: do not "
            "use this checkpoint unless you wrote it yourself and trust it") from exc


def load_checkpoint(path: str | Path, *, model, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Restore a checkpoint in place; returns the trainer state (step, cursor, extra)."""
    path = Path(path)
    state = load_trainer_state(path)  # first: refuse an unsafe file before touching the model
    load_weights(model, path / "model.safetensors")
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return state
