"""The training algorithms as small objects in a registry: ``rollout`` then ``credit``.

``ALGORITHMS[name](cfg)`` gives an :class:`Algorithm`. ``rollout(ctx, problems)`` samples
(and, for the MRT forms, estimates J at the episode cuts); ``credit(ctx, rollout)`` turns the
graded rollout into either token advantages for a policy-gradient update or the samples for a
supervised (STaR) update. Every number comes from the pure functions of ``rewards.py`` and
``advantages.py``; the trainer only orchestrates. Add an algorithm with :func:`register`.

- ``grpo``: outcome reward, group-normalised advantages.
- ``length_penalty``: GRPO on ``R - coef * len / max_tokens``.
- ``mrt_scalar``: the paper's MRT-RL: continuations from a random episode prefix,
  ``A = R - mean(R_terminate)``.
- ``mrt_dense``: outcome advantage plus each episode's progress on its tokens (alpha).
- ``mrt_dense_to_go``: the same with each episode's progress-to-go (the gradient of the MRT
  objective under per-episode rewards).
- ``mrt_dense_centred``: the same with progress minus the group's leave-one-out mean at the
  same episode index (it no longer re-pays the outcome).
- ``mrt_dense_placebo``: ``mrt_dense`` with the progress values shuffled across the batch's
  episodes: the same magnitudes, no credit (the control arm of ``mrt-engine compare``).
- ``mrt_dense_placebo_within``: ``mrt_dense`` with each trace's progress values shuffled among
  its own episodes: each trace's total kept, the placement broken.
- ``star`` / ``mrt_star``: sample, keep (correct / correct with monotone progress, lowest
  regret first), fine-tune on the kept traces.
"""
from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch

from mrt_engine.engine import SamplingParams
from mrt_engine.metrics import normalized_regret
from mrt_engine.progress import ProgressResult, token_curve
from mrt_engine.rl.advantages import group_advantages, token_advantages
from mrt_engine.rl.rollout_progress import episode_token_spans, estimate_progress, reliability_metrics
from mrt_engine.rl.rewards import (centred_progress, dense_progress_rewards, length_penalty_rewards, progress_to_go,
                                   scalar_mrt_advantages, shuffle_across_traces, shuffle_within_traces)
from mrt_engine.rl.rollout import Batch, Sample, pack, sample_groups, sample_prefix_continuations


@dataclass
class StepContext:
    """What one step's rollout and credit need from the trainer."""

    cfg: object                          # TrainConfig
    backend: object                      # rollout backend (rl.backends)
    tokenizer: object
    estimator: object                    # ProgressEstimator on the live policy
    pad_id: int
    seed: Callable[[int], int]           # salt -> this step's seed for that random choice
    rank: int = 0                        # under torchrun: this rank's samples follow the lower ranks' ones
    timings: dict = field(default_factory=dict)

    def sampling(self) -> SamplingParams:
        ro = self.cfg.rollout
        return SamplingParams(max_tokens=ro.max_tokens, temperature=ro.temperature, top_p=ro.top_p, seed=self.seed(0))

    def progress(self, samples: list[Sample], *, salt: int = 2) -> list[ProgressResult]:
        """J at every episode cut of ``samples`` (timed as the step's progress phase)."""
        t0 = time.perf_counter()
        out = estimate_progress(self.estimator, self.tokenizer, samples, seed=self.seed(salt),
                                first_index=self.rank * len(samples))
        self.timings["progress"] = self.timings.get("progress", 0.0) + time.perf_counter() - t0
        return out

    def reliability(self, results: list[ProgressResult]) -> dict:
        """This step's split-half reliability metrics of ``results`` (``progress/*``)."""
        est = self.estimator.config
        return reliability_metrics(results, mode=est.mode, num_branches=est.num_branches)


@dataclass
class Rollout:
    samples: list[Sample]
    group_size: int
    progress: list[ProgressResult] | None = None
    metrics: dict = field(default_factory=dict)
    credit_seed: int | None = None   # the seed of credit's own random choices (the placebos' permutation)


@dataclass
class Credit:
    """Either ``advantages [N, T]`` over ``batch`` (policy gradient) or ``sft_samples`` (STaR)."""

    metrics: dict
    batch: Batch | None = None
    advantages: torch.Tensor | None = None
    sft_samples: list[Sample] | None = None


