"""The method: what MRT computes, apart from the machinery that runs it (:mod:`mrt_engine.trainer`).

- :mod:`.rewards`, :mod:`.advantages`, :mod:`.losses`: pure tensor functions;
- :mod:`.logprobs`: per-token log-probs of a batch under the policy;
- :mod:`.rollout`: samples, grading, packing; :mod:`.rollout_progress`: J at the episode cuts
  of the trainer's own rollouts, from the one estimator;
- :mod:`.algorithms`: the algorithms as registry objects (``rollout`` then ``credit``);
- :mod:`.backends`: the rollout backends (engine, hf, vllm) behind one ``make_backend``.
"""
from mrt_engine.rl.advantages import group_advantages, token_advantages
from mrt_engine.rl.losses import LossOutput, aggregate, kl_k3, policy_loss, sft_loss
from mrt_engine.rl.rewards import (centred_progress, dense_progress_rewards, episode_progress, length_penalty_rewards,
                                   outcome_rewards, progress_to_go, scalar_mrt_advantages, shuffle_across_traces,
                                   shuffle_within_traces)

__all__ = ["group_advantages", "token_advantages", "LossOutput", "aggregate", "kl_k3", "policy_loss",
           "sft_loss", "centred_progress", "dense_progress_rewards", "episode_progress", "length_penalty_rewards",
           "outcome_rewards", "progress_to_go", "scalar_mrt_advantages", "shuffle_across_traces",
           "shuffle_within_traces"]
