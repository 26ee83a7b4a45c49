"""J at the episode cuts of the trainer's own rollouts, from the one estimator.

The trainer hands :class:`mrt_engine.progress.ProgressEstimator` each sample as token ids
(prompt = the sample's ``context_ids`` used as given, trace = the completion without its
trailing EOS), so the estimator segments exactly the ids the policy generated and its
``cut_tokens`` are offsets into the completion. With ``natural_end="outcome"`` (the trainer's
default) J at the end of the trace is the sample's graded reward, and only the forced cuts
are branched: the dense variant of docs/method.md section 5.
"""
from __future__ import annotations

import dataclasses
import warnings

from mrt_engine.config import EstimatorConfig
from mrt_engine.episodes import SingleEpisodeWarning
from mrt_engine.progress import ProgressEstimator, ProgressResult, progress_reliability, reference_answer
from mrt_engine.progress.sample import cut_seed
from mrt_engine.rl.rollout import Sample, strip_eos, task_verifier


def build_estimator(model, tokenizer, config: EstimatorConfig, backend) -> ProgressEstimator:
    """The estimator on the live policy, branching on the rollout engine when there is one.

    Sample mode needs a generator whose prefix cache the trainer resets after every update:
    the engine backend's own. With the ``hf`` backend there is none, so sample mode falls back
    to ``method="naive"`` (plain ``generate``) rather than a second engine with a stale cache.
    """
    generator = getattr(backend, "generator", None)
    if generator is None and config.mode == "sample" and config.method == "fast":
        config = dataclasses.replace(config, method="naive")
    return ProgressEstimator(model, tokenizer, generator=generator, config=config)


def estimate_progress(estimator: ProgressEstimator, tokenizer, samples: list[Sample], *,
                      seed: int | None = None, first_index: int = 0) -> list[ProgressResult]:
    """One :class:`ProgressResult` per sample (graded samples: ``reward`` is their outcome).

    With ``seed``, sample ``i`` draws its branches from ``(seed, first_index + i)``: under
    ``torchrun`` each rank passes the global index of its first sample, so every trace gets the
    same branches as in one process over the whole batch.
    """
    prompts, traces, answers = [], [], []
    for i, s in enumerate(samples):
        answer = getattr(s.problem, "answer", None)
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise ValueError(f"sample {i}: progress needs the problem's reference answer, but problem "
                             f"{getattr(s.problem, 'problem', s.problem)!r:.80} has none; give every problem an "
                             "answer (data.answer_field)")
        prompts.append([int(t) for t in s.context_ids])
        traces.append([int(t) for t in strip_eos(s.completion_ids, tokenizer)])
        answers.append(reference_answer(answer, index=i))
    seeds = None if seed is None else [cut_seed(seed, first_index + i, 0) for i in range(len(samples))]
    with warnings.catch_warnings():
        # A rollout with one episode is an ordinary training sample, not a user's trace to fix:
        # the segmenter's per-trace hint would print for thousands of rollouts.
        warnings.simplefilter("ignore", SingleEpisodeWarning)
        return estimator.estimate(prompts, traces, answers, outcomes=[s.reward for s in samples],
                                  verifiers=[task_verifier(s.problem) for s in samples], seed=seeds)


def reliability_metrics(results: list[ProgressResult], *, mode: str, num_branches: int) -> dict:
    """This step's split-half reliability of progress over the episodes between two forced cuts
    (an episode ending in the trace's own outcome never counts): ``progress/split_half_r`` (the
    raw correlation of the two halves' progress), ``progress/spearman_brown`` (``2r / (1 + r)``:
    the reliability of the full ``num_branches`` estimate), ``progress/signal_sd`` and
    ``progress/noise_sd`` (the noise of one half), ``progress/reliability_episodes`` (how many
    episodes the numbers are over).

    The keys depend on the config only (sample mode needs ``num_branches >= 2``; score mode is
    exact: 1 and 0), so every step and every rank logs the same ones (``dist.mean_metrics``
    reduces them key by key); a step with fewer than 3 episodes logs NaN (null in the JSONL).
    Under ``torchrun`` each rank measures its own samples and the logged value is the ranks' mean.
    """
    if mode == "sample" and num_branches < 2:
        return {}
    rel = progress_reliability(results)
    return {"progress/split_half_r": rel.split_half_r, "progress/spearman_brown": rel.spearman_brown,
            "progress/signal_sd": rel.signal_sd, "progress/noise_sd": rel.noise_sd,
            "progress/reliability_episodes": float(rel.num_episodes)}


def episode_token_spans(result: ProgressResult, num_completion_tokens: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each episode in the sample's completion tokens.

    The last episode is extended over the trailing EOS (and anything the estimator did not
    segment, e.g. text after ``</think>``), so every trained token carries its episode's
    progress. A trace with no tokens has no episode.
    """
    cuts = [int(c) for c in result.cut_tokens]
    spans = list(zip(cuts[:-1], cuts[1:]))
    if spans:
        spans[-1] = (spans[-1][0], num_completion_tokens)
    return spans