class Algorithm:
    name: ClassVar[str] = ""
    # Completions per prompt the credit needs: 2 for algorithms that normalise within a group.
    min_group_size: ClassVar[int] = 1

    def __init__(self, cfg):
        self.cfg, self.algo = cfg, cfg.algo

    def rollout(self, ctx: StepContext, problems) -> Rollout:
        n = self.cfg.rollout.group_size
        samples = sample_groups(ctx.backend, ctx.tokenizer, problems, n=n, sampling=ctx.sampling(),
                                system=self.cfg.data.system_prompt)
        return Rollout(samples, n)

    def credit(self, ctx: StepContext, rollout: Rollout) -> Credit:
        batch = pack(rollout.samples, ctx.pad_id)
        seq_adv, dense, metrics = self.sequence_advantages(rollout, batch)
        adv = token_advantages(seq_adv, batch.loss_mask, dense)
        metrics["adv_abs_mean"] = (adv.abs().sum() / batch.loss_mask.sum().clamp(min=1)).item()
        return Credit(metrics, batch=batch, advantages=adv)

    def sequence_advantages(self, rollout: Rollout, batch: Batch):
        """(per-sequence advantages [N], optional dense token rewards [N, T], metrics)."""
        raise NotImplementedError


ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    ALGORITHMS[cls.name] = cls
    return cls


def check_config(cfg) -> type[Algorithm]:
    """The registered class of ``cfg.algo.name``, after the checks that need the registry: the
    name itself (the registry is the one list of algorithms) and the group size its credit needs.
    The trainer calls this before it builds anything."""
    name = cfg.algo.name
    if name not in ALGORITHMS:
        raise ValueError(f"algo.name={name!r}: use one of {sorted(ALGORITHMS)}")
    cls = ALGORITHMS[name]
    group_size = cfg.rollout.group_size
    if group_size < cls.min_group_size:
        raise ValueError(f"rollout.group_size={group_size}: algo {name!r} normalises within groups, "
                         f"need >= {cls.min_group_size}")
    return cls


def build_algorithm(cfg) -> Algorithm:
    return check_config(cfg)(cfg)


def _rewards(samples: list[Sample]) -> torch.Tensor:
    return torch.tensor([s.reward for s in samples], dtype=torch.float32)  # [N]


@register
class GRPO(Algorithm):
    name = "grpo"
    min_group_size = 2

    def sequence_advantages(self, rollout, batch):
        return group_advantages(_rewards(rollout.samples), rollout.group_size, scale=self.algo.advantage_scale), None, {}


@register
class LengthPenalty(Algorithm):
    name = "length_penalty"
    min_group_size = 2

    def sequence_advantages(self, rollout, batch):
        lengths = torch.tensor([s.num_completion_tokens for s in rollout.samples], dtype=torch.float32)
        shaped = length_penalty_rewards(_rewards(rollout.samples), lengths, max_tokens=self.cfg.rollout.max_tokens,
                                        coef=self.algo.length_coef)
        seq_adv = group_advantages(shaped, rollout.group_size, scale=self.algo.advantage_scale)
        return seq_adv, None, {"shaped_reward": shaped.mean().item()}


@register
class MRTDense(GRPO):
    """Group-normalised outcome advantage plus ``alpha * credit`` of each episode on its tokens.

    The credit of ``mrt_dense`` is the episode's own progress ``J_k - J_{k-1}``: the paper's
    progress bonus as the authors' online dense variant pays it (per-episode forced-answer branches, alpha 1), which their v0.1
    reproduction found weaker than the scalar form (+0.62 vs +1.20 pass@1 over the base model,
    GRPO +0.48). The subclasses below change only :meth:`episode_credit`.
    """

    name = "mrt_dense"

    def rollout(self, ctx, problems):
        out = super().rollout(ctx, problems)
        out.progress = ctx.progress(out.samples)
        out.metrics.update(ctx.reliability(out.progress))
        out.credit_seed = ctx.seed(5)
        return out

    def episode_credit(self, rollout) -> list[list[float]]:
        """Per trace, the value each episode's tokens get (before alpha)."""
        return [list(p.progress) for p in rollout.progress]

    def sequence_advantages(self, rollout, batch):
        seq_adv, _, metrics = super().sequence_advantages(rollout, batch)
        width = batch.input_ids.shape[1]
        spans = [[(start + a, start + b) for a, b in episode_token_spans(p, s.num_completion_tokens)]
                 for p, s, start in zip(rollout.progress, rollout.samples, batch.completion_start)]
        credit = [torch.as_tensor(c, dtype=torch.float32).reshape(-1) for c in self.episode_credit(rollout)]
        dense = dense_progress_rewards(credit, spans, width, alpha=self.algo.alpha)
        progress = [p for r in rollout.progress for p in r.progress]
        metrics["progress_mean"] = sum(progress) / len(progress) if progress else 0.0
        metrics["num_episodes"] = len(progress) / len(rollout.progress)
        flat = torch.cat(credit) if credit else torch.zeros(0)
        metrics["credit_abs_mean"] = float(flat.abs().mean()) if flat.numel() else 0.0
        # share of episodes whose credit is not their own progress: 0 for mrt_dense, > 0 for the
        # other forms and the placebos wherever they can move anything
        own = torch.tensor(progress, dtype=torch.float32)
        metrics["credit_moved"] = float((flat - own).abs().gt(1e-6).float().mean()) if flat.numel() else 0.0
        return seq_adv, dense, metrics


