"""The public import of the trainer: ``from mrt_engine.train import train``.

The loop itself lives in :mod:`mrt_engine.trainer.loop`; this module only re-exports it, so
user code and configs written against ``mrt_engine.train`` keep working.
"""
from mrt_engine.trainer import TrainConfig, Trainer, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]
