"""The README's Python examples run as written (the training one is checked up to its config:
running it is the demo, which `make demo` covers)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_examples_run(monkeypatch):
    monkeypatch.chdir(README.parent)
    code = "\n".join(b for b in _blocks() if "train(" not in b)
    assert "ProgressEstimator" in code and "Generator" in code
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    assert len(scope["result"].j) == len(scope["result"].episodes) + 1 == 3
    assert len(scope["outs"]) == 1 and len(scope["outs"][0]) == 2


def test_readme_training_config_loads(monkeypatch):
    monkeypatch.chdir(README.parent)
    (block,) = [b for b in _blocks() if "train(" in b]
    assert 'TrainConfig.from_yaml("configs/demo.yaml")' in block
    from mrt_engine.trainer import TrainConfig

    TrainConfig.from_yaml("configs/demo.yaml")


def _pages():
    root = README.parent
    return [README, *sorted((root / "docs").rglob("*.md"))]


def test_docs_link_only_inside_the_repo():
    # The repository stands alone: no page points above its root, and every page or path a page
    # names in backticks or a markdown link exists.
    root = README.parent
    missing, outside = [], []
    for page in _pages():
        text = page.read_text()
        outside += [f"{page.name}: {m}" for m in re.findall(r"\.\./[\w./-]+|/work/[\w./-]*", text)]
        for target in re.findall(r"`((?:docs|configs|mrt_engine|bench|scripts|tests)/[\w./{},-]+?)`", text):
            for path in _expand(target):
                if not (root / path).exists():
                    missing.append(f"{page.name}: {path}")
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert outside == [] and missing == []


def _expand(target: str) -> list[str]:
    """``docs/integrations/{trl,verl}.md`` -> both paths; a trailing slash or dot is dropped."""
    match = re.search(r"\{([^}]*)\}", target)
    paths = [target[:match.start()] + alt + target[match.end():] for alt in match.group(1).split(",")] if match else [target]
    return [p.rstrip("/.") for p in paths]


def test_method_page_has_the_sections_the_code_cites():
    text = (README.parent / "docs" / "method.md").read_text()
    for number in range(1, 10):
        assert re.search(rf"^## {number}\. ", text, re.M), f"docs/method.md lacks section {number}"
    assert "Where we depart from the paper" in text