@register
class MRTDenseToGo(MRTDense):
    """``mrt_dense`` with progress-to-go: episode k's tokens get ``J_L - J_{k-1}``
    (:func:`mrt_engine.rl.rewards.progress_to_go`): the policy gradient of the paper's
    objective ``E[sum_j r_prg(z_j)]`` under per-episode rewards, which the paper states and
    neither the paper's nor the authors' online code trains with."""

    name = "mrt_dense_to_go"

    def episode_credit(self, rollout):
        return [progress_to_go(p.progress).tolist() for p in rollout.progress]


@register
class MRTDenseCentred(MRTDense):
    """``mrt_dense`` with centred progress: minus the leave-one-out mean of the group at the same
    episode index (:func:`mrt_engine.rl.rewards.centred_progress`). Not in the paper: the
    step-level baseline of process-return RL, so the dense term stops re-paying the outcome."""

    name = "mrt_dense_centred"

    def episode_credit(self, rollout):
        groups = [s.group for s in rollout.samples]
        return [c.tolist() for c in centred_progress([p.progress for p in rollout.progress], groups)]


@register
class MRTDensePlacebo(MRTDense):
    """``mrt_dense`` whose episode progress values are permuted across the whole batch.

    Each trace keeps its episode count and spans, but the value on an episode comes from a
    random episode of any trace in the step. If MRT's gain came from the extra reward scale or
    variance rather than from crediting the episode that made progress, this arm would match it.
    Not in the paper: it is our control.
    """

    name = "mrt_dense_placebo"

    def episode_credit(self, rollout):
        return shuffle_across_traces([p.progress for p in rollout.progress], random.Random(rollout.credit_seed))


@register
class MRTDensePlaceboWithin(MRTDense):
    """``mrt_dense`` whose progress values are permuted among each trace's own episodes
    (:func:`mrt_engine.rl.rewards.shuffle_within_traces`): each trace's total credit, the part
    that re-pays its outcome, is kept; which episode gets it is broken. Not in the paper: our
    control for "does the placement of credit inside a trace matter?"."""

    name = "mrt_dense_placebo_within"

    def episode_credit(self, rollout):
        return shuffle_within_traces([p.progress for p in rollout.progress], random.Random(rollout.credit_seed))


def shuffle_progress(results: list[ProgressResult], rng: random.Random) -> list[ProgressResult]:
    """Copies of ``results`` whose ``progress`` values are one random permutation of all of them
    (:func:`mrt_engine.rl.rewards.shuffle_across_traces`)."""
    shuffled = shuffle_across_traces([r.progress for r in results], rng)
    return [dataclasses.replace(r, progress=p) for r, p in zip(results, shuffled)]


