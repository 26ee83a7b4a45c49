"""``ProgressEstimator``: J at every episode boundary of a trace, and each episode's progress."""
from __future__ import annotations

import math
import sys
from typing import Callable, Sequence

import torch

from . import _compat
from .config import EstimatorConfig
from .inputs import TraceInputs, check_lengths, prepare
from .result import ProgressResult, progress_from_j
from .sample import mean_and_stderr, sample_fast, sample_naive
from .score import score_fast, score_naive


class ProgressEstimator:
    """Estimate J (success probability under forced termination) at every cut of a trace.

    ``ProgressEstimator(model, tokenizer, mode="score", method="fast", ...)``; then
    ``estimate(problems, traces, answers) -> list[ProgressResult]`` (one per trace).

    Args:
        model: a transformers causal LM (Llama / Mistral / Qwen2 / Qwen3 for method="fast";
            any for method="naive"); or ``None`` when ``generator`` is given. The estimator
            holds references to its parameters (no copy): a trainer's optimizer step is seen
            by the next call.
        tokenizer: the model's tokenizer.
        generator: an existing ``mrt_engine.engine.Generator`` to run sample mode on (its
            ``forward`` is reused for score mode too). Built lazily from the model otherwise.
        template: a ``mrt_engine.prompts.TerminationTemplate`` or its name. Default: the R1
            text of mrt.md for sample mode (``"r1"``) and its scoring form ending in
            ``\\boxed{`` for score mode (``"r1_scoring"``); ``"boxed"`` suits models without
            a think tag. Score mode needs a template that ends where the answer begins.
        segmenter: ``callable(text) -> list[Episode]``; default
            ``mrt_engine.episodes.segment(text, scheme, tokenizer=tokenizer, **segment_options)``.
        **options: fields of ``EstimatorConfig`` (mode, method, scheme, num_samples, ...).

    Score mode is our addition to the paper (mrt.md section 3): J is the exact probability
    that the forced answer is the reference string (several accepted forms are summed; the
    closing brace makes them disjoint events). It is deterministic and a lower bound on the
    sampled J, which also counts equivalent strings the grader accepts.
    """

    def __init__(self, model=None, tokenizer=None, *, generator=None, template=None,
                 segmenter: Callable | None = None, config: EstimatorConfig | None = None, **options):
        if tokenizer is None:
            raise ValueError("tokenizer is required")
        if model is None and generator is None:
            raise ValueError("give a model or an existing Generator")
        self.config = config if config is not None else EstimatorConfig(**options)
        if config is not None and options:
            raise ValueError("pass either config= or keyword options, not both")
        if model is not None and generator is not None and generator.forward.model is not model:
            raise ValueError("the generator runs a different model than the one given; pass one or the other")
        self.model = model if model is not None else generator.forward.model
        self.tokenizer = tokenizer
        self.generator = generator
        self.template = _compat.prompts().get_template(template, scoring=self.config.mode == "score")
        self.segmenter = segmenter
        self._forward = None

    # -- pieces shared with the trainer ------------------------------------------------------
    @property
    def forward(self):
        """The ``DecoderForward`` over the model's own parameters (the generator's when given)."""
        if self._forward is None:
            if self.generator is not None:
                self._forward = self.generator.forward
            else:
                from mrt_engine.engine.forward import DecoderForward

                self._forward = DecoderForward(self.model)
        return self._forward

    def _get_generator(self):
        if self.generator is None:
            try:
                from mrt_engine.engine import Generator
            except ImportError as exc:
                raise ImportError("mode='sample', method='fast' needs mrt_engine.engine.Generator, which failed "
                                  f"to import ({exc}); method='naive' needs only transformers") from exc
            self.generator = Generator(self.model, self.tokenizer)
        return self.generator

    def _max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def prepare(self, problems: Sequence[str], traces: Sequence[str], answers: Sequence) -> list[TraceInputs]:
        """Tokenize, segment and check every item (raises on bad input before any compute)."""
        check_lengths(problems, traces, answers)
        return [prepare(i, p, t, a, tokenizer=self.tokenizer, template=self.template, config=self.config,
                        segmenter=self.segmenter, max_positions=self._max_positions())
                for i, (p, t, a) in enumerate(zip(problems, traces, answers))]

    # -- main entry ----------------------------------------------------------------------------
    @torch.no_grad()
    def estimate(self, problems: Sequence[str], traces: Sequence[str], answers: Sequence) -> list[ProgressResult]:
        """One ``ProgressResult`` per trace, in input order.

        ``answers[i]`` is the reference answer string (what goes inside ``\\boxed{}``), or a
        list of accepted forms of it.
        """
        items = self.prepare(problems, traces, answers)
        cfg = self.config
        total = sum(it.num_cuts for it in items)
        bar = self._bar(total)
        tick = bar.update if bar is not None else None
        try:
            if cfg.mode == "score":
                if cfg.method == "fast":
                    logps = score_fast(self.forward, items, max_tokens=cfg.max_batch_tokens, on_cuts=tick)
                else:
                    logps = score_naive(self.model, items, on_cuts=tick)
                return [self._score_result(it, lp) for it, lp in zip(items, logps)]
            stop_ids = self._stop_ids()
            if cfg.method == "fast":
                per = sample_fast(self._get_generator(), self.tokenizer, items, config=cfg, stop_ids=stop_ids, on_cuts=tick)
            else:
                per = sample_naive(self.model, self.tokenizer, items, config=cfg, stop_ids=stop_ids, on_cuts=tick)
            return [self._sample_result(it, p) for it, p in zip(items, per)]
        finally:
            if bar is not None:
                bar.close()

    # -- assembly --------------------------------------------------------------------------------
    def _base_tokens(self, it: TraceInputs) -> list[int]:
        return [it.context_len(c) + len(it.suffix_ids[c]) for c in range(it.num_cuts)]

    def _score_result(self, it: TraceInputs, logps: list[list[float]]) -> ProgressResult:
        log_j = [_logsumexp(forms) for forms in logps]
        j = [math.exp(x) for x in log_j]
        answer_len = sum(len(a) for a in it.answer_ids) / len(it.answer_ids)
        return ProgressResult(
            episodes=it.episodes, cut_chars=it.cut_chars, cut_tokens=it.cut_tokens, j=j, j_stderr=[0.0] * len(j),
            progress=progress_from_j(j), tokens_at_cut=[t + answer_len for t in self._base_tokens(it)],
            outcome=it.outcome, natural_end_included=it.natural_end_included, mode="score",
            method=self.config.method, log_j=log_j, answer_tokens=[answer_len] * len(j))

    def _sample_result(self, it: TraceInputs, per_cut) -> ProgressResult:
        j, err, samples, scores, answers, ans_len = [], [], [], [], [], []
        for texts, sc, extracted, mean_len in per_cut:
            m, e = mean_and_stderr(sc)
            j.append(m)
            err.append(e)
            samples.append(texts)
            scores.append(sc)
            answers.append(extracted)
            ans_len.append(mean_len)
        return ProgressResult(
            episodes=it.episodes, cut_chars=it.cut_chars, cut_tokens=it.cut_tokens, j=j, j_stderr=err,
            progress=progress_from_j(j), tokens_at_cut=[t + a for t, a in zip(self._base_tokens(it), ans_len)],
            outcome=it.outcome, natural_end_included=it.natural_end_included, mode="sample",
            method=self.config.method, samples=samples, scores=scores, answers=answers,
            answer_tokens=ans_len)

    def _stop_ids(self) -> list[int]:
        eos = self.tokenizer.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return [int(i) for i in ids if i is not None]

    def _bar(self, total: int):
        show = self.config.show_progress
        if show is None:
            show = total >= 64 and sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"progress ({self.config.mode}, {self.config.method})", unit="cut")


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(x - m) for x in xs))
