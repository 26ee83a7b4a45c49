"""Run configs shipped inside the package, so they load from any directory.

``demo.yaml`` is the `mrt-engine demo` run and ``sft_demo.yaml`` the warm start that made the
demo weights. These files are the one source of truth: the demo command reads them, and
``configs/demo.yaml`` and ``configs/sft_demo.yaml`` at the repository root are links to them.
A bottom-layer module: it imports only the YAML reader (``mrt_engine.config.files``).
"""
from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def config_path(name: str) -> Path:
    """Path of the shipped config ``name`` (``"demo"``, ``"sft_demo"``)."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no shipped config named {name!r}; the package ships {shipped}")
    return path


def shipped_config(name: str) -> dict:
    """The shipped config ``name`` as a fresh dict, its ``base:`` chain resolved (callers may
    change it; build the dataclass with ``mrt_engine.config.from_dict``)."""
    from ..files import read_yaml

    return read_yaml(config_path(name))
