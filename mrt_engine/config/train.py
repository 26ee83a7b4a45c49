"""The training configs: ``TrainConfig`` with its sections, and ``SFTConfig``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mrt_engine.prompts import get_template

from .checks import check, migrate_segment_options, rename_keys, set_dotted
from .estimator import EstimatorConfig
from .loading import build_sections, from_dict, load_config, migrate

PRECISIONS = ("auto", "no", "bf16", "fp16")
PARALLEL_STRATEGIES = ("none", "ddp", "fsdp2")
PACKINGS = ("tree", "padded")


# -- training ----------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    name: str = "tiny"                 # load_model name or path ("tiny", "smollm2-135m", "demo", "demo-init")
    dtype: str = "float32"             # parameter dtype (keep fp32 for training; use precision= for autocast)
    device: str = "auto"               # "auto": cuda if available, else cpu
    tiny_config: dict | None = None    # overrides for load_model("tiny")
    init_checkpoint: str | None = None  # a model.safetensors (or a checkpoint dir) to start from
    gradient_checkpointing: bool = False

    def __post_init__(self):
        check(not self.tiny_config or self.name == "tiny",
               f"model.tiny_config only applies to model.name='tiny' (got name={self.name!r}); "
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
    # held-out problems share no text with the SFT problems of a shipped warm start (model.name
    # "digit" or "demo"), as they share none with the training problems
    exclude_warm_start: bool = True

    def __post_init__(self):
        check(self.num_train >= 1, f"data.num_train={self.num_train}: need >= 1")
        check(self.num_eval >= 0, f"data.num_eval={self.num_eval}: need >= 0")


ROLLOUT_BACKENDS = ("engine", "hf", "vllm")
# rollout.vllm options and their defaults (mrt_engine.rl.backends.vllm reads them).
# enable_sleep_mode applies on CUDA only; vLLM's CPU build reads gpu_memory_utilization as the
# share of CPU memory it reserves.
VLLM_OPTIONS = {
    "gpu_memory_utilization": 0.3,   # share of the GPU (CPU build: of RAM) vLLM takes; the trainer has the rest
    "enable_sleep_mode": False,      # free vLLM's weights and KV cache between rollouts (llm.sleep)
    "sleep_level": 2,                # 2: drop the weights too (the next push rewrites them all)
    "enable_prefix_caching": True,
    "dtype": "auto",                 # "auto": the policy's parameter dtype
    "max_model_len": None,           # None: the model's max_position_embeddings
    "max_num_seqs": 256,
    "enforce_eager": True,           # skip graph capture / compilation (start-up time over speed)
    "progress_engine": True,         # progress branching on the in-process engine (vLLM cannot branch)
    "llm_kwargs": {},                # anything else, passed to vllm.LLM(...) as is
}


@dataclass
class RolloutConfig:
    group_size: int = 4                # G completions per prompt (the GRPO group)
    max_tokens: int = 128              # completion budget
    temperature: float = 0.9           # paper: 0.9
    top_p: float = 1.0
    backend: str = "engine"            # "engine" (mrt_engine.engine.Generator), "hf" (model.generate), "vllm"
    eval_temperature: float = 0.0      # greedy held-out evaluation
    vllm: dict = field(default_factory=dict)  # backend "vllm" only: keys of VLLM_OPTIONS

    def __post_init__(self):
        check(self.group_size >= 1, f"rollout.group_size={self.group_size}: need >= 1")
        check(self.max_tokens >= 1, f"rollout.max_tokens={self.max_tokens}: need >= 1")
        check(self.backend in ROLLOUT_BACKENDS, f"rollout.backend={self.backend!r}: use one of {ROLLOUT_BACKENDS}")
        check(self.temperature >= 0, f"rollout.temperature={self.temperature}: need >= 0")
        check(0 < self.top_p <= 1, f"rollout.top_p={self.top_p}: need 0 < top_p <= 1")
        check(isinstance(self.vllm, dict), f"rollout.vllm={self.vllm!r}: need a mapping of {sorted(VLLM_OPTIONS)}")
        check(not self.vllm or self.backend == "vllm",
               f"rollout.vllm only applies to rollout.backend='vllm' (got backend={self.backend!r}); "
               "remove rollout.vllm or set backend: vllm")
        unknown = sorted(set(self.vllm) - set(VLLM_OPTIONS))
        check(not unknown, f"rollout.vllm: unknown key(s) {unknown}; known keys: {sorted(VLLM_OPTIONS)}")
        if self.backend == "vllm":
            defaults = {k: dict(v) if isinstance(v, dict) else v for k, v in VLLM_OPTIONS.items()}  # no shared dict
            self.vllm = {**defaults, **self.vllm}
            util = self.vllm["gpu_memory_utilization"]
            check(isinstance(util, (int, float)) and 0 < util <= 1,
                   f"rollout.vllm.gpu_memory_utilization={util!r}: need 0 < value <= 1")
            check(self.vllm["sleep_level"] in (1, 2),
                   f"rollout.vllm.sleep_level={self.vllm['sleep_level']!r}: use 1 (offload weights) or 2 (drop them)")
            check(isinstance(self.vllm["llm_kwargs"], dict),
                   f"rollout.vllm.llm_kwargs={self.vllm['llm_kwargs']!r}: need a mapping of vllm.LLM arguments")


# The trainer's estimator: the dense variant of docs/method.md section 5 (4 forced answers at up
# to 6 boundaries); the natural end is the rollout's own graded outcome; temperature/top_p None =
# follow the rollout. ``algo.progress`` starts from these, however the config is built; the
# standalone estimator (``EstimatorConfig()``) keeps its own defaults (score mode).
TRAIN_ESTIMATOR_DEFAULTS = dict(mode="sample", template="boxed", max_cuts=6, num_branches=4, temperature=None,
                                top_p=None, natural_end="outcome", show_progress=False)


def train_estimator(**overrides) -> EstimatorConfig:
    """The trainer's :class:`EstimatorConfig`: :data:`TRAIN_ESTIMATOR_DEFAULTS` with ``overrides``
    (keys as in YAML; renamed keys are migrated with a warning)."""
    given = migrate(EstimatorConfig, overrides, "algo.progress")
    return from_dict(EstimatorConfig, {**TRAIN_ESTIMATOR_DEFAULTS, **given}, "algo.progress")


@dataclass
class AlgoConfig:
    # The name is checked against the algorithm registry itself (mrt_engine.rl.algorithms.check_config)
    # when a run starts: the registry is the one list of algorithms.
    name: str = "grpo"                 # a registered algorithm (mrt_engine.rl.algorithms.ALGORITHMS)
    alpha: float = 1.0                 # weight of the progress bonus (docs/method.md: 1.0)
    advantage_scale: str = "std"       # "std" (GRPO) or "none" (Dr. GRPO)
    aggregation: str = "grpo"          # "grpo" | "dr_grpo" | "dapo"
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.0               # KL to the initial policy (k3); 0 = no reference model kept
    num_updates: int = 1               # optimizer passes over each rollout batch (>1 uses the clip)
    length_coef: float = 0.5           # length_penalty
    # mrt_scalar: one prefix per prompt, num_continuations continuations of which num_terminate terminate
    num_continuations: int = 4         # paper m = 4
    num_terminate: int = 2
    # star / mrt_star
    star_num_samples: int = 4          # traces sampled per prompt each round
    star_epochs: int = 1               # SFT epochs over the kept traces per round
    star_keep_fraction: float = 0.5    # mrt_star: share of the eligible traces kept
    # J at episode cuts (mrt_dense, mrt_star, evaluation) and the termination template (all MRT forms)
    progress: EstimatorConfig = field(default_factory=train_estimator)

    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        "answer_max_tokens": "progress.max_answer_tokens", "max_cuts": "progress.max_cuts",
        "num_branches": "progress.num_branches", "scheme": "progress.scheme",
        "segment_options": "progress.segment_options", "template": "progress.template",
        "progress_estimator": "progress.mode"}

    @classmethod
    def migrate_keys(cls, d: dict, where: str) -> dict:
        """Renamed keys; ``progress_estimator`` also changed values: "branch" sampled forced
        answers (now ``mode: sample``), "score" answered after the natural close."""
        old = d.get("progress_estimator")
        d = rename_keys(d, cls.RENAMED_KEYS, where)
        if old is not None:
            if old == "score":
                set_dotted(d, "progress.natural_end", "close")
            d["progress"]["mode"] = {"branch": "sample"}.get(old, old)
        return d

    def __post_init__(self):
        check(isinstance(self.name, str), f"algo.name={self.name!r}: need an algorithm name (a string)")
        if isinstance(self.progress, dict):  # the trainer's defaults, not EstimatorConfig's standalone ones
            self.progress = train_estimator(**self.progress)
        check(isinstance(self.progress, EstimatorConfig),
              f"algo.progress={self.progress!r}: need a mapping of estimator keys or an EstimatorConfig")
        check(self.advantage_scale in ("std", "none"), f"algo.advantage_scale={self.advantage_scale!r}: use 'std' or 'none'")
        check(self.aggregation in ("grpo", "dr_grpo", "dapo"),
               f"algo.aggregation={self.aggregation!r}: use grpo, dr_grpo or dapo")
        check(0 <= self.clip_low < 1, f"algo.clip_low={self.clip_low}: need 0 <= clip_low < 1")
        check(self.clip_high >= 0, f"algo.clip_high={self.clip_high}: need >= 0")
        check(self.num_updates >= 1, f"algo.num_updates={self.num_updates}: need >= 1")
        check(self.kl_coef >= 0, f"algo.kl_coef={self.kl_coef}: need >= 0")
        check(0 < self.star_keep_fraction <= 1, f"algo.star_keep_fraction={self.star_keep_fraction}: need (0, 1]")
        if self.name == "mrt_scalar":
            check(1 <= self.num_terminate < self.num_continuations,
                   f"algo.num_terminate={self.num_terminate}: mrt_scalar needs 1 <= num_terminate < "
                   f"num_continuations ({self.num_continuations}): some continuations must terminate (the "
                   "baseline) and some reason on")
        if self.progress.mode == "score":
            self._check_scorable_template()

    def _check_scorable_template(self):
        """Score mode teacher-forces the reference answer right after the termination text, so
        the template must end where the answer begins and say how the answer closes."""
        try:
            get_template(self.progress.template, scoring=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"algo.progress.template: mode 'score' needs a scoring template (one ending where "
                             f"the answer begins, with an answer_suffix such as '}}'): {exc}. Use template: boxed, "
                             "add answer_suffix to the template dict, or set algo.progress.mode: sample") from exc


@dataclass
class OptimConfig:
    lr: float = 1e-6                   # paper: 1e-6
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    warmup_ratio: float = 0.1          # of total steps, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    micro_batch_size: int = 8          # sequences per forward/backward; the rest is accumulated
    # How the policy update lays out its rows (docs/packing.md): "tree" packs each micro-batch as
    # prefix trees (every shared prefix computed once, forward and backward; micro-batches by
    # token count): 1.2-2.3x faster than "padded" on every bench row, at the FLOP ratio, peak
    # memory no higher; "padded" runs every row on its own, right padded (the oracle, and the
    # way for models with attention dropout, sliding windows or logit soft-capping).
    packing: str = "tree"
    # tree packing: tokens per micro-batch; 0 = micro_batch_size x the batch's longest row (the
    # most a padded micro-batch holds)
    micro_batch_tokens: int = 0

    def __post_init__(self):
        self.betas = tuple(self.betas)
        check(self.packing in PACKINGS, f"optim.packing={self.packing!r}: use one of {PACKINGS}")
        check(self.micro_batch_tokens >= 0, f"optim.micro_batch_tokens={self.micro_batch_tokens}: need >= 0 (0 = auto)")
        check(self.lr > 0, f"optim.lr={self.lr}: need > 0")
        check(0 <= self.warmup_ratio < 1, f"optim.warmup_ratio={self.warmup_ratio}: need 0 <= warmup_ratio < 1")
        check(self.micro_batch_size >= 1, f"optim.micro_batch_size={self.micro_batch_size}: need >= 1")


@dataclass
class ParallelConfig:
    """Processes under ``torchrun`` (``mrt_engine.trainer.dist``): ``none`` (one process), ``ddp``
    (DistributedDataParallel) or ``fsdp2`` (``fully_shard`` per decoder layer, then the root)."""

    strategy: str = "none"
    timeout_s: float = 300.0           # process-group timeout: a dead rank ends the job after this

    def __post_init__(self):
        check(self.strategy in PARALLEL_STRATEGIES,
               f"parallel.strategy={self.strategy!r}: use one of {PARALLEL_STRATEGIES}")
        check(self.timeout_s > 0, f"parallel.timeout_s={self.timeout_s}: need > 0")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    steps: int = 10                    # optimizer steps (RL) or STaR rounds (star, mrt_star)
    prompts_per_step: int = 4          # prompts per step over all ranks
    # Stop once the rollouts trained on hold this many generated tokens (all ranks): equal
    # budgets across algorithms whose traces differ in length. ``steps`` stays the cap and the
    # length of the LR schedule. None = run all ``steps``.
    max_train_tokens: int | None = None
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
        build_sections(self, {"model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig,
                               "algo": AlgoConfig, "optim": OptimConfig, "parallel": ParallelConfig})
        est = self.algo.progress
        if est.temperature is None:
            est.temperature = self.rollout.temperature
        if est.top_p is None:
            est.top_p = self.rollout.top_p
        check(self.steps >= 1, f"steps={self.steps}: need >= 1")
        check(self.prompts_per_step >= 1, f"prompts_per_step={self.prompts_per_step}: need >= 1")
        check(self.max_train_tokens is None or self.max_train_tokens >= 1,
               f"max_train_tokens={self.max_train_tokens}: need None or >= 1")
        check(self.precision in PRECISIONS, f"precision={self.precision!r}: use one of {PRECISIONS}")
        check(not (self.algo.aggregation == "dr_grpo" and self.algo.advantage_scale == "std"),
               "algo.advantage_scale='std' does not go with aggregation='dr_grpo' (Dr. GRPO drops the std "
               "division); set algo.advantage_scale: none or pick another aggregation")
        if self.algo.name == "mrt_scalar":  # its terminated continuations are rollouts of that budget
            budget = est.answer_budget()
            given = "" if est.max_answer_tokens is not None else f" (None: the template's default {budget})"
            check(budget <= self.rollout.max_tokens,
                   f"algo.progress.max_answer_tokens={est.max_answer_tokens}{given} must not exceed "
                   f"rollout.max_tokens={self.rollout.max_tokens}; set it explicitly")
        check(self.data.num_train >= self.prompts_per_step,
               f"data.num_train={self.data.num_train}: fewer problems than prompts_per_step="
               f"{self.prompts_per_step}; generate more problems or take fewer per step")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict(cls, d, "config")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        return load_config(cls, path, overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SFTConfig:
    """The supervised warm start of ``mrt_engine.trainer.sft`` (defaults: the demo model's recipe)."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        k: f"optim.{k}" for k in ("lr", "weight_decay", "warmup_ratio", "grad_clip", "micro_batch_size")}

    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="demo-init"))
    data: DataConfig = field(default_factory=lambda: DataConfig(num_train=2000, num_eval=32))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, weight_decay=0.01, warmup_ratio=0.05,
                                                                  grad_clip=1.0, micro_batch_size=32))
    steps: int = 300
    batch_size: int = 32
    seed: int = 0
    output_dir: str = "runs/sft"
    template: object = "boxed"          # termination template for the meta-prover examples
    scheme: str = "r1"
    segment_options: dict = field(default_factory=dict)
    termination_fraction: float = 0.3   # share of examples that are meta-prover examples
    eval_every: int = 100
    eval_max_tokens: int = 256
    export: str | None = None           # also write compact fp16 weights here (the demo asset)
    num_threads: int | None = None
    precision: str = "auto"

    def __post_init__(self):
        build_sections(self, {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig})
        self.segment_options = migrate_segment_options(dict(self.segment_options or {}), "segment_options")
        check(self.steps >= 1, f"steps={self.steps}: need >= 1")
        check(self.batch_size >= 1, f"batch_size={self.batch_size}: need >= 1")
        check(0 <= self.termination_fraction < 1, f"termination_fraction={self.termination_fraction}: need [0, 1)")

    @classmethod
    def from_yaml(cls, path, overrides: dict | None = None) -> "SFTConfig":
        return load_config(cls, path, overrides)
