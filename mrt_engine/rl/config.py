"""Training configuration: a few dataclasses with cross-field checks; YAML maps onto them.

A YAML file has one section per dataclass (``model``, ``data``, ``rollout``, ``algo``,
``optim``) plus the top-level fields of :class:`TrainConfig`; unknown keys are errors.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

ALGORITHMS = ("grpo", "mrt_scalar", "mrt_dense", "length_penalty", "mrt_star", "star")
RL_ALGORITHMS = ("grpo", "mrt_scalar", "mrt_dense", "length_penalty")
PRECISIONS = ("auto", "no", "bf16", "fp16")
PROGRESS_ESTIMATORS = ("branch", "score")


@dataclass
class ModelConfig:
    name: str = "tiny"                 # load_model name or path, or "demo" (the shipped char-level model)
    dtype: str = "float32"             # parameter dtype (keep fp32 for training; use precision= for autocast)
    device: str = "auto"               # "auto": cuda if available, else cpu
    tiny_config: dict | None = None    # overrides for load_model("tiny")
    init_checkpoint: str | None = None  # a model.safetensors (or a checkpoint dir) to start from
    gradient_checkpointing: bool = False

    def __post_init__(self):
        if self.tiny_config and self.name != "tiny":
            raise ValueError(f"model.tiny_config only applies to model.name='tiny' (got name={self.name!r}); "
                             "remove tiny_config or set name: tiny")


@dataclass
class DataConfig:
    task: str = "chain"                # a mrt_engine.tasks.TASKS name (ignored when path is set)
    difficulty: str = "easy"           # synthetic task difficulty: easy | medium | hard
    path: str | None = None            # jsonl/parquet/HF dir of problems (mrt_engine.tasks.load_problems)
    problem_field: str = "problem"
    answer_field: str = "answer"
    num_train: int = 256               # synthetic problems generated for training
    num_eval: int = 32                 # held-out problems (a different seed)
    seed: int = 0
    system_prompt: str | None = None

    def __post_init__(self):
        if self.num_train < 1 or self.num_eval < 0:
            raise ValueError(f"data.num_train must be >= 1 and data.num_eval >= 0 (got {self.num_train}, {self.num_eval})")


@dataclass
class RolloutConfig:
    group_size: int = 4                # G completions per prompt (grpo, length_penalty, mrt_dense)
    max_tokens: int = 128              # completion budget
    temperature: float = 0.9           # paper: 0.9
    top_p: float = 1.0
    backend: str = "engine"            # "engine" (mrt_engine.engine.Generator) or "hf" (model.generate)
    eval_temperature: float = 0.0      # greedy held-out evaluation

    def __post_init__(self):
        if self.group_size < 1 or self.max_tokens < 1:
            raise ValueError(f"rollout.group_size and rollout.max_tokens must be >= 1 "
                             f"(got {self.group_size}, {self.max_tokens})")
        if self.backend not in ("engine", "hf"):
            raise ValueError(f"rollout.backend={self.backend!r}; use 'engine' or 'hf'")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("rollout.temperature must be >= 0 and rollout.top_p in (0, 1]")


@dataclass
class AlgoConfig:
    name: str = "grpo"                 # one of ALGORITHMS
    alpha: float = 1.0                 # weight of the progress bonus (mrt.md: 1.0)
    advantage_scale: str = "std"       # "std" (GRPO) or "none" (Dr. GRPO)
    aggregation: str = "grpo"          # "grpo" | "dr_grpo" | "dapo"
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.0               # KL to the initial policy (k3); 0 = no reference model kept
    num_updates: int = 1               # optimizer passes over each rollout batch (>1 uses the clip)
    # length_penalty
    length_coef: float = 0.5
    # MRT (both forms)
    scheme: str = "r1"                 # episode segmenter
    template: object = "boxed"         # termination template: a name in mrt_engine.prompts.TEMPLATES or
                                       # a dict of TerminationTemplate fields (text, answer_prefix, ...)
    segment_options: dict = field(default_factory=dict)
    # mrt_scalar: one prefix per prompt, num_continuations continuations of which num_terminate terminate
    num_continuations: int = 4         # paper m = 4
    num_terminate: int = 2
    answer_max_tokens: int = 32        # budget of a forced-termination answer
    # mrt_dense: forced-termination branches at up to max_cuts episode boundaries
    max_cuts: int = 6                  # paper: up to 6 boundaries
    num_branches: int = 4              # paper: 4 branches each
    # how mrt_dense / mrt_star estimate J at the cuts: "branch" samples num_branches forced
    # answers per cut (rl/branching.py); "score" takes the exact probability of the reference
    # answer from mrt_engine.progress.ProgressEstimator(mode="score", method="fast") on the policy
    progress_estimator: str = "branch"
    # star / mrt_star
    star_num_samples: int = 4          # traces sampled per prompt each round
    star_epochs: int = 1               # SFT epochs over the kept traces per round
    star_keep_fraction: float = 0.5    # mrt_star: share of correct traces kept, by progress

    def __post_init__(self):
        checks = [
            (self.name in ALGORITHMS, f"algo.name={self.name!r}; use one of {ALGORITHMS}"),
            (self.advantage_scale in ("std", "none"), f"algo.advantage_scale={self.advantage_scale!r}; use 'std' or 'none'"),
            (self.aggregation in ("grpo", "dr_grpo", "dapo"), f"algo.aggregation={self.aggregation!r}; use grpo, dr_grpo or dapo"),
            (0 <= self.clip_low < 1 and self.clip_high >= 0, "algo.clip_low must be in [0, 1) and clip_high >= 0"),
            (self.num_updates >= 1, "algo.num_updates must be >= 1"),
            (1 <= self.num_terminate < self.num_continuations or self.name != "mrt_scalar",
             f"mrt_scalar needs 1 <= algo.num_terminate < algo.num_continuations (got {self.num_terminate}, "
             f"{self.num_continuations}): some continuations must terminate (the baseline) and some reason on"),
            (self.max_cuts >= 1 and self.num_branches >= 1, "algo.max_cuts and algo.num_branches must be >= 1"),
            (0 < self.star_keep_fraction <= 1, "algo.star_keep_fraction must be in (0, 1]"),
            (self.kl_coef >= 0, "algo.kl_coef must be >= 0"),
            (self.progress_estimator in PROGRESS_ESTIMATORS,
             f"algo.progress_estimator={self.progress_estimator!r}; use one of {PROGRESS_ESTIMATORS}"),
            (self.progress_estimator == "branch" or self.name in ("mrt_dense", "mrt_star"),
             f"algo.progress_estimator='score' only applies to mrt_dense and mrt_star (the algorithms that "
             f"estimate J at episode cuts), not {self.name!r}; remove it or set algo.name"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        if self.progress_estimator == "score":
            self._check_scorable_template()

    def _check_scorable_template(self):
        """Score mode teacher-forces the reference answer right after the termination text, so
        the template must end where the answer begins and say how the answer closes."""
        from mrt_engine.prompts import TerminationTemplate, get_template

        try:
            tpl = TerminationTemplate(**self.template) if isinstance(self.template, dict) else self.template
            get_template(tpl, scoring=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"algo.progress_estimator='score' needs a scoring template (one ending where the "
                             f"answer begins, with an answer_suffix such as '}}'): {exc}. Use template: boxed, "
                             "add answer_suffix to the template dict, or use algo.progress_estimator: branch") from exc


@dataclass
class OptimConfig:
    lr: float = 1e-6                   # paper: 1e-6
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    warmup_ratio: float = 0.1          # of total steps, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    micro_batch_size: int = 8          # sequences per forward/backward; the rest is accumulated

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.lr <= 0 or not 0 <= self.warmup_ratio < 1 or self.micro_batch_size < 1:
            raise ValueError("optim.lr must be > 0, optim.warmup_ratio in [0, 1), optim.micro_batch_size >= 1")


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig, "algo": AlgoConfig,
             "optim": OptimConfig}


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 10                    # optimizer steps (RL) or STaR rounds (star, mrt_star)
    prompts_per_step: int = 4          # prompts per step over all ranks
    seed: int = 0
    output_dir: str = "runs/default"
    precision: str = "auto"            # autocast: "auto" (bf16 on CUDA with bf16 support, else none)
    log_every: int = 1
    eval_every: int = 0                # 0: only before and after training
    save_every: int = 0                # 0: only at the end
    resume: bool = False               # continue from the latest checkpoint in output_dir
    tensorboard: bool = True
    progress_bar: bool = True
    num_threads: int | None = None     # torch CPU threads (1 is fastest for tiny models on a busy machine)

    def __post_init__(self):
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _build(cls, value, name))
        if self.steps < 1 or self.prompts_per_step < 1:
            raise ValueError(f"steps and prompts_per_step must be >= 1 (got {self.steps}, {self.prompts_per_step})")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; use one of {PRECISIONS}")
        if self.algo.aggregation == "dr_grpo" and self.algo.advantage_scale == "std":
            raise ValueError("aggregation='dr_grpo' goes with advantage_scale='none' (Dr. GRPO drops the std "
                             "division); set algo.advantage_scale: none or pick another aggregation")
        if self.algo.name in ("grpo", "length_penalty", "mrt_dense") and self.rollout.group_size < 2:
            raise ValueError(f"algo {self.algo.name!r} normalises within groups: set rollout.group_size >= 2")
        if self.algo.name == "mrt_scalar" and self.algo.answer_max_tokens > self.rollout.max_tokens:
            raise ValueError("algo.answer_max_tokens must not exceed rollout.max_tokens")
        if self.data.num_train < self.prompts_per_step:
            raise ValueError(f"data.num_train={self.data.num_train} < prompts_per_step={self.prompts_per_step}: "
                             "generate more problems or take fewer per step")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return _build(cls, dict(d), "config")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        import yaml

        with open(path) as f:
            d = yaml.safe_load(f) or {}
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        for key, value in (overrides or {}).items():
            _set_dotted(d, key, value)
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, d: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    return cls(**d)


def _set_dotted(d: dict, key: str, value) -> None:
    """``"algo.alpha" = 0.5`` -> ``d["algo"]["alpha"] = 0.5`` (command-line overrides)."""
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value
