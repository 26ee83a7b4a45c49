"""Reading a YAML config file, with ``base:`` for a file that changes only a few keys of another.

A config file may name another with ``base: other.yaml`` (a path relative to the file itself,
not to a link to it).
The result is the base file's mapping with this file's keys laid over it: a mapping merges key by
key at every depth, any other value (a list, a number, a string) replaces the base's whole. A
base may have a base of its own; a loop is an error that names the files in it. This is how a
staged recipe (``sft_bisect_stage3.yaml`` over ``sft_bisect.yaml``) states only what its
stage changes, so the stages cannot drift apart in the keys they share.

A leaf: it imports nothing from mrt_engine.
"""
from __future__ import annotations

from pathlib import Path

BASE_KEY = "base"


def merge_over(base: dict, top: dict) -> dict:
    """A new dict: ``base`` with ``top`` laid over it (mappings merge at every depth; any other
    value of ``top`` replaces the base's). Neither input is changed."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_over(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The mapping in the YAML file ``path``, with its ``base:`` chain resolved (module doc)."""
    import yaml  # optional at import time: only YAML files need it

    path = Path(path)
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ValueError(f"{path}: its `{BASE_KEY}:` chain loops: {chain}")
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(d).__name__}")
    if BASE_KEY not in d:
        return d
    base = d.pop(BASE_KEY)
    if not isinstance(base, str) or not base.strip():
        raise ValueError(f"{path}: `{BASE_KEY}:` must name a YAML file (a path relative to this file), "
                         f"got {base!r}")
    base_path = resolved.parent / base  # beside the file itself, not beside a link to it
    if not base_path.is_file():
        raise ValueError(f"{path}: `{BASE_KEY}: {base}` names no file (looked for {base_path})")
    return merge_over(read_yaml(base_path, (*_seen, resolved)), d)
