"""Every configuration dataclass of the project, in one place, and the YAML mapping onto them.

- :class:`EstimatorConfig`: the progress estimator (``mrt_engine.progress``).
- :class:`TrainConfig` with its sections :class:`ModelConfig`, :class:`DataConfig`,
  :class:`RolloutConfig`, :class:`AlgoConfig` (which holds an ``EstimatorConfig`` as
  ``algo.progress``), :class:`OptimConfig`, :class:`ParallelConfig`.
- :class:`SFTConfig`: the supervised warm start (``mrt-engine sft``).

A YAML file has one mapping per section plus the top-level fields; unknown keys are errors
that list the known ones. :func:`load_config` reads a file (or dict) into a class, applying
``KEY=VALUE`` overrides with :func:`set_dotted`. Every check names the one field that failed.

Renamed keys (one name per idea across code, configs and CLI flags) still load for one release,
with a ``DeprecationWarning`` that names the new key: see ``RENAMED``.

This module sits at the bottom of the layer stack: it imports nothing above ``prompts``.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ALGORITHMS = ("grpo", "mrt_scalar", "mrt_dense", "length_penalty", "mrt_star", "star")
PRECISIONS = ("auto", "no", "bf16", "fp16")
ESTIMATOR_MODES = ("score", "sample")
ESTIMATOR_METHODS = ("fast", "naive")
NATURAL_ENDS = ("close", "forced", "outcome")
PARALLEL_STRATEGIES = ("none", "ddp", "fsdp2")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# -- the progress estimator ------------------------------------------------------------------
@dataclass
class EstimatorConfig:
    """Settings of :class:`mrt_engine.progress.ProgressEstimator`.

    mode: "score" (teacher-force the reference answer: its exact probability) or "sample"
        (``num_branches`` graded forced answers per cut, the paper's estimator).
    method: "fast" (prefill each trace once, branch at the cuts) or "naive" (plain
        transformers, re-encode every prefix: the reference and the baseline).
    template: termination template (a name in ``mrt_engine.prompts.TEMPLATES``, a dict of
        ``TerminationTemplate`` fields, or the object); None = the R1 text for sample mode and
        its scoring form ending in ``\\boxed{`` for score mode.
    scheme / segment_options: the episode segmenter (``mrt_engine.episodes.segment``).
    max_cuts: at most this many episode boundaries per trace (the rest is one final
        episode); None = no limit. The paper's dense variant uses 6.
    num_branches, max_answer_tokens, temperature, top_p: sample mode (paper: 8 branches,
        temperature 0.6-0.7). ``temperature``/``top_p`` None = inherit (the trainer fills
        them from ``rollout``).
    seed: sample mode is reproducible for a given seed (see ``progress/sample.py``).
    max_batch_tokens: the most tokens one forward pass handles; bounds activation memory.
    natural_end: how J at the last cut (the end of the trace) is taken. "close": answer after
        the natural close (``</think>`` and the answer prefix); "forced": the termination text
        like every other cut; "outcome": the trace's own graded outcome (no branches there:
        what a trainer that already graded its rollouts wants).
    think_close: a trace containing this tag is cut there: the part before it is the
        thinking that gets segmented, the whole trace is graded for the outcome.
    show_progress: tqdm bar; None = on when stderr is a terminal and there are >= 64 cuts.
    """

    mode: str = "score"
    method: str = "fast"
    template: object = None
    scheme: str = "r1"
    segment_options: dict = field(default_factory=dict)
    max_cuts: int | None = None
    num_branches: int = 8
    max_answer_tokens: int = 32
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    seed: int = 0
    max_batch_tokens: int = 8192
    natural_end: str = "close"
    think_close: str = "</think>"
    show_progress: bool | None = None

    def __post_init__(self):
        if isinstance(self.natural_end, bool):  # the bool form of the previous release
            _deprecated("natural_end: true/false", "natural_end: close/forced", "EstimatorConfig")
            self.natural_end = "close" if self.natural_end else "forced"
        self.segment_options = _migrate_segment_options(dict(self.segment_options or {}), "segment_options")
        _check(self.mode in ESTIMATOR_MODES, f"mode={self.mode!r}: use one of {ESTIMATOR_MODES}")
        _check(self.method in ESTIMATOR_METHODS, f"method={self.method!r}: use one of {ESTIMATOR_METHODS}")
        _check(self.natural_end in NATURAL_ENDS, f"natural_end={self.natural_end!r}: use one of {NATURAL_ENDS}")
        _check(self.max_cuts is None or (isinstance(self.max_cuts, int) and self.max_cuts >= 0),
               f"max_cuts={self.max_cuts!r}: need None or an int >= 0")
        _check(self.num_branches >= 1, f"num_branches={self.num_branches}: need >= 1")
        _check(self.max_answer_tokens >= 1, f"max_answer_tokens={self.max_answer_tokens}: need >= 1")
        _check(self.temperature is None or self.temperature >= 0,
               f"temperature={self.temperature}: need >= 0 (0 = greedy)")
        _check(self.top_p is None or 0 < self.top_p <= 1, f"top_p={self.top_p}: need 0 < top_p <= 1")
        _check(self.max_batch_tokens >= 16, f"max_batch_tokens={self.max_batch_tokens}: need >= 16")

    def segmenter_options(self) -> dict:
        """Keyword options for ``segment`` / ``segment_ids``: ``segment_options`` with ``max_cuts``."""
        opts = dict(self.segment_options)
        if self.max_cuts is not None:
            given = opts.get("max_cuts")
            opts["max_cuts"] = self.max_cuts if given is None else min(given, self.max_cuts)
        return opts


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
        _check(not self.tiny_config or self.name == "tiny",
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

    def __post_init__(self):
        _check(self.num_train >= 1, f"data.num_train={self.num_train}: need >= 1")
        _check(self.num_eval >= 0, f"data.num_eval={self.num_eval}: need >= 0")


@dataclass
class RolloutConfig:
    group_size: int = 4                # G completions per prompt (the GRPO group)
    max_tokens: int = 128              # completion budget
    temperature: float = 0.9           # paper: 0.9
    top_p: float = 1.0
    backend: str = "engine"            # "engine" (mrt_engine.engine.Generator) or "hf" (model.generate)
    eval_temperature: float = 0.0      # greedy held-out evaluation

    def __post_init__(self):
        _check(self.group_size >= 1, f"rollout.group_size={self.group_size}: need >= 1")
        _check(self.max_tokens >= 1, f"rollout.max_tokens={self.max_tokens}: need >= 1")
        _check(self.backend in ("engine", "hf"), f"rollout.backend={self.backend!r}: use 'engine' or 'hf'")
        _check(self.temperature >= 0, f"rollout.temperature={self.temperature}: need >= 0")
        _check(0 < self.top_p <= 1, f"rollout.top_p={self.top_p}: need 0 < top_p <= 1")


def _train_estimator() -> EstimatorConfig:
    # The dense variant of mrt.md section 5: 4 forced answers at up to 6 boundaries; the natural
    # end is the rollout's own graded outcome; temperature/top_p follow the rollout.
    return EstimatorConfig(mode="sample", template="boxed", max_cuts=6, num_branches=4, temperature=None,
                           top_p=None, natural_end="outcome", show_progress=False)


@dataclass
class AlgoConfig:
    name: str = "grpo"                 # one of ALGORITHMS (see mrt_engine.rl.algorithms)
    alpha: float = 1.0                 # weight of the progress bonus (mrt.md: 1.0)
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
    progress: EstimatorConfig = field(default_factory=_train_estimator)

    def __post_init__(self):
        if isinstance(self.progress, dict):
            self.progress = from_dict(EstimatorConfig, self.progress, "algo.progress")
        _check(self.name in ALGORITHMS, f"algo.name={self.name!r}: use one of {ALGORITHMS}")
        _check(self.advantage_scale in ("std", "none"), f"algo.advantage_scale={self.advantage_scale!r}: use 'std' or 'none'")
        _check(self.aggregation in ("grpo", "dr_grpo", "dapo"),
               f"algo.aggregation={self.aggregation!r}: use grpo, dr_grpo or dapo")
        _check(0 <= self.clip_low < 1, f"algo.clip_low={self.clip_low}: need 0 <= clip_low < 1")
        _check(self.clip_high >= 0, f"algo.clip_high={self.clip_high}: need >= 0")
        _check(self.num_updates >= 1, f"algo.num_updates={self.num_updates}: need >= 1")
        _check(self.kl_coef >= 0, f"algo.kl_coef={self.kl_coef}: need >= 0")
        _check(0 < self.star_keep_fraction <= 1, f"algo.star_keep_fraction={self.star_keep_fraction}: need (0, 1]")
        if self.name == "mrt_scalar":
            _check(1 <= self.num_terminate < self.num_continuations,
                   f"algo.num_terminate={self.num_terminate}: mrt_scalar needs 1 <= num_terminate < "
                   f"num_continuations ({self.num_continuations}): some continuations must terminate (the "
                   "baseline) and some reason on")
        if self.progress.mode == "score":
            self._check_scorable_template()

    def _check_scorable_template(self):
        """Score mode teacher-forces the reference answer right after the termination text, so
        the template must end where the answer begins and say how the answer closes."""
        from mrt_engine.prompts import get_template

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

    def __post_init__(self):
        self.betas = tuple(self.betas)
        _check(self.lr > 0, f"optim.lr={self.lr}: need > 0")
        _check(0 <= self.warmup_ratio < 1, f"optim.warmup_ratio={self.warmup_ratio}: need 0 <= warmup_ratio < 1")
        _check(self.micro_batch_size >= 1, f"optim.micro_batch_size={self.micro_batch_size}: need >= 1")


@dataclass
class ParallelConfig:
    """Processes under ``torchrun`` (``mrt_engine.rl.dist``): ``none`` (one process), ``ddp``
    (DistributedDataParallel) or ``fsdp2`` (``fully_shard`` per decoder layer, then the root)."""

    strategy: str = "none"
    timeout_s: float = 300.0           # process-group timeout: a dead rank ends the job after this

    def __post_init__(self):
        _check(self.strategy in PARALLEL_STRATEGIES,
               f"parallel.strategy={self.strategy!r}: use one of {PARALLEL_STRATEGIES}")
        _check(self.timeout_s > 0, f"parallel.timeout_s={self.timeout_s}: need > 0")


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
        _build_sections(self, {"model": ModelConfig, "data": DataConfig, "rollout": RolloutConfig,
                               "algo": AlgoConfig, "optim": OptimConfig, "parallel": ParallelConfig})
        est = self.algo.progress
        if est.temperature is None:
            est.temperature = self.rollout.temperature
        if est.top_p is None:
            est.top_p = self.rollout.top_p
        _check(self.steps >= 1, f"steps={self.steps}: need >= 1")
        _check(self.prompts_per_step >= 1, f"prompts_per_step={self.prompts_per_step}: need >= 1")
        _check(self.precision in PRECISIONS, f"precision={self.precision!r}: use one of {PRECISIONS}")
        _check(not (self.algo.aggregation == "dr_grpo" and self.algo.advantage_scale == "std"),
               "algo.advantage_scale='std' does not go with aggregation='dr_grpo' (Dr. GRPO drops the std "
               "division); set algo.advantage_scale: none or pick another aggregation")
        _check(self.algo.name not in ("grpo", "length_penalty", "mrt_dense") or self.rollout.group_size >= 2,
               f"rollout.group_size={self.rollout.group_size}: algo {self.algo.name!r} normalises within groups, "
               "need >= 2")
        _check(self.algo.name != "mrt_scalar" or est.max_answer_tokens <= self.rollout.max_tokens,
               f"algo.progress.max_answer_tokens={est.max_answer_tokens} must not exceed "
               f"rollout.max_tokens={self.rollout.max_tokens}")
        _check(self.data.num_train >= self.prompts_per_step,
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
    """The supervised warm start of ``mrt_engine.rl.sft`` (defaults: the demo model's recipe)."""

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
        _build_sections(self, {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig})
        self.segment_options = _migrate_segment_options(dict(self.segment_options or {}), "segment_options")
        _check(self.steps >= 1, f"steps={self.steps}: need >= 1")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size}: need >= 1")
        _check(0 <= self.termination_fraction < 1, f"termination_fraction={self.termination_fraction}: need [0, 1)")

    @classmethod
    def from_yaml(cls, path, overrides: dict | None = None) -> "SFTConfig":
        return load_config(cls, path, overrides)


# -- loading -----------------------------------------------------------------------------------
# Old key -> new key (dotted, relative to the section), per class. Loaded with a warning.
RENAMED: dict[type, dict[str, str]] = {
    AlgoConfig: {"answer_max_tokens": "progress.max_answer_tokens", "max_cuts": "progress.max_cuts",
                 "num_branches": "progress.num_branches", "scheme": "progress.scheme",
                 "segment_options": "progress.segment_options", "template": "progress.template",
                 "progress_estimator": "progress.mode"},
    EstimatorConfig: {"num_samples": "num_branches"},
    SFTConfig: {k: f"optim.{k}" for k in ("lr", "weight_decay", "warmup_ratio", "grad_clip", "micro_batch_size")},
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
    for old, new in RENAMED.get(cls, {}).items():
        if old not in d:
            continue
        value = d.pop(old)
        _deprecated(old, new, where)
        head, _, leaf = new.rpartition(".")
        section = d.get(head, {}) if head else d
        if isinstance(section, dict) and leaf in section:
            raise ValueError(f"{where}: both {old!r} and its new name {new!r} are set; keep only {new!r}")
        if (cls, old) == (AlgoConfig, "progress_estimator"):
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
    if cls is AlgoConfig and isinstance(d.get("progress"), dict):
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
