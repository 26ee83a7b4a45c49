"""The MRT trainer: orchestration only (the pieces live in :mod:`mrt_engine.rl`).

One loop, one process by default (rank-aware under ``torchrun``)::

    sample prompts -> generate on the live weights -> grade -> segment / estimate progress
    -> rewards and advantages -> policy update -> log (-> evaluate, checkpoint)

Algorithms (``algo.name``):
- ``grpo``: outcome reward, group-normalised advantages.
- ``length_penalty``: GRPO on ``R - coef * len / max_tokens``.
- ``mrt_scalar``: the paper's MRT-RL: continuations from a random episode prefix,
  ``A = R - mean(R_terminate)``.
- ``mrt_dense``: outcome advantage plus each episode's progress on its tokens (alpha).
- ``star`` / ``mrt_star``: rounds of sampling, filtering (correct / correct and most progress)
  and SFT on the kept traces.

The generator runs the model's own parameter tensors, so each rollout samples from the weights
the last optimizer step wrote (no copy, no sync).
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mrt_engine.rl import dist
from mrt_engine.rl.algorithms import advantages_for
from mrt_engine.rl.branching import estimate_trace_progress
from mrt_engine.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from mrt_engine.rl.config import RL_ALGORITHMS, TrainConfig
from mrt_engine.rl.data import PromptSampler
from mrt_engine.rl.evaluate import evaluate
from mrt_engine.rl.generation import Sampling, make_backend
from mrt_engine.rl.logger import MetricsLogger
from mrt_engine.rl.optim import build_optimizer, build_scheduler
from mrt_engine.rl.rollout import pack, sample_groups, sample_prefix_continuations
from mrt_engine.rl.score_progress import build_score_estimator, score_trace_progress
from mrt_engine.rl.setup import build_model, build_problems, build_template
from mrt_engine.rl.update import batch_log_probs, policy_update, sft_update

__all__ = ["train", "TrainConfig", "TrainResult", "Trainer"]


@dataclass
class TrainResult:
    output_dir: str
    steps: int                                  # last completed step
    checkpoint: str | None                      # last checkpoint written
    history: list[dict] = field(default_factory=list)  # per-step metrics of this process's run
    eval_before: dict | None = None
    eval_after: dict | None = None


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
        dist.init_from_env()
        self.cfg = cfg
        self.rank = dist.rank()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        if model is None:
            model, tokenizer = build_model(cfg.model, seed=cfg.seed)
        self.model, self.tok = model, tokenizer
        self.device = self.model.get_input_embeddings().weight.device
        self.train_problems, self.eval_problems = build_problems(cfg.data)
        self.template = build_template(cfg.algo.template)
        self.backend = make_backend(cfg.rollout.backend, self.model, self.tok)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.steps)
        self.sampler = PromptSampler(self.train_problems, seed=cfg.seed)
        self.ref_model = None
        if cfg.algo.kl_coef > 0:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.progress_scorer = None
        if cfg.algo.progress_estimator == "score":
            from mrt_engine.integrations._common import ProgressScorer

            estimator = build_score_estimator(
                self.model, self.tok, template=self.template, scheme=cfg.algo.scheme,
                segment_options=cfg.algo.segment_options, max_cuts=cfg.algo.max_cuts,
                generator=getattr(self.backend, "generator", None))
            self.progress_scorer = ProgressScorer(self.model, self.tok, estimator=estimator)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        self.step = 0
        self.extra: dict = {}

    # -- per-step seeds: every random choice derives from (seed, step, rank), so resume is exact
    def _seed(self, step: int, salt: int = 0) -> int:
        return (self.cfg.seed * 1_000_003 + step * 9_973 + self.rank * 101 + salt) % (2 ** 31)

    def run(self, *, stop_after: int | None = None) -> TrainResult:
        cfg = self.cfg
        ckpt = latest_checkpoint(cfg.output_dir) if cfg.resume else None
        if ckpt is not None:
            state = load_checkpoint(ckpt, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
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
        while self.step < cfg.steps:
            t0 = time.perf_counter()
            problems = dist.shard(self.sampler.next(cfg.prompts_per_step))
            if cfg.algo.name in RL_ALGORITHMS:
                metrics = self.rl_step(problems)
            else:
                metrics = self.star_round(problems)
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            self.backend.weights_updated()
            self.step += 1
            metrics["step_time_s"] = time.perf_counter() - t0
            metrics = dist.mean_metrics(metrics)
            logger.log(self.step, metrics)
            logger.advance(metrics)
            result.history.append({"step": self.step, **metrics})
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps and self.eval_problems:
                logger.log(self.step, self.evaluate(salt=self.step), prefix="eval/")
            last = self.step == cfg.steps or self.step == stop_after
            if last or (cfg.save_every and self.step % cfg.save_every == 0):
                result.checkpoint = str(self.save())
            if stop_after is not None and self.step >= stop_after:
                break
        if self.step == cfg.steps and self.eval_problems:
            result.eval_after = self.evaluate(salt=cfg.steps)
            logger.log(self.step, result.eval_after, prefix="eval/")
        result.steps = self.step
        logger.close()
        return result

    # -- one RL step ---------------------------------------------------------------------------
    def rl_step(self, problems) -> dict:
        cfg, algo, ro = self.cfg, self.cfg.algo, self.cfg.rollout
        sampling = Sampling(max_tokens=ro.max_tokens, temperature=ro.temperature, top_p=ro.top_p,
                            seed=self._seed(self.step))
        t0 = time.perf_counter()
        self.model.eval()
        progress = None
        if algo.name == "mrt_scalar":
            samples = sample_prefix_continuations(
                self.backend, self.tok, problems, sampling=sampling, num_continuations=algo.num_continuations,
                num_terminate=algo.num_terminate, answer_max_tokens=algo.answer_max_tokens, template=self.template,
                scheme=algo.scheme, segment_options=algo.segment_options,
                rng=random.Random(self._seed(self.step, 1)), system=cfg.data.system_prompt)
            group_size = algo.num_continuations
        else:
            samples = sample_groups(self.backend, self.tok, problems, n=ro.group_size, sampling=sampling,
                                    system=cfg.data.system_prompt)
            group_size = ro.group_size
            if algo.name == "mrt_dense":
                progress = self._progress(samples, salt=2)
        gen_time = time.perf_counter() - t0
        batch = pack(samples, self.pad_id)
        advantages, metrics = advantages_for(algo, samples, batch, group_size=group_size,
                                             max_tokens=ro.max_tokens, progress=progress)
        ref_logp = None
        if self.ref_model is not None:
            ref_logp = batch_log_probs(self.ref_model, batch, micro_batch_size=cfg.optim.micro_batch_size,
                                       precision=cfg.precision)
        metrics.update(policy_update(self.model, self.optimizer, batch, advantages, algo=algo, optim=cfg.optim,
                                     max_tokens=ro.max_tokens, precision=cfg.precision, ref_logp=ref_logp))
        num_gen = sum(s.num_completion_tokens for s in samples)
        metrics.update(self._sample_metrics(samples))
        metrics["tokens_per_s"] = num_gen / max(gen_time, 1e-9)
        return metrics

    def _progress(self, samples, *, salt: int):
        """J at each episode cut of every sample, by ``algo.progress_estimator``."""
        algo, ro = self.cfg.algo, self.cfg.rollout
        if self.progress_scorer is not None:
            return score_trace_progress(self.progress_scorer, self.tok, samples)
        return estimate_trace_progress(
            self.backend, self.tok, samples, template=self.template, scheme=algo.scheme,
            segment_options=algo.segment_options, max_cuts=algo.max_cuts, num_branches=algo.num_branches,
            answer_max_tokens=algo.answer_max_tokens, temperature=ro.temperature, top_p=ro.top_p,
            seed=self._seed(self.step, salt))

    @staticmethod
    def _sample_metrics(samples) -> dict:
        n = len(samples)
        return {"reward": sum(s.reward for s in samples) / n,
                "accuracy": sum(s.reward >= 1.0 for s in samples) / n,
                "completion_tokens": sum(s.num_completion_tokens for s in samples) / n,
                "truncated": sum(s.finish_reason == "length" for s in samples) / n}

    # -- one STaR round ------------------------------------------------------------------------
    def star_round(self, problems) -> dict:
        """Sample, keep correct traces (star) or the correct ones with the most progress
        per episode (mrt_star), then SFT on them. Departure from the paper: MRT-STaR ranks by
        mean episode progress among correct traces; the paper's exact filter is not given."""
        cfg, algo, ro = self.cfg, self.cfg.algo, self.cfg.rollout
        sampling = Sampling(max_tokens=ro.max_tokens, temperature=ro.temperature, top_p=ro.top_p,
                            seed=self._seed(self.step))
        t0 = time.perf_counter()
        self.model.eval()
        samples = sample_groups(self.backend, self.tok, problems, n=algo.star_num_samples, sampling=sampling,
                                system=cfg.data.system_prompt)
        gen_time = time.perf_counter() - t0
        kept = [s for s in samples if s.reward >= 1.0]
        metrics = self._sample_metrics(samples)
        if algo.name == "mrt_star" and kept:
            progress = self._progress(kept, salt=2)
            scores = [float(p.progress.mean()) for p in progress]
            order = sorted(range(len(kept)), key=lambda i: -scores[i])
            num_keep = max(1, int(round(algo.star_keep_fraction * len(kept))))
            metrics["progress_mean"] = sum(scores) / len(scores)
            kept = [kept[i] for i in order[:num_keep]]
        metrics["num_kept"] = len(kept)
        losses = []
        rng = random.Random(self._seed(self.step, 3))
        for _ in range(algo.star_epochs if kept else 0):
            rng.shuffle(kept)
            for i in range(0, len(kept), cfg.optim.micro_batch_size):
                chunk = kept[i:i + cfg.optim.micro_batch_size]
                out = sft_update(self.model, self.optimizer, pack(chunk, self.pad_id),
                                 micro_batch_size=cfg.optim.micro_batch_size, grad_clip=cfg.optim.grad_clip,
                                 precision=cfg.precision)
                losses.append(out["loss"])
        metrics["loss"] = sum(losses) / len(losses) if losses else 0.0
        metrics["tokens_per_s"] = sum(s.num_completion_tokens for s in samples) / max(gen_time, 1e-9)
        return metrics

    # -- evaluation and checkpoints ------------------------------------------------------------
    def evaluate(self, *, salt: int) -> dict:
        algo, ro = self.cfg.algo, self.cfg.rollout
        usable = len(self.eval_problems) // dist.world_size() * dist.world_size()  # equal shares per rank
        self.model.eval()
        return evaluate(self.backend, self.tok, dist.shard(self.eval_problems[:usable]),
                        max_tokens=ro.max_tokens, temperature=ro.eval_temperature, template=self.template,
                        scheme=algo.scheme, segment_options=algo.segment_options, max_cuts=algo.max_cuts,
                        num_branches=algo.num_branches, answer_max_tokens=algo.answer_max_tokens,
                        branch_temperature=ro.temperature, seed=self._seed(10_000 + salt),
                        system=self.cfg.data.system_prompt)

    def save(self) -> Path | None:
        if self.rank != 0:
            return None
        return save_checkpoint(self.cfg.output_dir, self.step, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, cursor=self.sampler.state(), extra=self.extra)
