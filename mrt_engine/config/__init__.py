"""Every configuration dataclass of the project, in one place, and the YAML mapping onto them.

- :class:`EstimatorConfig`: the progress estimator (``mrt_engine.progress``).
- :class:`TrainConfig` with its sections :class:`ModelConfig`, :class:`DataConfig`,
  :class:`RolloutConfig`, :class:`AlgoConfig` (which holds an ``EstimatorConfig`` as
  ``algo.progress``, starting from :data:`TRAIN_ESTIMATOR_DEFAULTS` however it is built),
  :class:`OptimConfig`, :class:`ParallelConfig`.
- :class:`SFTConfig`: the supervised warm start (``mrt-engine sft``).
- :mod:`.presets`: the run configs shipped inside the package (demo, compare, SFT recipes).

A YAML file has one mapping per section plus the top-level fields; unknown keys are errors
that list the known ones. :func:`load_config` reads a file (or dict) into a class, applying
``KEY=VALUE`` overrides with :func:`set_dotted`. Every check names the one field that failed.

Renamed keys (one name per idea across code, configs and CLI flags) still load for one release,
with a ``DeprecationWarning`` that names the new key: see ``RENAMED``.

Files: ``checks.py`` (a leaf: field checks, key renames) and ``files.py`` (a leaf: reading a YAML
file, whose ``base:`` names a file it starts from) <- ``loading.py`` (the generic loader)
<- ``estimator.py`` <- ``train.py``. A bottom-layer package: it imports nothing above ``prompts``.
"""
from .checks import set_dotted
from .estimator import ESTIMATOR_METHODS, ESTIMATOR_MODES, NATURAL_ENDS, EstimatorConfig
from .loading import from_dict, load_config
from .train import (PARALLEL_STRATEGIES, PRECISIONS, ROLLOUT_BACKENDS, TRAIN_ESTIMATOR_DEFAULTS, VLLM_OPTIONS,
                    AlgoConfig, DataConfig, ModelConfig, OptimConfig, ParallelConfig, RolloutConfig, SFTConfig,
                    TrainConfig, train_estimator)

# Old key -> new key (dotted, relative to the section), per class: each class's own table.
RENAMED: dict[str, dict[str, str]] = {cls.__name__: dict(cls.RENAMED_KEYS)
                                      for cls in (AlgoConfig, EstimatorConfig, SFTConfig)}

__all__ = ["AlgoConfig", "DataConfig", "ESTIMATOR_METHODS", "ESTIMATOR_MODES", "EstimatorConfig",
           "ModelConfig", "NATURAL_ENDS", "OptimConfig", "PARALLEL_STRATEGIES", "PRECISIONS", "ParallelConfig",
           "RENAMED", "ROLLOUT_BACKENDS", "RolloutConfig", "SFTConfig", "TRAIN_ESTIMATOR_DEFAULTS", "TrainConfig",
           "VLLM_OPTIONS", "from_dict", "load_config", "set_dotted", "train_estimator"]
