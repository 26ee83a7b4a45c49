"""The run: everything that executes MRT training, apart from the method it executes.

The method (algorithms, rewards, advantages, losses, rollouts, J at the cuts, rollout
backends) lives in :mod:`mrt_engine.rl`; this package drives it:

- :mod:`.loop`: :class:`Trainer` and :func:`train`, the loop (orchestration only);
- :mod:`.sft`: the supervised warm start (``mrt-engine sft``);
- :mod:`.update`: one policy update over a packed batch (micro-batches, accumulation, clipping);
- :mod:`.evaluate`: held-out evaluation;
- :mod:`.checkpoint`, :mod:`.dist_checkpoint`: checkpoints, plain and under ``torchrun`` (DCP);
- :mod:`.dist`: process groups and DDP / FSDP2 wrapping;
- :mod:`.optim`, :mod:`.logger`, :mod:`.setup`, :mod:`.data`: optimizer and schedule,
  metrics out, building the model and problems, the resumable prompt cursor.

``mrt_engine.train`` stays the public import of :func:`train`.
"""
from mrt_engine.config import TrainConfig
from mrt_engine.trainer.loop import Trainer, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]
