"""Adapters that bring MRT progress rewards to other RL frameworks.

- :mod:`mrt_engine.integrations.trl`: ``MRTProgressReward`` (a GRPOTrainer reward function) and
  ``MRTGRPOTrainer`` (dense per-token advantages).
- :mod:`mrt_engine.integrations.verl`: reward managers and the ``mrt_dense`` advantage estimator,
  registered in verl's registries on import.
- :mod:`mrt_engine.integrations.openrlhf`: a ``reward_func`` file for ``--remote_rm_url``.

Each submodule imports its framework and fails with an install hint when it is missing;
importing this package imports none of them.
"""
