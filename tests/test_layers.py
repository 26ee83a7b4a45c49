"""Imports point one way: every module of mrt_engine, parsed with ast, imports only its own
layer or the ones below it, and only the top layer imports the top layer's packages.

Layers, top to bottom: integrations, commands, cli -> trainer (the run; ``train`` is its public
import) -> rl (the method) -> progress -> engine, ops -> episodes, prompts, grading, tasks,
models, config (and the other leaf modules).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Area (first name under mrt_engine) -> layer; higher layers may import lower ones, never back.
LAYERS = {
    "integrations": 5, "commands": 5, "cli": 5,
    "experiments": 5,  # comparisons that run the trainer (compare, the exact-J toy); below commands only by use
    "train": 4,  # the public import of the trainer: re-exports mrt_engine.trainer
    "trainer": 4,  # the run: loop, SFT, update, evaluation, checkpoints, dist, logging, optimizer
    "rl": 3,  # the method: algorithms, rewards, advantages, losses, rollouts, J at cuts, backends
    "progress": 2, "plots": 2, "report": 2,  # plots and the HTML report draw progress results
    "engine": 1, "ops": 1, "kernels": 1,  # ops' Triton code
    "episodes": 0, "prompts": 0, "grading": 0, "tasks": 0, "models": 0, "metrics": 0,
    "configs": 0,  # deprecated alias of config.presets, kept one release
    "config": 0,  # every config dataclass and the shipped presets; imports only prompts and threads
    "token_spans": 0,  # char spans of tokens (the segmenter and estimator read them)
    "threads": 0,  # the CPU thread policy (engine and estimator read it); imports torch only
    "errors": 0,  # MRTUserError and user_input: imported by every layer that reads user input
    "_native": 0, "_C": 0, "": 0,  # "": the package's own __init__
}
TOP_ONLY = {"integrations", "commands"}  # imported by nothing outside the top layer
TOP = {"integrations", "commands", "cli"}
# Known violations, none left: add a line only with a reason beside it;
# test_allow_list_is_current fails on a line that no longer matches anything.
ALLOWED: set = set()


def _modules():
    """(module name, file) for every module of the package."""
    base = ROOT / "mrt_engine"
    for path in sorted(base.rglob("*.py")):
        parts = ["mrt_engine", *path.relative_to(base).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(module: str, path: Path):
    """Absolute names of the mrt_engine modules that ``module`` imports (anywhere in the file)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "mrt_engine")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            if base == "mrt_engine":  # `from mrt_engine import tasks` imports the submodule
                yield from (f"mrt_engine.{alias.name}" for alias in node.names)
            elif base.split(".")[0] == "mrt_engine":
                yield base


def _area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges():
    return [(module, target) for module, path in _modules() for target in _imports(module, path)]


def test_every_area_has_a_layer():
    # A new top-level module or package must be placed in LAYERS before it can be checked.
    areas = {_area(module) for module, _ in _modules()}
    assert areas - set(LAYERS) == set()
    assert {"models", "rl", "trainer", "train", "commands", "integrations", "kernels"} <= areas


def test_imports_point_down():
    wrong = []
    for module, target in _edges():
        src, dst = _area(module), _area(target)
        up = LAYERS[dst] > LAYERS[src]
        top_only = dst in TOP_ONLY and src not in TOP
        if (up or top_only) and (module, target) not in ALLOWED:
            wrong.append(f"{module} (layer {LAYERS[src]}) imports {target} (layer {LAYERS[dst]})")
    assert wrong == [], "imports that point up:\n" + "\n".join(wrong)


def test_allow_list_is_current():
    assert ALLOWED <= set(_edges()), "a known violation is gone: delete its line from ALLOWED"


@pytest.mark.parametrize("source, expected", [
    ("from mrt_engine import tasks\n", ["mrt_engine.tasks"]),
    ("from ..train import train\n", ["mrt_engine.train"]),
    ("from . import losses\n", ["mrt_engine.rl"]),
    ("def f():\n    import mrt_engine.integrations.trl as t\n", ["mrt_engine.integrations.trl"]),
    ("import torch\nfrom typing import Any\n", []),
])
def test_import_parsing(tmp_path, source, expected):
    path = tmp_path / "update.py"
    path.write_text(source)
    assert list(_imports("mrt_engine.rl.update", path)) == expected


def test_no_checkout_name_shadows_an_installed_package():
    """Scripts run from the checkout put its root (``python -m``) or ``bench/`` (``python
    bench/x.py``) first on sys.path, so a folder or module there named like an installed
    package replaces it. It happened: transformers 5.25 imports the PyPI package ``kernels``
    while loading a model, and the old top-level ``kernels/`` and ``bench/kernels.py`` broke
    every model load from the checkout."""
    import importlib.metadata

    bench = ROOT / "bench"
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names |= {p.stem for p in bench.glob("*.py")} | {p.name for p in bench.iterdir() if p.is_dir()}
    installed = importlib.metadata.packages_distributions()
    clashes = {n: installed[n] for n in names - {"mrt_engine"} if n in installed}
    assert not clashes, f"checkout names that shadow installed packages (rename them): {clashes}"
