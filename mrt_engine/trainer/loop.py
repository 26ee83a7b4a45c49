"""The MRT trainer loop: orchestration only (the method lives in :mod:`mrt_engine.rl`).

One loop, one process by default (rank-aware under ``torchrun``)::

    sample prompts -> algorithm.rollout (generate on the live weights, grade, estimate J)
    -> algorithm.credit (rewards and advantages, or the traces to fine-tune on)
    -> update -> log (-> evaluate, checkpoint)

The algorithms (grpo, length_penalty, mrt_scalar, mrt_dense, star, mrt_star) are small objects
in :mod:`mrt_engine.rl.algorithms`; J at episode cuts comes from the one
:class:`mrt_engine.progress.ProgressEstimator`, configured by ``algo.progress``. The generator
runs the model's own parameter tensors, so each rollout samples from the weights the last
optimizer step wrote (no copy, no sync). Every step's metrics carry its phase timings
(``time/generation_s``, ``time/progress_s``, ``time/credit_s``, ``time/update_s``).

Under ``torchrun`` (``parallel.strategy: ddp | fsdp2``, see :mod:`mrt_engine.trainer.dist`) each
rank takes its share of the step's prompts; every random choice derives from (seed, step) and
the global sample index, not the rank, so N processes reproduce one process's run.
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mrt_engine.config import TrainConfig
from mrt_engine.trainer import dist
from mrt_engine.rl.algorithms import Credit, StepContext, build_algorithm, check_config
from mrt_engine.trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from mrt_engine.trainer.dist_checkpoint import load_distributed, save_distributed
from mrt_engine.trainer.data import PromptSampler
from mrt_engine.trainer.evaluate import evaluate
from mrt_engine.rl.backends import make_backend
from mrt_engine.trainer.logger import MetricsLogger
from mrt_engine.trainer.optim import TokenBudgetSchedule, build_optimizer, build_scheduler
from mrt_engine.rl.rollout_progress import build_estimator
from mrt_engine.trainer.setup import build_model, build_problems, warm_start_problems
from mrt_engine.trainer.update import batch_log_probs, plan_micro_batches, policy_update, sft_epochs

__all__ = ["train", "TrainConfig", "TrainResult", "Trainer"]


@dataclass
class TrainResult:
    output_dir: str
    steps: int                                  # last completed step
    checkpoint: str | None                      # last checkpoint written
    history: list[dict] = field(default_factory=list)  # per-step metrics of this process's run
    eval_before: dict | None = None
    eval_after: dict | None = None
    evals: list[dict] = field(default_factory=list)    # this run's held-out evaluations: step, train_tokens, metrics


def train(config: TrainConfig | dict | str, *, stop_after: int | None = None, model=None, tokenizer=None) -> TrainResult:
    """Run training from a :class:`TrainConfig` (or a dict, or a YAML path).

    ``stop_after``: end after that step as if killed there (after its checkpoint), for resume
    tests. ``model``/``tokenizer``: train this model instead of building one from the config.
    """
    if isinstance(config, (str, Path)):
        config = TrainConfig.from_yaml(config)
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    return Trainer(config, model=model, tokenizer=tokenizer).run(stop_after=stop_after)


class Trainer:
    def __init__(self, cfg: TrainConfig, *, model=None, tokenizer=None):
        check_config(cfg)  # the algorithm's name and needs, before anything is built
        dist.init_from_env(timeout_s=cfg.parallel.timeout_s)
        self.cfg = cfg
        self.rank = dist.rank()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        if model is None:
            model, tokenizer = build_model(cfg.model, seed=cfg.seed)
        self.model, self.tok = model, tokenizer
        warm = warm_start_problems(cfg.model.name) if cfg.data.exclude_warm_start and cfg.data.num_eval else []
        self.train_problems, self.eval_problems = build_problems(cfg.data, exclude=warm)
        self.backend = make_backend(cfg.rollout, self.model, self.tok)
        self.estimator = build_estimator(self.model, self.tok, cfg.algo.progress, self.backend)
        self.algorithm = build_algorithm(cfg)
        self.ref_policy = None
        if cfg.algo.kl_coef > 0:
            self.ref_policy = dist.PolicyLogProbs(copy.deepcopy(self.model).eval().requires_grad_(False))
        # The module the update calls (DDP-wrapped or FSDP2-sharded); the optimizer comes after.
        self.policy = dist.wrap_policy(self.model, cfg.parallel.strategy)
        self.optimizer = build_optimizer(self.policy, cfg.optim)
        # over the token budget when the run stops on tokens (equal tokens, equal rates)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.steps, total_tokens=cfg.max_train_tokens)
        self.sampler = PromptSampler(self.train_problems, seed=cfg.seed)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        self.step = 0
        self.extra: dict = {}

    # -- per-step seeds: every random choice derives from (seed, step), so resume is exact; the
    # engine keys each sample's draws by its own seed and index, not by the batch it is in
    def _seed(self, step: int, salt: int = 0) -> int:
        return (self.cfg.seed * 1_000_003 + step * 9_973 + salt) % (2 ** 31)

    def run(self, *, stop_after: int | None = None) -> TrainResult:
        cfg = self.cfg
        ckpt = latest_checkpoint(cfg.output_dir) if cfg.resume else None
        if ckpt is not None:
            if cfg.parallel.strategy == "none":
                state = load_checkpoint(ckpt, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
            else:
                state = load_distributed(ckpt, policy=self.policy, optimizer=self.optimizer, scheduler=self.scheduler)
            self.sampler.load_state(state["cursor"])
            self.step, self.extra = state["step"], state["extra"]
            self.backend.weights_updated()
        logger = MetricsLogger(cfg.output_dir, total_steps=cfg.steps, initial_step=self.step, rank=self.rank,
                               tensorboard=cfg.tensorboard, progress_bar=cfg.progress_bar)
        result = TrainResult(cfg.output_dir, self.step, str(ckpt) if ckpt else None)
        if self.step == 0 and self.eval_problems:
            self.extra["eval_before"] = self.evaluate(salt=0)
            logger.log(0, self.extra["eval_before"], prefix="eval/")
        result.eval_before = self.extra.get("eval_before")
        if result.eval_before is not None and self.step == 0:
            result.evals.append({"step": 0, "train_tokens": 0, **result.eval_before})
        while self.step < cfg.steps and not self.budget_spent():
            t0 = time.perf_counter()
            metrics = self.train_step(dist.shard(self.sampler.next(cfg.prompts_per_step)))
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            self.backend.weights_updated()
            self.step += 1
            metrics["step_time_s"] = time.perf_counter() - t0
            metrics = dist.mean_metrics(metrics)
            self.extra["train_tokens"] = self.extra.get("train_tokens", 0) + round(metrics["train_tokens"] * dist.world_size())
            metrics["train_tokens_total"] = self.extra["train_tokens"]
            logger.log(self.step, metrics)
            logger.advance(metrics)
            result.history.append({"step": self.step, **metrics})
            if (cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps and self.eval_problems
                    and not self.budget_spent()):
                self.log_eval(logger, result, salt=self.step)
            last = self.step == cfg.steps or self.step == stop_after or self.budget_spent()
            if last or (cfg.save_every and self.step % cfg.save_every == 0):
                result.checkpoint = str(self.save())
            if stop_after is not None and self.step >= stop_after:
                break
        finished = self.step == cfg.steps or self.budget_spent()
        if finished and self.eval_problems:
            result.eval_after = self.log_eval(logger, result, salt=cfg.steps)
        result.steps = self.step
        logger.close()
        return result

    def log_eval(self, logger, result: TrainResult, *, salt: int) -> dict:
        metrics = self.evaluate(salt=salt)
        logger.log(self.step, metrics, prefix="eval/")
        result.evals.append({"step": self.step, "train_tokens": self.extra.get("train_tokens", 0), **metrics})
        return metrics

    def budget_spent(self) -> bool:
        budget = self.cfg.max_train_tokens
        return budget is not None and self.extra.get("train_tokens", 0) >= budget

    # -- one step: rollout, credit, update ------------------------------------------------------
    def train_step(self, problems) -> dict:
        ctx = StepContext(self.cfg, self.backend, self.tok, self.estimator, self.pad_id,
                          seed=lambda salt: self._seed(self.step, salt), rank=self.rank)
        t0 = time.perf_counter()
        self.model.eval()
        with dist.full_weights(self.policy):
            rollout = self.algorithm.rollout(ctx, problems)
        t1 = time.perf_counter()
        credit = self.algorithm.credit(ctx, rollout)
        if isinstance(self.scheduler, TokenBudgetSchedule):  # this step's rate, from the tokens it spends
            local = rollout.metrics.get("rollout_tokens", sum(s.num_completion_tokens for s in rollout.samples))
            step_tokens = dist.mean_metrics({"tokens": float(local)})["tokens"] * dist.world_size()
            self.scheduler.begin_step(self.extra.get("train_tokens", 0), step_tokens)
        t2 = time.perf_counter()
        metrics = {**rollout.metrics, **credit.metrics, **self.update(credit, ctx)}
        t3 = time.perf_counter()
        samples = rollout.samples
        num = len(samples)
        # tokens generated for this step's training data: the samples, plus what an algorithm
        # generated and cut (mrt_scalar's prefix rollouts), not the estimator's forced answers
        metrics.update({"train_tokens": metrics.pop("rollout_tokens", sum(s.num_completion_tokens for s in samples)),
                        "reward": sum(s.reward for s in samples) / num,
                        "accuracy": sum(s.reward >= 1.0 for s in samples) / num,
                        "completion_tokens": sum(s.num_completion_tokens for s in samples) / num,
                        "truncated": sum(s.finish_reason == "length" for s in samples) / num})
        progress_s = ctx.timings.get("progress", 0.0)
        generation_s = (t1 - t0) - progress_s
        metrics.update({"time/generation_s": generation_s, "time/progress_s": progress_s,
                        "time/credit_s": t2 - t1, "time/update_s": t3 - t2})
        metrics["tokens_per_s"] = sum(s.num_completion_tokens for s in samples) / max(generation_s, 1e-9)
        return metrics

    def update(self, credit: Credit, ctx: StepContext) -> dict:
        cfg = self.cfg
        if credit.sft_samples is not None:  # STaR: supervised passes over the kept traces
            return sft_epochs(self.policy, self.optimizer, credit.sft_samples, epochs=cfg.algo.star_epochs,
                              pad_id=self.pad_id, rng=random.Random(ctx.seed(3)),
                              micro_batch_size=cfg.optim.micro_batch_size, grad_clip=cfg.optim.grad_clip,
                              precision=cfg.precision)
        # one plan for the reference, old-policy and gradient passes (optim.packing: tree | padded)
        micro = plan_micro_batches(credit.batch, micro_batch_size=cfg.optim.micro_batch_size,
                                   packing=cfg.optim.packing, micro_batch_tokens=cfg.optim.micro_batch_tokens,
                                   device=next(self.model.parameters()).device)
        ref_logp = None
        if self.ref_policy is not None:
            ref_logp = batch_log_probs(self.ref_policy, credit.batch, micro_batch_size=cfg.optim.micro_batch_size,
                                       precision=cfg.precision, micro_batches=micro)
        return policy_update(self.policy, self.optimizer, credit.batch, credit.advantages, algo=cfg.algo,
                             optim=cfg.optim, max_tokens=cfg.rollout.max_tokens, precision=cfg.precision,
                             ref_logp=ref_logp, micro_batches=micro)

    # -- evaluation and checkpoints ------------------------------------------------------------
    def evaluate(self, *, salt: int) -> dict:
        ro = self.cfg.rollout
        usable = len(self.eval_problems) // dist.world_size() * dist.world_size()  # equal shares per rank
        share = dist.shard(self.eval_problems[:usable])
        self.model.eval()
        with dist.full_weights(self.policy):
            return evaluate(self.backend, self.tok, share, estimator=self.estimator, max_tokens=ro.max_tokens,
                            temperature=ro.eval_temperature, seed=self._seed(10_000 + salt),
                            system=self.cfg.data.system_prompt, first_index=self.rank * len(share))

    def save(self) -> Path | None:
        state = dict(optimizer=self.optimizer, scheduler=self.scheduler, cursor=self.sampler.state(), extra=self.extra)
        if self.cfg.parallel.strategy != "none":  # every rank writes its shards
            return save_distributed(self.cfg.output_dir, self.step, policy=self.policy, **state)
        if self.rank != 0:
            return None
        return save_checkpoint(self.cfg.output_dir, self.step, model=self.model, **state)
