"""Stage 5: one whole MRT training step (``mrt_dense``), engine backend vs HF backend, and
the share of the step's time each phase takes."""
from __future__ import annotations

import os
import tempfile
import time

from bench.common.models import RANDOM_MODELS
from bench.common.results import OK, Result
from bench.common.timing import synchronize
from mrt_engine.tasks import TASKS
from mrt_engine.trainer import TrainConfig, Trainer

from .base import Context, measure, reset_prefix_cache

# Phases of one step as the trainer reports them in its metrics (mrt_engine.train), and the name each is shown under.
STEP_PHASES = (("time/generation_s", "generation"), ("time/progress_s", "progress"), ("time/credit_s", "advantages"),
               ("time/update_s", "policy update"))


def timed_step(ctx: Context, trainer: Trainer, num_prompts: int) -> tuple[dict, float]:
    """One training step on the next ``num_prompts`` prompts: (its metrics, its wall seconds,
    device work included); the engine's prefix cache is stale after the update, so it is dropped."""
    synchronize(ctx.device)
    t0 = time.perf_counter()
    metrics = trainer.train_step(trainer.sampler.next(num_prompts))
    trainer.backend.weights_updated()
    synchronize(ctx.device)
    return metrics, time.perf_counter() - t0


def step_config(ctx: Context, backend: str, out_dir: str):
    w = ctx.workload
    task = "chain" if "chain" in TASKS else sorted(TASKS)[0]  # synthetic multi-step arithmetic
    progress = dict(max_cuts=w.step_max_cuts, num_branches=w.step_num_branches, max_answer_tokens=w.step_answer_tokens)
    if ctx.model_name in RANDOM_MODELS:  # random text has no "Wait": cut the rollouts by token windows
        progress.update(scheme="tokens", segment_options=dict(window=max(1, w.step_max_tokens // (w.step_max_cuts + 1))))
    return TrainConfig.from_dict(dict(
        model=dict(name=ctx.model_name if ctx.model_name in ("tiny", "smollm2-135m") else "tiny"),
        data=dict(task=task, num_train=max(16, 4 * w.step_num_prompts), num_eval=0),
        rollout=dict(group_size=w.step_n, max_tokens=w.step_max_tokens, temperature=0.9, backend=backend),
        algo=dict(name="mrt_dense", progress=progress),
        steps=1000, prompts_per_step=w.step_num_prompts, output_dir=out_dir, tensorboard=False, progress_bar=False,
        precision="no"))


def stage_step(ctx: Context) -> list[Result]:
    stage = ctx.label("step")
    w = ctx.workload
    work = (f"mrt_dense: {w.step_num_prompts} prompts x {w.step_n} rollouts x {w.step_max_tokens} tokens, "
            f"<= {w.step_max_cuts} cuts x {w.step_num_branches} branches x {w.step_answer_tokens} tokens")
    tmp = tempfile.mkdtemp(prefix="mrt-bench-step-")
    trainers = {}
    for method, backend in (("engine backend", "engine"), ("HF backend", "hf")):
        trainers[method] = Trainer(step_config(ctx, backend, os.path.join(tmp, backend)), model=ctx.model,
                                   tokenizer=ctx.tokenizer)
    phases: dict[str, list[dict[str, float]]] = {m: [] for m in trainers}
    tokens: dict[str, list[int]] = {m: [] for m in trainers}

    def run(method):
        trainer = trainers[method]

        def call():
            metrics, seconds = timed_step(ctx, trainer, w.step_num_prompts)
            sink = {name: metrics.get(key, 0.0) for key, name in STEP_PHASES}
            sink["total"] = seconds
            phases[method].append(sink)
            tokens[method].append(round(metrics.get("completion_tokens", 0) * w.step_num_prompts * w.step_n))
        return call

    cases = {"engine backend": ("ours", run("engine backend")), "HF backend": ("baseline", run("HF backend"))}
    meta = {m: dict(num_episodes=w.step_num_prompts * w.step_n, workload=work, compare="time") for m in cases}
    # KV cached before an optimizer step is stale after it: start every step with an empty cache.
    engine_gen = getattr(trainers["engine backend"].backend, "generator", None)
    before = {"engine backend": lambda: reset_prefix_cache(engine_gen)}
    ctx.bar.set_description(stage)
    results = measure(ctx, stage, cases, meta, before)
    for r in results:
        if tokens[r.method]:
            r.num_tokens = int(sorted(tokens[r.method])[len(tokens[r.method]) // 2])
        if r.status == OK:
            _note_shares(ctx, r, phases[r.method][ctx.warmup:] or phases[r.method])
    return results


def _note_shares(ctx: Context, r: Result, rounds: list[dict[str, float]]) -> None:
    """Median seconds per phase over the timed rounds: into ``r.note`` as shares of the step,
    and for our method into ``ctx.step_shares`` / ``ctx.step_phase_s``."""
    if not rounds:
        return
    med = {k: sorted(d.get(k, 0.0) for d in rounds)[len(rounds) // 2] for k in rounds[0]}
    shares = {name: med.get(name, 0.0) / med["total"] for _, name in STEP_PHASES if name in med}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    r.note = "; ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
    if r.role == "ours":
        ctx.step_shares[ctx.model_name] = shares
        phase_s = {k: med.get(k, 0.0) for k in shares if k != "other"}
        phase_s["other"] = max(0.0, med["total"] - sum(phase_s.values()))
        ctx.step_phase_s[ctx.model_name] = phase_s


def share_rows(shares: dict[str, dict[str, float]], phase_s: dict[str, dict[str, float]]) -> list[Result]:
    """The share of an MRT step each phase takes, as CSV rows (role "share", no ratios)."""
    return [Result(stage=f"step share [{model}]", method=phase, role="share", times_s=[phase_s[model][phase]],
                   note=f"{100 * v:.1f}% of the step (engine backend)")
            for model, sh in shares.items() for phase, v in sh.items()]
