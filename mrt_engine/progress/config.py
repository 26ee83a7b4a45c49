"""``EstimatorConfig``: every knob of the progress estimator, checked up front."""
from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("score", "sample")
METHODS = ("fast", "naive")


@dataclass
class EstimatorConfig:
    """Settings of ``ProgressEstimator`` (see its docstring for what each one does).

    mode: "score" (teacher-force the reference answer: exact probability) or "sample"
        (n graded answers per cut, the paper's estimator).
    method: "fast" (prefill each trace once, branch at the cuts) or "naive" (plain
        transformers, re-encode every prefix: the reference and the baseline).
    scheme / segment_options: the episode segmenter (``mrt_engine.episodes.segment``); or
        pass ``segmenter=callable(text) -> list[Episode]`` to the estimator.
    num_samples, max_answer_tokens, temperature, top_p: sample mode (paper: n=8,
        temperature 0.6-0.7; answers here are short because the termination text ends at
        the answer's opening brace).
    seed: sample mode is reproducible for a given seed (each cut draws from its own seed,
        derived from (seed, item, cut), so results do not depend on batching).
    max_batch_tokens: the most tokens one forward pass handles (prefill chunk or packed
        suffixes); bounds activation memory. Work is split to fit; nothing fails for size.
    natural_end: score the last cut with the natural close instead of forced termination.
    think_close: a trace containing this tag is cut there: the part before it is the
        thinking that gets segmented, the whole trace is graded for the outcome.
    show_progress: tqdm bar; None = on when stderr is a terminal and there are >= 64 cuts.
    """

    mode: str = "score"
    method: str = "fast"
    scheme: str = "r1"
    segment_options: dict = field(default_factory=dict)
    num_samples: int = 8
    max_answer_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    max_batch_tokens: int = 8192
    natural_end: bool = True
    think_close: str = "</think>"
    show_progress: bool | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: use one of {MODES}")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: use one of {METHODS}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {self.max_answer_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_batch_tokens < 16:
            raise ValueError(f"max_batch_tokens must be >= 16, got {self.max_batch_tokens}")
        self.segment_options = dict(self.segment_options or {})
