"""Loading configs: YAML or dicts onto the dataclasses, renamed keys, dotted overrides.

The loader knows no class by name. A dataclass that renamed keys says so itself, with a
``RENAMED_KEYS`` class attribute (old key -> new dotted key) or, where a value changes meaning
too, a ``migrate_keys(d, where)`` classmethod; nested sections are built by the dataclasses'
own ``__post_init__``, so a config built in Python and the same keys in YAML give one result.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .checks import rename_keys, set_dotted
from .files import read_yaml


def migrate(cls, d: dict, where: str) -> dict:
    """``d`` with ``cls``'s renamed keys moved to their new names (with a DeprecationWarning)."""
    hook = getattr(cls, "migrate_keys", None)
    if hook is not None:
        return hook(d, where)
    return rename_keys(d, getattr(cls, "RENAMED_KEYS", {}), where)


def from_dict(cls, d: dict, where: str = "config"):
    """``cls(**d)`` with renamed keys migrated and unknown keys refused (the dataclass builds its
    own nested sections from dicts)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    d = migrate(cls, d, where)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    return cls(**d)


def build_sections(obj, sections: dict) -> None:
    """Turn each dict-valued field ``name`` of ``obj`` into ``sections[name]`` via :func:`from_dict`."""
    for name, cls in sections.items():
        value = getattr(obj, name)
        if isinstance(value, dict):
            setattr(obj, name, from_dict(cls, value, name))


def load_config(cls, source: str | Path | dict | None = None, overrides: dict | None = None):
    """A ``cls`` from a YAML path (or a dict, or nothing: the defaults) plus dotted overrides.

    A YAML file may start from another with ``base: other.yaml`` (:mod:`.files`)."""
    if source is None:
        d = {}
    elif isinstance(source, dict):
        d = dict(source)
    else:
        d = read_yaml(source)  # with its `base:` chain resolved
    for key, value in (overrides or {}).items():
        set_dotted(d, key, value)
    return from_dict(cls, d, str(source) if isinstance(source, (str, Path)) else "config")
