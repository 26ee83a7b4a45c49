"""Field checks and key migrations shared by every config dataclass.

A leaf: it imports nothing else of :mod:`mrt_engine.config`, so the dataclass modules and the
loader can all import it without a circle.
"""
from __future__ import annotations

import warnings

# Old segmenter option -> new (``segment_options`` of the estimator and the SFT config).
SEGMENT_RENAMED = {"max_steps": "max_cuts", "group_size": "merge_episodes"}


def check(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``; ``message`` names the field and what to change."""
    if not ok:
        raise ValueError(message)


def deprecated(old: str, new: str, where: str = "config") -> None:
    warnings.warn(f"{where}: key {old!r} is deprecated and will be removed in the next release; use {new!r}",
                  DeprecationWarning, stacklevel=4)


def set_dotted(d: dict, key: str, value) -> None:
    """``set_dotted(d, "algo.alpha", 0.5)`` -> ``d["algo"]["alpha"] = 0.5`` (command-line overrides)."""
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"cannot set {key!r}: {p!r} holds {nxt!r}, not a section")
        d = nxt
    d[parts[-1]] = value


def rename_keys(d: dict, renamed: dict[str, str], where: str) -> dict:
    """A copy of ``d`` with each old key of ``renamed`` moved to its new (dotted) name, with a
    ``DeprecationWarning``; setting both the old and the new name is an error."""
    d = dict(d)
    for old, new in renamed.items():
        if old not in d:
            continue
        value = d.pop(old)
        deprecated(old, new, where)
        head, _, leaf = new.rpartition(".")
        section = d.get(head, {}) if head else d
        if isinstance(section, dict) and leaf in section:
            raise ValueError(f"{where}: both {old!r} and its new name {new!r} are set; keep only {new!r}")
        set_dotted(d, new, value)
    return d


def migrate_segment_options(opts: dict, where: str) -> dict:
    """``opts`` with the segmenter's renamed options moved to their new names (in place)."""
    for old, new in SEGMENT_RENAMED.items():
        if old in opts:
            deprecated(old, new, where)
            opts[new] = opts.pop(old)
    return opts
