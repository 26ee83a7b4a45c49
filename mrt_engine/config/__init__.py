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
from .estimator import ESTIMATOR_METHODS, ESTIMATOR_MODES, NATURAL_ENDS, EstimatorConfig
from .loading import RENAMED, from_dict, load_config, set_dotted
from .train import (ALGORITHMS, PARALLEL_STRATEGIES, PRECISIONS, ROLLOUT_BACKENDS, VLLM_OPTIONS, AlgoConfig,
                    DataConfig, ModelConfig, OptimConfig, ParallelConfig, RolloutConfig, SFTConfig, TrainConfig)

__all__ = ["ALGORITHMS", "AlgoConfig", "DataConfig", "ESTIMATOR_METHODS", "ESTIMATOR_MODES", "EstimatorConfig",
           "ModelConfig", "NATURAL_ENDS", "OptimConfig", "PARALLEL_STRATEGIES", "PRECISIONS", "ParallelConfig",
           "RENAMED", "ROLLOUT_BACKENDS", "RolloutConfig", "SFTConfig", "TrainConfig", "VLLM_OPTIONS", "from_dict",
           "load_config", "set_dotted"]