@register
class MRTScalar(Algorithm):
    """``A = R - mean(R_terminate)`` per prefix group (no std scaling, as in the paper).

    The scalar form as the authors' public code states it (``A = R - R_termination`` in place of
    the group mean; :func:`mrt_engine.rl.rewards.scalar_mrt_advantages`), online: each step cuts
    one fresh trace of the current policy per problem after a random number of episodes and
    samples the continuations from there. Their v0.1 reproduction ran it offline (prefixes
    drawn once, before training) and found it the strongest form (+1.20 pass@1 over the base
    model against GRPO's +0.48)."""

    name = "mrt_scalar"

    def rollout(self, ctx, problems):
        algo, est = self.algo, self.algo.progress
        samples = sample_prefix_continuations(
            ctx.backend, ctx.tokenizer, problems, sampling=ctx.sampling(), num_continuations=algo.num_continuations,
            num_terminate=algo.num_terminate, max_answer_tokens=ctx.estimator.config.max_answer_tokens,
            template=ctx.estimator.template, scheme=est.scheme, segment_options=est.segmenter_options(),
            rng=random.Random(ctx.seed(1)), system=self.cfg.data.system_prompt)
        # generated tokens = the continuations plus each group's whole prefix rollout (cut after generation)
        prefix_tokens = sum(samples[g * algo.num_continuations].meta["trace_tokens"]
                            for g in range(len(samples) // algo.num_continuations))
        rollout_tokens = prefix_tokens + sum(s.num_completion_tokens for s in samples)
        return Rollout(samples, algo.num_continuations, metrics={"rollout_tokens": rollout_tokens})

    def sequence_advantages(self, rollout, batch):
        m = rollout.group_size
        rewards = _rewards(rollout.samples).view(-1, m)
        terminated = torch.tensor([s.terminated for s in rollout.samples]).view(-1, m)
        term_mean = (rewards * terminated).sum(1) / terminated.sum(1)
        cont_mean = (rewards * ~terminated).sum(1) / (~terminated).sum(1).clamp(min=1)
        metrics = {"j_prefix": term_mean.mean().item(), "progress_mean": (cont_mean - term_mean).mean().item()}
        return scalar_mrt_advantages(rewards, terminated).reshape(-1), None, metrics


@register
class STaR(Algorithm):
    """Sample, keep the correct traces, fine-tune on them (one round per step)."""

    name = "star"

    def rollout(self, ctx, problems):
        n = self.algo.star_num_samples
        samples = sample_groups(ctx.backend, ctx.tokenizer, problems, n=n, sampling=ctx.sampling(),
                                system=self.cfg.data.system_prompt)
        return Rollout(samples, n)

    def credit(self, ctx, rollout):
        kept = [s for s in rollout.samples if s.reward >= 1.0]
        return Credit({"num_correct": len(kept), "num_kept": len(kept)}, sft_samples=kept)


@register
class MRTSTaR(STaR):
    """STaR whose filter depends on the intermediate J values (see :func:`select_by_progress`)."""

    name = "mrt_star"

    def rollout(self, ctx, problems):
        out = super().rollout(ctx, problems)
        correct = [s for s in out.samples if s.reward >= 1.0]
        out.progress = ctx.progress(correct) if correct else []
        out.metrics.update(ctx.reliability(out.progress))
        return out

    def credit(self, ctx, rollout):
        correct = [s for s in rollout.samples if s.reward >= 1.0]
        budgets = [len(s.context_ids) + self.cfg.rollout.max_tokens for s in correct]
        keep = select_by_progress(rollout.progress, budgets, keep_fraction=self.algo.star_keep_fraction)
        num_monotone = sum(all(p >= 0 for p in r.progress) for r in rollout.progress)
        progress = [p for r in rollout.progress for p in r.progress]
        metrics = {"num_correct": len(correct), "num_monotone": num_monotone, "num_kept": len(keep),
                   "progress_mean": sum(progress) / len(progress) if progress else 0.0}
        return Credit(metrics, sft_samples=[correct[i] for i in keep])


def select_by_progress(results: list[ProgressResult], budgets: list[float], *, keep_fraction: float) -> list[int]:
    """MRT-STaR's filter over correct traces: indices to fine-tune on, best first.

    Eligible: traces whose every episode makes non-negative progress (J never falls). Ranked by
    normalized regret at ``budgets[i]`` (prompt + completion budget; lower is better: J rose
    early), and the best ``ceil``-rounded ``keep_fraction`` of the eligible are kept (at least
    one when any is eligible).

    Departure from the paper, which gives no exact filter: ranking correct traces by their mean
    episode progress cancels itself (progress telescopes to ``(J_L - J_0) / L`` and J_L is 1 for
    a correct trace, so the intermediate J values drop out). Monotone progress and regret both
    depend on every intermediate J.
    """
    if len(results) != len(budgets):
        raise ValueError(f"{len(results)} progress results for {len(budgets)} budgets")
    eligible = [i for i, r in enumerate(results) if all(p >= 0 for p in r.progress)]
    regret = {i: normalized_regret(*token_curve(results[i]), budgets[i]) for i in eligible}
    order = sorted(eligible, key=lambda i: (regret[i], i))
    num_keep = max(1, int(round(keep_fraction * len(order)))) if order else 0
    return order[:num_keep]
