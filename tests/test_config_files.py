"""YAML config files with ``base:``: merge rules, chains, loops, bad names, links, the shipped stages."""
from pathlib import Path

import pytest
import yaml

from mrt_engine.config import SFTConfig, load_config
from mrt_engine.config.files import merge_over, read_yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write(path: Path, d: dict) -> Path:
    path.write_text(yaml.safe_dump(d))
    return path


def test_merge_over_merges_mappings_at_every_depth_and_replaces_anything_else():
    base = {"optim": {"lr": 1.0, "warmup_ratio": 0.05, "betas": [0.9, 0.99]}, "steps": 10, "tags": ["a", "b"]}
    top = {"optim": {"lr": 0.5, "betas": [0.8]}, "tags": ["c"], "seed": 3}
    assert merge_over(base, top) == {"optim": {"lr": 0.5, "warmup_ratio": 0.05, "betas": [0.8]}, "steps": 10,
                                     "tags": ["c"], "seed": 3}
    assert base == {"optim": {"lr": 1.0, "warmup_ratio": 0.05, "betas": [0.9, 0.99]}, "steps": 10, "tags": ["a", "b"]}


def test_a_chain_of_bases_resolves_with_the_nearest_file_winning(tmp_path):
    write(tmp_path / "a.yaml", {"steps": 1, "optim": {"lr": 1.0, "warmup_ratio": 0.1}, "output_dir": "a"})
    write(tmp_path / "b.yaml", {"base": "a.yaml", "steps": 2, "optim": {"lr": 0.5}})
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "c.yaml", {"base": "../b.yaml", "optim": {"lr": 0.25}})
    assert read_yaml(tmp_path / "sub" / "c.yaml") == {"steps": 2, "optim": {"lr": 0.25, "warmup_ratio": 0.1},
                                                      "output_dir": "a"}


def test_a_loop_of_bases_is_an_error_naming_the_files(tmp_path):
    write(tmp_path / "a.yaml", {"base": "b.yaml", "steps": 1})
    write(tmp_path / "b.yaml", {"base": "a.yaml", "steps": 2})
    with pytest.raises(ValueError, match=r"loops: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        read_yaml(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", {"base": "self.yaml"})
    with pytest.raises(ValueError, match="loops"):
        read_yaml(tmp_path / "self.yaml")


@pytest.mark.parametrize("base, match", [("missing.yaml", r"`base: missing.yaml` names no file \(looked for .*missing\.yaml\)"),
                                         (3, r"`base:` must name a YAML file .*got 3"),
                                         ("", r"`base:` must name a YAML file"),
                                         (["a.yaml"], r"`base:` must name a YAML file")])
def test_a_bad_base_is_an_error_naming_the_file_and_the_value(tmp_path, base, match):
    path = write(tmp_path / "top.yaml", {"base": base, "steps": 1})
    with pytest.raises(ValueError, match=match) as err:
        read_yaml(path)
    assert str(path) in str(err.value)


def test_a_top_level_that_is_not_a_mapping_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", {"steps": 1})
    (tmp_path / "list.yaml").write_text("- base: a.yaml\n")
    with pytest.raises(ValueError, match="expected a mapping at the top level, got list"):
        read_yaml(tmp_path / "list.yaml")


def test_the_base_is_found_beside_the_file_not_beside_a_link_to_it(tmp_path):
    real, links = tmp_path / "presets", tmp_path / "configs"
    real.mkdir(), links.mkdir()
    write(real / "base.yaml", {"steps": 7})
    write(real / "top.yaml", {"base": "base.yaml", "seed": 1})
    (links / "top.yaml").symlink_to(real / "top.yaml")
    assert read_yaml(links / "top.yaml") == {"steps": 7, "seed": 1}


def test_load_config_resolves_the_base_before_checking_keys(tmp_path):
    stage1 = write(tmp_path / "s1.yaml", {"steps": 5, "optim": {"lr": 0.003}, "output_dir": "runs/s1"})
    write(tmp_path / "s2.yaml", {"base": stage1.name, "steps": 9, "output_dir": "runs/s2"})
    cfg = load_config(SFTConfig, tmp_path / "s2.yaml", {"optim.lr": 0.001})
    assert (cfg.steps, cfg.optim.lr, cfg.output_dir) == (9, 0.001, "runs/s2")
    write(tmp_path / "bad.yaml", {"base": stage1.name, "stepz": 9})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\]"):
        load_config(SFTConfig, tmp_path / "bad.yaml")


def test_the_bisect_stages_state_only_what_they_change():
    """Each later stage starts from stage 1 and writes no data section of its own, so it trains
    on the problems held-out sets exclude (WARM_START_PRESETS names stage 1)."""
    from mrt_engine.config.presets import shipped_config

    stage1 = shipped_config("sft_bisect")
    for n in (2, 3, 4):
        raw = yaml.safe_load((CONFIGS / f"sft_bisect_stage{n}.yaml").read_text())
        assert raw["base"] == "sft_bisect.yaml" and "data" not in raw and "template" not in raw
        resolved = shipped_config(f"sft_bisect_stage{n}")
        assert "base" not in resolved and resolved["data"] == stage1["data"]
        assert resolved["template"] == stage1["template"] and resolved["model"]["name"] == stage1["model"]["name"]
        assert SFTConfig.from_yaml(CONFIGS / f"sft_bisect_stage{n}.yaml").output_dir == f"runs/sft_bisect_stage{n}"
