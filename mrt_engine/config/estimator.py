"""``EstimatorConfig``: every knob of the progress estimator, checked up front."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mrt_engine.prompts import get_template
from mrt_engine.threads import check_num_threads

from .checks import check
from .checks import deprecated, migrate_segment_options

ESTIMATOR_MODES = ("score", "sample")
ESTIMATOR_METHODS = ("fast", "naive")
NATURAL_ENDS = ("close", "forced", "outcome")


# -- the progress estimator ------------------------------------------------------------------
@dataclass
class EstimatorConfig:
    """Settings of :class:`mrt_engine.progress.ProgressEstimator`.

    mode: "score" (teacher-force the reference answer: its exact probability) or "sample"
        (``num_branches`` graded forced answers per cut, the paper's estimator).
    method: "fast" (prefill each trace once, branch at the cuts) or "naive" (plain
        transformers, re-encode every prefix: the reference and the baseline).
    template: termination template (a name in ``mrt_engine.prompts.TEMPLATES``, a dict of
        ``TerminationTemplate`` fields, or the object); None = the R1 text for sample mode and
        its scoring form ending in ``\\boxed{`` for score mode.
    scheme / segment_options: the episode segmenter (``mrt_engine.episodes.segment``).
    max_cuts: at most this many episode boundaries per trace (the rest is one final
        episode); None = no limit. The paper's dense variant uses 6.
    num_branches, max_answer_tokens, temperature, top_p: sample mode (paper: 8 branches,
        temperature 0.6-0.7). ``max_answer_tokens`` None = the template's own budget
        (``TerminationTemplate.max_answer_tokens``: 16 after ``\\boxed{``, 256 after the R1
        text's ``1. **``), resolved by the estimator; an explicit value wins.
        ``temperature``/``top_p`` None = inherit (the trainer fills them from ``rollout``).
    seed: sample mode is reproducible for a given seed (see ``progress/sample.py``).
    max_batch_tokens: the most tokens one forward pass handles; bounds activation memory.
    natural_end: how J at the last cut (the end of the trace) is taken. "close": answer after
        the natural close (``</think>`` and the answer prefix); "forced": the termination text
        like every other cut; "outcome": the trace's own graded outcome (no branches there:
        what a trainer that already graded its rollouts wants).
    think_close: a trace containing this tag is cut there: the part before it is the
        thinking that gets segmented, the whole trace is graded for the outcome.
    show_progress: tqdm bar; None = on when stderr is a terminal and there are >= 64 cuts.
    num_threads: CPU threads of an ``estimate`` call: "auto" = torch's setting lowered to the
        cores idle when the call starts (``mrt_engine/threads.py``), an int, or None
        (leave torch's setting). Ignored on CUDA.
    """

    mode: str = "score"
    method: str = "fast"
    template: object = None
    scheme: str = "r1"
    segment_options: dict = field(default_factory=dict)
    max_cuts: int | None = None
    num_branches: int = 8
    max_answer_tokens: int | None = None
    temperature: float | None = 0.7
    top_p: float | None = 1.0
    seed: int = 0
    max_batch_tokens: int = 8192
    natural_end: str = "close"
    think_close: str = "</think>"
    show_progress: bool | None = None
    num_threads: int | str | None = "auto"

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"num_samples": "num_branches"}

    def __post_init__(self):
        if isinstance(self.natural_end, bool):  # the bool form of the previous release
            deprecated("natural_end: true/false", "natural_end: close/forced", "EstimatorConfig")
            self.natural_end = "close" if self.natural_end else "forced"
        self.segment_options = migrate_segment_options(dict(self.segment_options or {}), "segment_options")
        check(self.mode in ESTIMATOR_MODES, f"mode={self.mode!r}: use one of {ESTIMATOR_MODES}")
        check(self.method in ESTIMATOR_METHODS, f"method={self.method!r}: use one of {ESTIMATOR_METHODS}")
        check(self.natural_end in NATURAL_ENDS, f"natural_end={self.natural_end!r}: use one of {NATURAL_ENDS}")
        check(self.max_cuts is None or (isinstance(self.max_cuts, int) and self.max_cuts >= 0),
               f"max_cuts={self.max_cuts!r}: need None or an int >= 0")
        check(self.num_branches >= 1, f"num_branches={self.num_branches}: need >= 1")
        check(self.max_answer_tokens is None or self.max_answer_tokens >= 1,
               f"max_answer_tokens={self.max_answer_tokens}: need >= 1 (or None: the template's default)")
        check(self.temperature is None or self.temperature >= 0,
               f"temperature={self.temperature}: need >= 0 (0 = greedy)")
        check(self.top_p is None or 0 < self.top_p <= 1, f"top_p={self.top_p}: need 0 < top_p <= 1")
        check_num_threads(self.num_threads, "EstimatorConfig.num_threads")
        check(self.max_batch_tokens >= 16, f"max_batch_tokens={self.max_batch_tokens}: need >= 16")

    def answer_budget(self, template=None) -> int:
        """Sample mode's forced-answer budget: ``max_answer_tokens`` when set, else the default of
        ``template`` (a ``TerminationTemplate``; None = the one ``self.template`` names)."""
        if self.max_answer_tokens is not None:
            return self.max_answer_tokens
        if template is None:
            template = get_template(self.template, scoring=self.mode == "score")
        return template.max_answer_tokens

    def segmenter_options(self) -> dict:
        """Keyword options for ``segment`` / ``segment_ids``: ``segment_options`` with ``max_cuts``."""
        opts = dict(self.segment_options)
        if self.max_cuts is not None:
            given = opts.get("max_cuts")
            opts["max_cuts"] = self.max_cuts if given is None else min(given, self.max_cuts)
        return opts
