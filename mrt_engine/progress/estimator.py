"""``ProgressEstimator``: J at every episode boundary of a trace, and each episode's progress."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from typing import Callable, Sequence

import torch

from mrt_engine.config import EstimatorConfig
from mrt_engine.prompts import get_template
from mrt_engine.threads import thread_count
from .inputs import TraceInputs, check_lengths, prepare
from .result import ProgressResult, progress_from_j
from .sample import mean_and_stderr, sample_fast, sample_naive
from .score import score_fast, score_naive
from mrt_engine.engine.forward import DecoderForward
from mrt_engine.engine import Generator


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
        template: a ``mrt_engine.prompts.TerminationTemplate``, its name or its fields (a
            dict); overrides ``config.template``. Default: the R1
            text of docs/method.md for sample mode (``"r1"``) and its scoring form ending in
            ``\\boxed{`` for score mode (``"r1_scoring"``); ``"boxed"`` suits models without
            a think tag. Score mode needs a template that ends where the answer begins.
        segmenter: ``callable(text) -> list[Episode]``; default
            ``mrt_engine.episodes.segment(text, scheme, tokenizer=tokenizer, **segment_options)``.
        config / **options: an ``EstimatorConfig``, or its fields as keywords (mode, method,
            scheme, max_cuts, num_branches, natural_end, ...).

    Score mode is our addition to the paper (docs/method.md section 3): J is the exact probability
    that the forced answer is the reference string (several accepted forms are summed; the
    closing brace makes them disjoint events). It is deterministic and a lower bound on the
    sampled J, which also counts equivalent strings the grader accepts.

    ``natural_end="outcome"`` is how a trainer uses it: J at the end of the trace is the
    trace's own graded outcome (passed as ``outcomes=``, or graded here), so only the forced
    cuts are branched. The paper instead samples answers after the natural close there.
    """

    def __init__(self, model=None, tokenizer=None, *, generator=None, template=None,
                 segmenter: Callable | None = None, config: EstimatorConfig | None = None, **options):
        if tokenizer is None:
            raise ValueError("tokenizer is required")
        if model is None and generator is None:
            raise ValueError("give a model or an existing Generator")
        if config is not None and options:
            raise ValueError("pass either config= or keyword options, not both")
        if "num_samples" in options:
            raise TypeError("ProgressEstimator: 'num_samples' was renamed 'num_branches' (forced answers per cut)")
        self.config = config if config is not None else EstimatorConfig(**options)
        if self.config.temperature is None or self.config.top_p is None:
            raise ValueError("EstimatorConfig.temperature / top_p are None (inherit); set them, or build the "
                             "config through TrainConfig, which fills them from rollout")
        if model is not None and generator is not None and generator.forward.model is not model:
            raise ValueError("the generator runs a different model than the one given; pass one or the other")
        self.model = model if model is not None else generator.forward.model
        self.tokenizer = tokenizer
        self.generator = generator
        template = template if template is not None else self.config.template
        self.template = get_template(template, scoring=self.config.mode == "score")
        if self.config.max_answer_tokens is None:
            # the template's own budget (an explicit config value wins): the sample paths and the
            # length check read config.max_answer_tokens, so the resolved value is stored there
            self.config = dataclasses.replace(self.config, max_answer_tokens=self.config.answer_budget(self.template))
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
                self._forward = DecoderForward(self.model)
        return self._forward

    def _get_generator(self):
        if self.generator is None:
            self.generator = Generator(self.model, self.tokenizer)
        return self.generator

    def _max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def prepare(self, problems: Sequence, traces: Sequence, answers: Sequence, *,
                outcomes: Sequence[float] | None = None, verifiers: Sequence | None = None) -> list[TraceInputs]:
        """Tokenize, segment and check every item (raises on bad input before any compute)."""
        check_lengths(problems, traces, answers)
        num = len(traces)
        for name, values in (("outcomes", outcomes), ("verifiers", verifiers)):
            if values is not None and len(values) != num:
                raise ValueError(f"{name} has {len(values)} entries for {num} traces; give one per trace")
        outcomes = outcomes if outcomes is not None else [None] * num
        verifiers = verifiers if verifiers is not None else [None] * num
        return [prepare(i, p, t, a, tokenizer=self.tokenizer, template=self.template, config=self.config,
                        segmenter=self.segmenter, max_positions=self._max_positions(), outcome=o, verifier=v)
                for i, (p, t, a, o, v) in enumerate(zip(problems, traces, answers, outcomes, verifiers))]

    # -- main entry ----------------------------------------------------------------------------
    @torch.no_grad()
    def estimate(self, problems: Sequence, traces: Sequence, answers: Sequence, *,
                 outcomes: Sequence[float] | None = None, verifiers: Sequence | None = None,
                 seed: int | Sequence[int] | None = None) -> list[ProgressResult]:
        """One ``ProgressResult`` per trace, in input order.

        ``problems[i]``: text (the chat template is applied) or prompt token ids (used as given).
        ``traces[i]``: text, or the model's token ids (kept exactly). ``answers[i]``: the
        reference answer string (what goes inside ``\\boxed{}``), or a list of accepted forms.
        ``outcomes[i]``: the trace's grade if the caller has it (J at the natural end with
        ``natural_end="outcome"``); ``verifiers[i]``: an exact task verifier for the trace and
        its sampled answers (None: math equivalence); ``seed``: this call's sample-mode seed
        (default ``config.seed``), or one seed per trace (then a trace's draws depend on its own
        seed only, not on its position: what sharding a batch over ranks needs). The model runs
        in eval mode and is switched back after.
        """
        items = self.prepare(problems, traces, answers, outcomes=outcomes, verifiers=verifiers)
        cfg = self.config
        if isinstance(seed, (list, tuple)):
            if len(seed) != len(items):
                raise ValueError(f"seed has {len(seed)} entries for {len(items)} traces; give one per trace")
            for it, s in zip(items, seed):
                it.seed_key = (int(s), 0)
        elif seed is not None and seed != cfg.seed:
            cfg = dataclasses.replace(cfg, seed=int(seed))
        from_outcome = cfg.natural_end == "outcome"
        work = [it.forced_cuts_only() for it in items] if from_outcome else items
        bar = self._bar(sum(it.num_cuts for it in work))
        tick = bar.update if bar is not None else None
        try:
            params = getattr(self.model, "parameters", None)  # a stand-in model may have none
            first = next(params(), None) if callable(params) else None
            on_cpu = first is None or first.device.type == "cpu"
            with _eval_mode(self.model), thread_count(cfg.num_threads if on_cpu else None):
                per = self._run(work, cfg, tick)
        finally:
            if bar is not None:
                bar.close()
        build = self._score_result if cfg.mode == "score" else self._sample_result
        return [build(it, p) for it, p in zip(items, per)]

    def _run(self, items: list[TraceInputs], cfg: EstimatorConfig, tick) -> list:
        if cfg.mode == "score":
            if cfg.method == "fast":
                return score_fast(self.forward, items, max_tokens=cfg.max_batch_tokens, on_cuts=tick)
            return score_naive(self.model, items, on_cuts=tick)
        stop_ids = self._stop_ids()
        if cfg.method == "fast":
            return sample_fast(self._get_generator(), self.tokenizer, items, config=cfg, stop_ids=stop_ids,
                               on_cuts=tick)
        return sample_naive(self.model, self.tokenizer, items, config=cfg, stop_ids=stop_ids, on_cuts=tick)

    # -- assembly --------------------------------------------------------------------------------
    # ``per`` covers the cuts that were computed; with natural_end="outcome" the last cut of a
    # trace that has one is appended from the outcome: J = outcome, no answer tokens (the trace
    # already holds its answer), stderr 0 (it is the trace's own grade, not an estimate).
    def _from_outcome(self, it: TraceInputs, num_computed: int) -> bool:
        return num_computed < it.num_cuts

    def _outcome_of(self, it: TraceInputs) -> float:
        if it.outcome is None:
            raise ValueError(f"item {it.index}: natural_end='outcome' needs the trace's grade; pass outcomes= "
                             "or let the estimator grade the trace")
        return it.outcome

    def _result(self, it: TraceInputs, j, err, answer_tokens, **fields) -> ProgressResult:
        base = [it.context_len(c) + len(it.suffix_ids[c]) for c in range(it.num_cuts)]
        if self._from_outcome(it, len(j)):
            j, err, answer_tokens = j + [self._outcome_of(it)], err + [0.0], answer_tokens + [0.0]
        return ProgressResult(
            episodes=it.episodes, cut_chars=it.cut_chars, cut_tokens=it.cut_tokens, j=j, j_stderr=err,
            progress=progress_from_j(j), tokens_at_cut=[t + a for t, a in zip(base, answer_tokens)],
            outcome=it.outcome, natural_end_included=it.natural_end_included, mode=self.config.mode,
            method=self.config.method, answer_tokens=answer_tokens,
            natural_end=self.config.natural_end if it.natural_end_included else None, **fields)

    def _score_result(self, it: TraceInputs, logps: list[list[float]]) -> ProgressResult:
        log_j = [_logsumexp(forms) for forms in logps]
        j = [math.exp(x) for x in log_j]
        answer_len = sum(len(a) for a in it.answer_ids) / len(it.answer_ids)
        if self._from_outcome(it, len(j)):
            log_j = log_j + [math.log(self._outcome_of(it)) if self._outcome_of(it) > 0 else -math.inf]
        return self._result(it, j, [0.0] * len(j), [answer_len] * len(j), log_j=log_j)

    def _sample_result(self, it: TraceInputs, per_cut) -> ProgressResult:
        stats = [mean_and_stderr(sc) for _, sc, _, _ in per_cut]
        samples = [texts for texts, _, _, _ in per_cut]
        scores = [sc for _, sc, _, _ in per_cut]
        answers = [extracted for _, _, extracted, _ in per_cut]
        if self._from_outcome(it, len(per_cut)):
            samples, scores, answers = samples + [[]], scores + [[self._outcome_of(it)]], answers + [[None]]
        return self._result(it, [m for m, _ in stats], [e for _, e in stats], [n for _, _, _, n in per_cut],
                            samples=samples, scores=scores, answers=answers)

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


@contextlib.contextmanager
def _eval_mode(model):
    """Dropout off while J is estimated; the model's train/eval mode is restored afterwards."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(x - m) for x in xs))
