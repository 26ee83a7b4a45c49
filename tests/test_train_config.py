"""Config dataclasses, YAML mapping, cross-field checks, example configs, CLI wiring."""
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from mrt_engine.config import (TRAIN_ESTIMATOR_DEFAULTS, AlgoConfig, EstimatorConfig, RolloutConfig, SFTConfig,
                               TrainConfig, from_dict, train_estimator)
from mrt_engine.rl.algorithms import check_config
from mrt_engine.train import train

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_yaml_maps_onto_dataclasses(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("algo: {name: mrt_dense, alpha: 0.5}\nrollout: {group_size: 3}\nsteps: 7\n")
    cfg = TrainConfig.from_yaml(p, {"optim.lr": 1e-4})
    assert (cfg.algo.name, cfg.algo.alpha, cfg.rollout.group_size, cfg.steps, cfg.optim.lr) == ("mrt_dense", 0.5, 3, 7, 1e-4)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("d, match", [
    ({"algo": {"nme": "grpo"}}, r"unknown key\(s\) \['nme'\]"),
    ({"lr": 1.0}, "unknown key"),
    ({"algo": {"aggregation": "dr_grpo"}}, "advantage_scale: none"),
    ({"algo": {"name": "mrt_scalar", "num_terminate": 4, "num_continuations": 4}}, "num_terminate"),
    ({"data": {"num_train": 2}, "prompts_per_step": 4}, "prompts_per_step"),
    ({"model": {"name": "demo", "tiny_config": {"hidden_size": 8}}}, "tiny_config"),
    ({"precision": "fp8"}, "precision"),
])
def test_cross_field_checks_say_what_to_change(d, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(d)


@pytest.mark.parametrize("d, match", [
    ({"algo": {"name": "ppo"}}, r"algo.name='ppo': use one of \[.*'grpo'.*'mrt_dense'"),
    ({"rollout": {"group_size": 1}}, r"rollout.group_size=1: .* need >= 2"),
    ({"algo": {"name": "mrt_dense"}, "rollout": {"group_size": 1}}, r"rollout.group_size=1: .* need >= 2"),
])
def test_registry_checks_say_what_to_change(d, match):
    # The algorithm registry is the one list of algorithms: the trainer checks a config against
    # it before building anything (train() on a bad name fails before loading a model).
    cfg = TrainConfig.from_dict(d)
    with pytest.raises(ValueError, match=match):
        check_config(cfg)
    with pytest.raises(ValueError, match=match):
        train(cfg, model=object(), tokenizer=object())


def test_a_config_built_in_python_equals_the_same_keys_in_yaml(tmp_path):
    # One set of estimator defaults, whichever way a config is built: algo.progress starts from
    # the trainer's defaults (sample mode, 4 branches, natural_end outcome) in both.
    keys = {"algo": {"name": "mrt_dense", "alpha": 0.5, "progress": {"num_branches": 3, "max_cuts": 2}},
            "rollout": {"temperature": 0.6}, "steps": 3}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(keys))
    from_yaml = TrainConfig.from_yaml(p)
    from_python = TrainConfig(algo=AlgoConfig(name="mrt_dense", alpha=0.5, progress={"num_branches": 3, "max_cuts": 2}),
                              rollout=RolloutConfig(temperature=0.6), steps=3)
    assert dataclasses.asdict(from_python) == dataclasses.asdict(from_yaml)
    est = from_python.algo.progress
    assert (est.mode, est.num_branches, est.max_cuts, est.natural_end, est.temperature) == ("sample", 3, 2, "outcome", 0.6)
    assert AlgoConfig(progress={}).progress == train_estimator()
    assert dataclasses.asdict(train_estimator()) == {**dataclasses.asdict(EstimatorConfig()), **TRAIN_ESTIMATOR_DEFAULTS}


def deprecated_keys(record) -> set[str]:
    return {re.search(r"key '(\w+)' is deprecated", str(w.message))[1] for w in record}


def test_renamed_keys_load_with_a_deprecation_warning():
    old = {"algo": {"name": "mrt_dense", "answer_max_tokens": 5, "num_branches": 3, "max_cuts": 2,
                    "progress_estimator": "score", "template": "boxed",
                    "segment_options": {"max_steps": 9, "group_size": 2}}}
    with pytest.warns(DeprecationWarning) as record:  # one warning per old key, each naming it
        cfg = TrainConfig.from_dict(old)
    assert deprecated_keys(record) == {"answer_max_tokens", "num_branches", "max_cuts", "progress_estimator",
                                       "template", "segment_options", "max_steps", "group_size"}
    est = cfg.algo.progress
    assert (est.max_answer_tokens, est.num_branches, est.max_cuts, est.mode, est.natural_end) == (5, 3, 2, "score", "close")
    assert est.segment_options == {"max_cuts": 9, "merge_episodes": 2}
    assert est.segmenter_options() == {"max_cuts": 2, "merge_episodes": 2}
    with pytest.warns(DeprecationWarning) as record:
        sft = from_dict(SFTConfig, {"lr": 3e-3, "micro_batch_size": 4})
    assert deprecated_keys(record) == {"lr", "micro_batch_size"}
    assert (sft.optim.lr, sft.optim.micro_batch_size) == (3e-3, 4)
    with pytest.warns(DeprecationWarning, match="'num_branches'"), \
            pytest.raises(ValueError, match="keep only 'progress.num_branches'"):
        TrainConfig.from_dict({"algo": {"num_branches": 3, "progress": {"num_branches": 2}}})


def test_trainer_estimator_defaults_follow_the_rollout():
    cfg = TrainConfig.from_dict({"rollout": {"temperature": 0.6, "top_p": 0.9}, "algo": {"progress": {"num_branches": 8}}})
    est = cfg.algo.progress
    assert (est.mode, est.natural_end, est.max_cuts, est.num_branches) == ("sample", "outcome", 6, 8)
    assert (est.temperature, est.top_p) == (0.6, 0.9)
    with pytest.raises(ValueError, match="algo.progress: unknown key"):
        TrainConfig.from_dict({"algo": {"progress": {"num_brnaches": 8}}})
    with pytest.raises(ValueError, match="num_branches"):
        TrainConfig.from_dict({"algo": {"progress": {"num_branches": 0}}})


def test_example_configs_parse():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {"demo.yaml", "sft_demo.yaml", "sft_digit.yaml", "r1_distill_1p5b_mrt.yaml", "compare.yaml"} <= set(names)
    for p in CONFIGS.glob("*.yaml"):
        if p.name.startswith("sft"):
            SFTConfig.from_yaml(p)
        else:
            TrainConfig.from_yaml(p)
    # every arm of `mrt-engine compare` is a valid config of the shared one
    from mrt_engine.experiments.compare import ARMS, arm_config

    base = yaml.safe_load((CONFIGS / "compare.yaml").read_text())
    algos = {TrainConfig.from_dict(arm_config(base, arm, 0, "runs/x")).algo.name for arm in ARMS}
    assert algos == {"grpo", "mrt_scalar", "mrt_dense", "mrt_dense_placebo", "length_penalty", "mrt_dense_to_go",
                     "mrt_dense_centred", "mrt_dense_placebo_within"}


def test_repo_configs_are_the_shipped_ones():
    from mrt_engine.config.presets import shipped_config

    assert yaml.safe_load((CONFIGS / "demo.yaml").read_text()) == shipped_config("demo")
    assert yaml.safe_load((CONFIGS / "sft_demo.yaml").read_text()) == shipped_config("sft_demo")


def test_cli_has_train_sft_demo():
    from mrt_engine.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--config", "x.yaml", "--set", "algo.alpha=0.5", "--resume"])
    assert args.overrides == ["algo.alpha=0.5"] and args.resume
    from mrt_engine.commands.train import parse_overrides

    assert parse_overrides(["algo.alpha=0.5", "steps=3", "algo.name=grpo"]) == {"algo.alpha": 0.5, "steps": 3,
                                                                               "algo.name": "grpo"}
    assert parser.parse_args(["demo", "--max-train-tokens", "2000"]).max_train_tokens == 2000
    assert parser.parse_args(["compare", "--quick", "--seeds", "2"]).seeds == 2
    assert parser.parse_args(["sft", "--export", "w.safetensors"]).export == "w.safetensors"


def test_lr_schedule_cosine_with_warmup():
    from mrt_engine.trainer.optim import cosine_with_warmup

    f = [cosine_with_warmup(s, total_steps=10, warmup_steps=2) for s in range(10)]
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0) and f[2] == pytest.approx(1.0)
    assert f[6] == pytest.approx(0.5 * (1 + __import__("math").cos(__import__("math").pi * 0.5)))
    assert all(a >= b for a, b in zip(f[1:], f[2:]))
