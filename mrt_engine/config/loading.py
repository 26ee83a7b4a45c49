"""Loading configs: YAML or dicts onto the dataclasses, renamed keys, dotted overrides."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# -- loading -----------------------------------------------------------------------------------
# Old key -> new key (dotted, relative to the section), per class. Loaded with a warning.
RENAMED: dict[str, dict[str, str]] = {
    "AlgoConfig": {"answer_max_tokens": "progress.max_answer_tokens", "max_cuts": "progress.max_cuts",
                 "num_branches": "progress.num_branches", "scheme": "progress.scheme",
                 "segment_options": "progress.segment_options", "template": "progress.template",
                 "progress_estimator": "progress.mode"},
    "EstimatorConfig": {"num_samples": "num_branches"},
    "SFTConfig": {k: f"optim.{k}" for k in ("lr", "weight_decay", "warmup_ratio", "grad_clip", "micro_batch_size")},
}
_SEGMENT_RENAMED = {"max_steps": "max_cuts", "group_size": "merge_episodes"}


def _deprecated(old: str, new: str, where: str = "config") -> None:
    warnings.warn(f"{where}: key {old!r} is deprecated and will be removed in the next release; use {new!r}",
                  DeprecationWarning, stacklevel=4)


def _migrate_segment_options(opts: dict, where: str) -> dict:
    for old, new in _SEGMENT_RENAMED.items():
        if old in opts:
            _deprecated(old, new, where)
            opts[new] = opts.pop(old)
    return opts


def _migrate(cls, d: dict, where: str) -> dict:
    d = dict(d)
    for old, new in RENAMED.get(cls.__name__, {}).items():
        if old not in d:
            continue
        value = d.pop(old)
        _deprecated(old, new, where)
        head, _, leaf = new.rpartition(".")
        section = d.get(head, {}) if head else d
        if isinstance(section, dict) and leaf in section:
            raise ValueError(f"{where}: both {old!r} and its new name {new!r} are set; keep only {new!r}")
        if (cls.__name__, old) == ("AlgoConfig", "progress_estimator"):
            # "branch" sampled forced answers; "score" answered after the natural close.
            if value == "score":
                set_dotted(d, "progress.natural_end", "close")
            value = {"branch": "sample"}.get(value, value)
        set_dotted(d, new, value)
    return d


def from_dict(cls, d: dict, where: str = "config"):
    """``cls(**d)`` with renamed keys migrated, nested sections built, and unknown keys refused."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    d = _migrate(cls, d, where)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    if cls.__name__ == "AlgoConfig" and isinstance(d.get("progress"), dict):
        from .estimator import EstimatorConfig
        from .train import _train_estimator

        # Start from the trainer's estimator defaults, not EstimatorConfig's standalone ones.
        base = dataclasses.asdict(_train_estimator())
        base.update(_migrate(EstimatorConfig, d["progress"], f"{where}.progress"))
        d["progress"] = from_dict(EstimatorConfig, base, f"{where}.progress")
    return cls(**d)


def _build_sections(obj, sections: dict) -> None:
    for name, cls in sections.items():
        value = getattr(obj, name)
        if isinstance(value, dict):
            setattr(obj, name, from_dict(cls, value, name))


def set_dotted(d: dict, key: str, value) -> None:
    """``set_dotted(d, "algo.alpha", 0.5)`` -> ``d["algo"]["alpha"] = 0.5`` (command-line overrides)."""
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"cannot set {key!r}: {p!r} holds {nxt!r}, not a section")
        d = nxt
    d[parts[-1]] = value


def load_config(cls, source: str | Path | dict | None = None, overrides: dict | None = None):
    """A ``cls`` from a YAML path (or a dict, or nothing: the defaults) plus dotted overrides."""
    if source is None:
        d = {}
    elif isinstance(source, dict):
        d = dict(source)
    else:
        import yaml

        with open(source) as f:
            d = yaml.safe_load(f) or {}
        if not isinstance(d, dict):
            raise ValueError(f"{source}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        set_dotted(d, key, value)
    return from_dict(cls, d, str(source) if isinstance(source, (str, Path)) else "config")
