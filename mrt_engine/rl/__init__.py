"""Pure pieces of MRT training: rewards, advantages, losses (tensor functions), plus the
config, checkpoint and logging helpers the trainer orchestrates."""
from mrt_engine.rl.advantages import group_advantages, token_advantages
from mrt_engine.rl.losses import LossOutput, aggregate, kl_k3, policy_loss, sft_loss
from mrt_engine.rl.rewards import (dense_progress_rewards, episode_progress, length_penalty_rewards,
                                   outcome_rewards, scalar_mrt_advantages)

__all__ = ["group_advantages", "token_advantages", "LossOutput", "aggregate", "kl_k3", "policy_loss",
           "sft_loss", "dense_progress_rewards", "episode_progress", "length_penalty_rewards",
           "outcome_rewards", "scalar_mrt_advantages"]
