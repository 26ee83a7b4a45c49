"""TRL adapter: an MRT progress reward for ``GRPOTrainer`` and a trainer that uses dense advantages.

``MRTProgressReward`` follows TRL's reward-function convention (checked against trl 1.16,
``GRPOTrainer._calculate_rewards``): it is called as
``f(prompts=..., completions=..., completion_ids=..., <every dataset column>=..., trainer_state=...,
log_extra=..., log_metric=...)`` and returns one float per completion. It scores every
completion with :class:`mrt_engine.progress.ProgressEstimator` on the model it is bound to:
pass the same model object to the reward and to the trainer, and the estimator reads the
weights the trainer is updating (no copy).

Forms (``form=``):
- ``"progress"`` (default): ``alpha * sum_j r_prg(z_j)``, the MRT bonus; add TRL's usual
  outcome reward beside it, or set ``include_outcome=True`` to return ``R + alpha * bonus``.
- ``"termination_baseline"``: ``R - J(empty prefix)``, the paper's scalar MRT advantage with
  the forced-termination success estimated at the prompt. GRPO subtracts the group mean
  again; ``MRTGRPOTrainer(advantage="termination_baseline")`` uses it as the advantage as is.
- ``"dense"``: returns the outcome R; ``MRTGRPOTrainer`` adds each episode's progress to the
  advantages of that episode's tokens (``(B, T)`` advantages, which TRL's loss accepts).

Departures from the paper: rollouts start at the prompt (TRL has no prefix rollouts), so the
scalar form's baseline is J at the empty prefix; the meta-prover is the policy being trained,
run in eval mode under no_grad between generation and the policy update.
"""
from __future__ import annotations

from typing import Any

import torch

from mrt_engine.integrations._common import (
    FORMS,
    EstimatorConfig,
    ProgressScorer,
    answer_column,
    column,
    dense_rewards,
    episode_token_spans,
    message_text,
    require,
    scalar_reward,
    token_char_ends,
)

require("trl", package="trl", purpose="mrt_engine.integrations.trl")

from trl import GRPOTrainer  # noqa: E402  (after the clear error above)

__all__ = ["MRTProgressReward", "MRTGRPOTrainer"]

_CONTROL_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")


class MRTProgressReward:
    """TRL reward function computing MRT progress with our estimator.

    Args:
        model, tokenizer: the policy the trainer trains (same object), or None and bind later
            with :meth:`bind` (``MRTGRPOTrainer`` binds it to its own model).
        form: ``"progress"``, ``"termination_baseline"`` or ``"dense"`` (see the module doc).
        alpha: weight of the progress bonus (paper: not given; the authors' online variant 1.0).
        include_outcome: for ``form="progress"``, return ``R + alpha * progress`` instead of
            the bonus alone.
        answer_column: dataset column with the reference answer (str, or list of accepted forms).
        problem_column: dataset column with the problem text; when None, the last user message of
            a conversational prompt or the prompt string itself.
        mode, method, **estimator_options: fields of ``mrt_engine.config.EstimatorConfig``.
        estimator: a ready estimator (``.estimate(problems, traces, answers)``) to use instead.
    """

    def __init__(self, model=None, tokenizer=None, *, form: str = "progress", alpha: float = 1.0,
                 include_outcome: bool = False, answer_column: str = "answer",
                 problem_column: str | None = None, mode: str = "score", method: str = "fast",
                 estimator=None, **estimator_options):
        if form not in FORMS:
            raise ValueError(f"form={form!r}; use one of {FORMS}")
        if not alpha >= 0:
            raise ValueError(f"alpha={alpha} must be >= 0")
        self.form = form
        self.alpha = float(alpha)
        self.include_outcome = include_outcome
        self.answer_column = answer_column
        self.problem_column = problem_column
        self.scorer = ProgressScorer(model, tokenizer, EstimatorConfig(mode=mode, method=method, **estimator_options),
                                     estimator=estimator)
        self.__name__ = f"mrt_{form}"  # TRL logs rewards under the callable's name
        self.last_results: list = []
        self.last_rewards: list[float] = []
        self.last_dense: list[torch.Tensor] = []  # per completion [len(completion_ids[i])]

    def bind(self, model, tokenizer=None) -> "MRTProgressReward":
        """Score with ``model`` (e.g. ``trainer.model`` when the trainer loaded it from a name)."""
        self.scorer.bind(_unwrap(model), tokenizer)
        return self

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]] | None = None,
                 **kwargs: Any) -> list[float]:
        num = len(completions)
        if len(prompts) != num:
            raise ValueError(f"{len(prompts)} prompts for {num} completions")
        columns = {k: v for k, v in kwargs.items() if k not in _CONTROL_KWARGS}
        answers = answer_column(columns, self.answer_column, num, what="MRTProgressReward")
        if self.problem_column is not None:
            problems = [str(p) for p in column(columns, self.problem_column, num, what="MRTProgressReward",
                                                   holds="problem text", option="problem_column")]
        else:
            problems = [message_text(p, role="user") if not isinstance(p, str) else p for p in prompts]
        texts = [message_text(c, role="assistant") if not isinstance(c, str) else c for c in completions]

        results = self.scorer.estimate(problems, texts, answers)
        rewards = [scalar_reward(r, form=self.form, alpha=self.alpha, include_outcome=self.include_outcome)
                   for r in results]
        self.last_results, self.last_rewards = results, rewards
        self.last_dense = []
        if self.form == "dense":
            if completion_ids is None:
                raise ValueError("form='dense' needs completion_ids (TRL passes them) to place progress on tokens")
            tok = self.scorer.tokenizer
            for res, ids in zip(results, completion_ids):
                spans = episode_token_spans(res, token_char_ends(tok, ids))
                self.last_dense.append(dense_rewards(res, spans, len(ids), alpha=self.alpha))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("mrt/progress_mean", sum(float(sum(r.progress)) for r in results) / max(num, 1))
            log_metric("mrt/j0_mean", sum(float(r.j[0]) for r in results) / max(num, 1))
        return rewards


class MRTGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose advantages carry MRT progress.

    ``advantage="dense"``: ``A[b, t] = A_outcome[b] + alpha * progress(episode of token t)``, a
    ``(B, T)`` tensor; ``A_outcome`` is TRL's usual group-normalised advantage of the summed
    rewards (include the ``MRTProgressReward(form="dense")``, which returns the outcome).
    ``advantage="termination_baseline"``: ``A[b] = R[b] - J(empty prefix)`` straight from an
    ``MRTProgressReward(form="termination_baseline")``, without the group mean.

    The reward must be one of ``reward_funcs``; it is bound to this trainer's model when it
    has none. Tokens after the completion (padding) get advantage 0 as before (the loss masks
    them anyway).
    """

    def __init__(self, *args, advantage: str = "dense", **kwargs):
        if advantage not in ("dense", "termination_baseline"):
            raise ValueError(f"advantage={advantage!r}; use 'dense' or 'termination_baseline'")
        super().__init__(*args, **kwargs)
        self.mrt_advantage = advantage
        found = [f for f in self.reward_funcs if isinstance(f, MRTProgressReward)]
        if len(found) != 1 or found[0].form != advantage:
            raise ValueError(
                f"MRTGRPOTrainer(advantage={advantage!r}) needs exactly one MRTProgressReward(form={advantage!r}) "
                f"in reward_funcs; got {[getattr(f, 'form', type(f).__name__) for f in self.reward_funcs]}")
        self.mrt_reward = found[0]
        if self.mrt_reward.scorer.model is None:
            self.mrt_reward.bind(self.model, self.processing_class)
        elif self.mrt_reward.scorer.tokenizer is None:
            self.mrt_reward.scorer.tokenizer = self.processing_class
        if advantage == "termination_baseline" and len(self.reward_funcs) != 1:
            # The advantage is R - J0 from our reward alone; other rewards would be dropped silently.
            raise ValueError("advantage='termination_baseline' uses MRTProgressReward's R - J(empty prefix) as the "
                             "advantage; pass it as the only reward function")

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        reward = self.mrt_reward
        device = output["completion_ids"].device
        if self.mrt_advantage == "termination_baseline":
            output["advantages"] = torch.tensor(reward.last_rewards, dtype=torch.float32, device=device)
            return output
        completion_ids = output["completion_ids"]  # [B, T], right-padded
        if len(reward.last_dense) != completion_ids.shape[0]:
            raise RuntimeError(f"{len(reward.last_dense)} dense rows for {completion_ids.shape[0]} completions")
        dense = torch.zeros(completion_ids.shape, dtype=torch.float32, device=device)  # [B, T]
        for b, row in enumerate(reward.last_dense):
            dense[b, : row.numel()] = row.to(device)
        seq_adv = output["advantages"]
        if seq_adv.dim() != 1:
            raise RuntimeError(f"expected (B,) advantages from GRPOTrainer, got {tuple(seq_adv.shape)}")
        output["advantages"] = (seq_adv[:, None] + dense) * output["completion_mask"].to(dense.dtype)
        return output


def _unwrap(model):
    # accelerate/DDP wrappers keep the module in .module; the estimator wants the HF model.
    return getattr(model, "module", model)
