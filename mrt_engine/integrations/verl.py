"""verl adapter: MRT reward managers and a dense-progress advantage estimator (checked against verl 0.9.1).

Importing this module registers, in verl's own registries:
- reward manager ``"mrt"`` in the reward-loop registry
  (``verl.experimental.reward_loop.reward_manager``, the one verl 0.9's trainer resolves
  ``reward.reward_manager.name`` in): :class:`MRTRewardLoopManager`. ``run_single`` returns
  the scalar reward verl places on the last response token (``form="progress"``:
  ``R + alpha * sum_j r_prg``; ``"termination_baseline"``: ``R - J(empty prefix)``). verl 0.9's
  reward loop takes one scalar per response, so the dense form is refused there with a
  pointer to the classic manager below.
- reward manager ``"mrt"`` in the classic registry (``verl.workers.reward_manager``):
  :class:`MRTRewardManager`, ``__call__(data, return_dict)`` -> ``reward_tensor [B, response_length]``
  with ``alpha * r_prg(z_k)`` on the last token of episode k and the outcome on the last
  response token: the ``token_level_scores`` layout (verl's classic ``reward_fn(batch)``).
- advantage estimator ``"mrt_dense"`` (``verl.trainer.ppo.core_algos.register_adv_est``):
  :func:`compute_mrt_dense_advantage`. verl's GRPO sums the token rewards into one number per
  sequence, which erases where the progress was made; this one keeps it.

Make every verl process import this module by exporting
``VERL_USE_EXTERNAL_MODULES=mrt_engine.integrations.verl`` (verl's ``__init__`` imports the
listed modules), then set ``reward.reward_manager.name=mrt`` and, for the dense form,
``algorithm.adv_estimator=mrt_dense``. See docs/integrations/verl.md.

Options come from ``reward.reward_kwargs`` (``+reward.reward_kwargs.mrt_alpha=1.0`` etc.):
``mrt_form``, ``mrt_alpha``, ``mrt_model`` (default: ``actor_rollout_ref.model.path``),
``mrt_mode`` (``score``), ``mrt_device`` (``cpu``), ``mrt_dtype`` (``float32``).

Departures: verl's reward workers do not hold the actor's live weights, so the meta-prover
is a model loaded from ``mrt_model`` (by default the actor's starting checkpoint; point it at
a recent save to track the policy). Rollouts start at the prompt, so the scalar form's
termination baseline is J at the empty prefix.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from mrt_engine.integrations._common import (
    FORMS,
    EstimatorConfig,
    ProgressScorer,
    episode_token_spans,
    last_token_rewards,
    message_text,
    outcome_of,
    reference_answer,
    require,
    scalar_reward,
    token_char_ends,
)

require("verl", package="verl", purpose="mrt_engine.integrations.verl (verl pins transformers<5.11: build its "
        "own virtualenv with scripts/setup_verl_venv.sh)")

from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop.reward_manager import register as register_loop_manager  # noqa: E402
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase  # noqa: E402
from verl.trainer.ppo.core_algos import register_adv_est  # noqa: E402
from verl.workers.reward_manager import register as register_manager  # noqa: E402
from verl.workers.reward_manager.abstract import AbstractRewardManager  # noqa: E402

from mrt_engine import models  # by module: tests stand in for models.load_model

MANAGER_NAME = "mrt"
DENSE_ESTIMATOR = "mrt_dense"
__all__ = ["MRTRewardManager", "MRTRewardLoopManager", "compute_mrt_dense_advantage", "MANAGER_NAME",
           "DENSE_ESTIMATOR", "score_batch"]


# -- the batch -> per-token rewards core (shared by both managers) -----------------------------

def _row_parts(data: DataProto, i: int, tokenizer) -> tuple[str, list[int], Any]:
    """(problem text, valid response ids, ground truth) of row i, as verl lays a batch out."""
    batch, extra = data.batch, data.non_tensor_batch
    prompt_len = batch["prompts"].shape[-1]
    valid_len = int(batch["attention_mask"][i, prompt_len:].sum())
    response_ids = batch["responses"][i, :valid_len].tolist()
    reward_model = extra.get("reward_model")
    cell = reward_model[i] if reward_model is not None else None
    truth = cell.get("ground_truth") if isinstance(cell, dict) else None
    if truth is None or (isinstance(truth, str) and not truth.strip()):
        raise KeyError(
            "the MRT reward manager needs the reference answer of every example in "
            "non_tensor_batch['reward_model']['ground_truth'] (verl's data format: a 'reward_model' column "
            f"holding {{'ground_truth': ...}}); row {i} has none. Fix the data preprocessing.")
    raw = extra.get("raw_prompt")
    if raw is not None and raw[i] is not None:
        problem = message_text(list(raw[i]) if not isinstance(raw[i], str) else raw[i], role="user")
    else:
        prompt_ids = batch["prompts"][i]
        valid_prompt = int(batch["attention_mask"][i, :prompt_len].sum())
        problem = tokenizer.decode(prompt_ids[prompt_len - valid_prompt:].tolist(), skip_special_tokens=True)
    return problem, response_ids, reference_answer(truth, index=i)


def score_batch(data: DataProto, scorer: ProgressScorer, *, form: str, alpha: float):
    """Estimate progress for every row of a verl batch.

    Returns ``(token_scores [B, response_length] fp32, scalars list[float], results)``:
    ``token_scores`` has ``alpha * r_prg`` on each episode's last response token and the
    outcome on the last valid token for ``form="dense"``, else the scalar reward on the last
    valid token (verl's layout for outcome rewards).
    """
    if form not in FORMS:
        raise ValueError(f"form={form!r}; use one of {FORMS}")
    tokenizer = scorer.tokenizer
    rows = [_row_parts(data, i, tokenizer) for i in range(len(data))]
    problems = [r[0] for r in rows]
    responses = [tokenizer.decode(r[1], skip_special_tokens=True) for r in rows]
    results = scorer.estimate(problems, responses, [r[2] for r in rows])
    response_length = data.batch["responses"].shape[-1]
    token_scores = torch.zeros(len(data), response_length, dtype=torch.float32)  # [B, T]
    scalars = []
    for i, ((_, ids, _), res) in enumerate(zip(rows, results)):
        if not ids:
            raise ValueError(f"row {i} has an empty response; verl masks those out before scoring")
        scalar = scalar_reward(res, form=form, alpha=alpha, include_outcome=True)
        scalars.append(scalar)
        if form == "dense":
            spans = episode_token_spans(res, token_char_ends(tokenizer, ids))
            token_scores[i, : len(ids)] = last_token_rewards(res, spans, len(ids), alpha=alpha,
                                                             outcome_index=len(ids) - 1)
        else:
            token_scores[i, len(ids) - 1] = scalar
    return token_scores, scalars, results


def _extra_info(results) -> dict[str, list]:
    # Scalars only: verl stacks each key over the batch into a numpy array.
    return {
        "mrt_outcome": [outcome_of(r) for r in results],
        "mrt_progress": [float(sum(r.progress)) for r in results],
        "mrt_j0": [float(r.j[0]) for r in results],
    }


def _options(config) -> dict:
    kwargs = {}
    if config is not None:
        reward = config.get("reward") if hasattr(config, "get") else None
        kwargs = dict((reward.get("reward_kwargs") if reward is not None else None) or {})
    return kwargs


def _scorer_from_config(config, tokenizer) -> ProgressScorer:
    opts = _options(config)
    name = opts.get("mrt_model")
    if not name:
        try:
            name = config.actor_rollout_ref.model.path
        except AttributeError as exc:
            raise ValueError("set +reward.reward_kwargs.mrt_model=<checkpoint> (the model that estimates "
                             "progress)") from exc
    model, _ = models.load_model(name, device=opts.get("mrt_device", "cpu"), dtype=opts.get("mrt_dtype", "float32"))
    return ProgressScorer(model, tokenizer, EstimatorConfig(mode=opts.get("mrt_mode", "score")))


# -- reward managers ---------------------------------------------------------------------------

@register_loop_manager(MANAGER_NAME)
class MRTRewardLoopManager(RewardManagerBase):
    """verl 0.9 reward-loop manager (``reward.reward_manager.name=mrt``).

    ``scorer`` (tests, custom set-ups) replaces the model loaded from the config.
    """

    def __init__(self, config, tokenizer, compute_score=None, reward_router_address=None,
                 reward_model_tokenizer=None, *, scorer: ProgressScorer | None = None, **_: Any):
        super().__init__(config, tokenizer, compute_score)
        opts = _options(config)
        self.form = opts.get("mrt_form", "progress")
        self.alpha = float(opts.get("mrt_alpha", 1.0))
        if self.form not in ("progress", "termination_baseline"):
            raise ValueError(
                f"reward_kwargs.mrt_form={self.form!r}: verl 0.9's reward loop places one scalar per response on its "
                "last token, so only 'progress' and 'termination_baseline' fit here. The dense form needs per-token "
                "rewards: use MRTRewardManager (the classic reward_fn(batch) API) with algorithm.adv_estimator="
                f"{DENSE_ESTIMATOR}, see docs/integrations/verl.md")
        self.scorer = scorer or _scorer_from_config(config, tokenizer)

    async def run_single(self, data: DataProto) -> dict:
        data = data[-1:]  # multi-turn outputs: score the last sequence, as verl's own managers do
        _, scalars, results = score_batch(data, self.scorer, form=self.form, alpha=self.alpha)
        info = _extra_info(results)
        return {"reward_score": scalars[0], "reward_extra_info": {k: v[0] for k, v in info.items()}}


@register_manager(MANAGER_NAME)
class MRTRewardManager(AbstractRewardManager):
    """verl classic reward manager: ``reward_fn(batch) -> token_level_scores [B, response_length]``."""

    def __init__(self, tokenizer, num_examine: int = 0, compute_score=None, reward_fn_key: str = "data_source", *,
                 form: str = "dense", alpha: float = 1.0, scorer: ProgressScorer | None = None,
                 model=None, mode: str = "score", **_: Any):
        if form not in FORMS:
            raise ValueError(f"form={form!r}; use one of {FORMS}")
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.reward_fn_key = reward_fn_key
        self.form, self.alpha = form, float(alpha)
        if scorer is None:
            if model is None:
                raise ValueError("MRTRewardManager needs model= (the policy or a copy) or scorer=")
            scorer = ProgressScorer(model, tokenizer, EstimatorConfig(mode=mode))
        self.scorer = scorer

    def __call__(self, data: DataProto, return_dict: bool = False):
        token_scores, _, results = score_batch(data, self.scorer, form=self.form, alpha=self.alpha)
        if not return_dict:
            return token_scores
        return {"reward_tensor": token_scores,
                "reward_extra_info": defaultdict(list, _extra_info(results))}


# -- advantage estimator -----------------------------------------------------------------------

@register_adv_est(DENSE_ESTIMATOR)
def compute_mrt_dense_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                                index: np.ndarray | None = None, epsilon: float = 1e-6,
                                norm_adv_by_std_in_grpo: bool | None = None, config=None, **_: Any):
    """Dense MRT advantages from token rewards (verl's estimator signature).

    ``token_level_rewards [B, T]``: progress on episode-end tokens, outcome on the last token
    (:class:`MRTRewardManager`). Return-to-go ``G[b, t] = sum_{s >= t} r[b, s]`` credits a token
    with the progress of its own episode and every later one, ``R + alpha * (J_end - J_before)``;
    the baseline is the group mean of ``G[b, 0]`` (the whole return, as GRPO), divided by the
    group's std when ``norm_adv_by_std_in_grpo`` (from ``algorithm`` config, default True).
    Groups of one keep mean 0, std 1, as verl's GRPO does. Returns ``(advantages, returns)``,
    both ``[B, T]`` and zero outside ``response_mask``.

    Departure from ``mrt_engine.rl`` (own-episode progress only): verl hands the estimator only
    summed token rewards, from which episode boundaries with zero progress cannot be told
    apart; the return-to-go needs none.
    """
    if token_level_rewards.shape != response_mask.shape:
        raise ValueError(f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
                         f"{tuple(response_mask.shape)} must match")
    if norm_adv_by_std_in_grpo is None:
        norm_adv_by_std_in_grpo = bool(config.get("norm_adv_by_std_in_grpo", True)) if config is not None else True
    mask = response_mask.to(torch.float32)
    rewards = token_level_rewards.to(torch.float32) * mask
    returns = torch.flip(torch.cumsum(torch.flip(rewards, dims=[1]), dim=1), dims=[1]) * mask  # [B, T]
    totals = rewards.sum(dim=1)  # [B]
    bsz = totals.shape[0]
    groups = index if index is not None else np.zeros(bsz, dtype=object)
    mean = torch.zeros(bsz)
    std = torch.ones(bsz)
    members: dict = defaultdict(list)
    for i in range(bsz):
        members[groups[i]].append(i)
    for rows in members.values():
        if len(rows) > 1:
            vals = totals[rows]
            mean[rows] = vals.mean()
            std[rows] = vals.std()  # unbiased, as verl's GRPO
    centred = returns - mean[:, None]
    adv = centred / (std[:, None] + epsilon) if norm_adv_by_std_in_grpo else centred
    adv = adv * mask
    return adv, returns
