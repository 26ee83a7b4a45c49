"""``ProgressResult``: what the estimator returns per trace, and its JSONL form."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class ProgressResult:
    """J at every cut of one trace, and the progress of each episode.

    Cuts: ``cut_*[0]`` is the empty prefix (answer without thinking), ``cut_*[k]`` the end of
    episode k (k = 1..L-1), and the last cut the end of the trace: with
    ``natural_end_included`` it is scored with the natural close (``</think>`` and the
    answer prefix) instead of the forced-termination text. A trace with L >= 1 episodes has
    L + 1 cuts and L progress values; an empty trace has one cut (the empty prefix) and no
    progress (``natural_end_included`` False).

    Fields:
        episodes: episode texts; ``"".join(episodes)`` is the thinking part of the trace.
        cut_chars: char offset of each cut in the thinking text.
        cut_tokens: token offset of each cut in the trace's token ids (no special tokens).
        j: success probability at each cut. Score mode: exact probability of the reference
            answer (summed over accepted forms); sample mode: mean grade of the samples.
        j_stderr: sample mode: standard error of each J (sample std / sqrt(n); NaN for n = 1);
            score mode: zeros (exact, no sampling noise).
        log_j: score mode: natural log of J (the quantity compared at 1e-4 relative); sample
            mode: None.
        progress: ``j[k] - j[k-1]`` for k = 1..L: the progress of episode k.
        tokens_at_cut: prompt + prefix + termination + answer tokens at each cut (score: the
            reference answer's tokens; sample: the mean sampled answer length): the x axis
            of regret curves.
        outcome: grade of the trace itself against the reference (0..1); None when not graded.
        natural_end_included: whether the last cut is the natural end (see above).
        natural_end: how J there was taken: "close" (answers after the natural close),
            "forced" (the termination text), "outcome" (the trace's own grade: scores holds
            ``[outcome]``, samples ``[]``, answer_tokens 0); None when not included.
        mode, method: how J was estimated.
        samples: sample mode only, per cut the sampled answers (text), else None.
        scores: sample mode only, per cut the grade of each sample, else None.
        answer_tokens: answer tokens counted in ``tokens_at_cut`` at each cut (score: the
            reference's, mean over forms; sample: mean sampled length).
        answers: sample mode only, per cut the answer extracted from each sample (None when
            none was found), for maj@k; else None.
    """

    episodes: list[str]
    cut_chars: list[int]
    cut_tokens: list[int]
    j: list[float]
    j_stderr: list[float]
    progress: list[float]
    tokens_at_cut: list[float]
    outcome: float | None
    natural_end_included: bool
    mode: str = "score"
    method: str = "fast"
    log_j: list[float] | None = None
    samples: list[list[str]] | None = None
    scores: list[list[float]] | None = None
    answers: list[list[str | None]] | None = None
    answer_tokens: list[float] | None = None
    natural_end: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_episodes(self) -> int:
        return len(self.progress)

    def to_json(self, *, include_samples: bool = False) -> dict:
        """A JSON-ready dict (the ``progress.jsonl`` schema of docs/progress.md).

        Sample texts are left out unless ``include_samples``; scores and extracted answers
        (small, and what maj@k needs) are always kept.
        """
        out = asdict(self)
        if not include_samples:
            out.pop("samples")
        out["num_episodes"] = self.num_episodes
        # JSON has no NaN: write null for an undefined standard error.
        out["j_stderr"] = [None if (isinstance(x, float) and math.isnan(x)) else x for x in self.j_stderr]
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "ProgressResult":
        missing = [k for k in ("episodes", "cut_chars", "cut_tokens", "j", "progress", "tokens_at_cut") if k not in obj]
        if missing:
            raise ValueError(f"progress record lacks fields {missing}; see docs/progress.md for the schema")
        kwargs = {k: obj[k] for k in cls.__dataclass_fields__ if k in obj}
        kwargs.setdefault("j_stderr", [0.0] * len(obj["j"]))
        kwargs["j_stderr"] = [float("nan") if x is None else x for x in kwargs["j_stderr"]]
        kwargs.setdefault("outcome", None)
        kwargs.setdefault("natural_end_included", len(obj["j"]) > 1)
        return cls(**kwargs)


def token_curve(result: ProgressResult) -> tuple[list[float], list[float]]:
    """(tokens, J) points for regret curves: tokens made non-decreasing by a running max.

    The natural close at the last cut is shorter than the forced termination, so its token
    count can be below the previous cut's; the budget needed to reach a cut is at least
    that of the cuts before it.
    """
    tokens, run = [], 0.0
    for t in result.tokens_at_cut:
        run = max(run, float(t))
        tokens.append(run)
    return tokens, list(result.j)


def progress_from_j(j: list[float]) -> list[float]:
    """Per-episode progress ``J_k - J_{k-1}``."""
    return [b - a for a, b in zip(j[:-1], j[1:])]
