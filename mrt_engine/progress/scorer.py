"""``ProgressScorer``: the estimator bound lazily to a model that someone else trains.

Frameworks (TRL, verl, OpenRLHF) build their reward objects before, or apart from, the
policy; the scorer holds the settings (an :class:`EstimatorConfig`) and builds one
:class:`ProgressEstimator` on the model it is given or bound to. The estimator holds the
model's own parameter tensors (no copy), so after every optimizer step it scores with the new
weights; it runs in eval mode under ``no_grad`` and restores the model's mode.
"""
from __future__ import annotations

import math

from mrt_engine.config import EstimatorConfig

from .estimator import ProgressEstimator


class ProgressScorer:
    def __init__(self, model=None, tokenizer=None, config: EstimatorConfig | None = None, *, estimator=None,
                 **options):
        if config is not None and options:
            raise ValueError("pass either config= or estimator options as keywords, not both")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config if config is not None else EstimatorConfig(**options)
        # A ready estimator (anything with .estimate(problems, traces, answers)) is used as is.
        self._fixed = estimator
        self._estimator = None
        self._estimator_model = None

    def bind(self, model, tokenizer=None) -> None:
        """Score with ``model`` from now on (e.g. once the framework's trainer has built it)."""
        self.model = model
        if tokenizer is not None:
            self.tokenizer = tokenizer
        self._estimator = None

    def estimator(self):
        if self._fixed is not None:
            return self._fixed
        if self.model is None or self.tokenizer is None:
            raise RuntimeError(
                "no model to estimate progress with: pass model= and tokenizer= (the same model object the "
                "trainer trains), or call .bind(model, tokenizer) once the trainer is built")
        if self._estimator is None or self._estimator_model is not self.model:
            self._estimator = ProgressEstimator(self.model, self.tokenizer, config=self.config)
            self._estimator_model = self.model
        return self._estimator

    def estimate(self, problems: list, completions: list, answers: list, **kwargs) -> list:
        """``estimator.estimate(...)`` with a check that every completion got a finite result."""
        results = self.estimator().estimate(problems, completions, answers, **kwargs)
        if len(results) != len(completions):
            raise RuntimeError(f"estimator returned {len(results)} results for {len(completions)} completions")
        for i, res in enumerate(results):
            if any(math.isnan(float(p)) for p in res.progress):
                raise RuntimeError(f"estimator returned NaN progress for completion {i}")
        return results
