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
    from mrt_engine.train import TrainConfig

    TrainConfig.from_yaml("configs/demo.yaml")
