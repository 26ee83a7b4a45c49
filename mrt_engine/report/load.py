"""Read ``progress.jsonl`` (written by ``mrt-engine progress``) for the trace viewer.

Every record is checked before anything is drawn: a bad file gets one ``ReportInputError``
line naming the file, the line number and the field, instead of a page with a silently
wrong chart. The schema is ``ProgressResult.to_json`` plus the copied input fields
(docs/progress.md).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from mrt_engine.progress.result import ProgressResult

REQUIRED = ("episodes", "cut_chars", "cut_tokens", "j", "progress", "tokens_at_cut")
# Per-cut lists: one value per cut (L + 1 for L episodes).
PER_CUT = ("cut_chars", "cut_tokens", "j", "tokens_at_cut")
# Score-mode J is a probability; allow float rounding past the ends.
J_SLACK = 1e-6


class ReportInputError(ValueError):
    """A progress file the viewer cannot draw; the message is one line: ``path:line: what``."""


@dataclass
class TraceRecord:
    """One line of progress.jsonl: the estimator's result and the input fields copied beside it."""

    line: int
    id: str
    trace_index: int | None
    problem: str
    answers: list[str]
    generated: bool
    result: ProgressResult

    @property
    def label(self) -> str:
        return self.id if self.trace_index is None else f"{self.id} #{self.trace_index}"


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_numbers(obj: dict, name: str, *, allow_null: bool = False) -> list:
    values = obj[name]
    if not isinstance(values, list):
        raise ValueError(f"field {name!r} must be a list of numbers, got {type(values).__name__}")
    for k, x in enumerate(values):
        if not (_is_number(x) or (allow_null and x is None)):
            raise ValueError(f"field {name!r}[{k}] must be a finite number, got {x!r}")
    return values


def check_record(obj) -> None:
    """Raise ValueError naming the field when ``obj`` is not a drawable progress record."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object (one progress record), got {type(obj).__name__}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise ValueError(f"record lacks fields {missing}; write it with `mrt-engine progress` "
                         "(schema in docs/progress.md)")
    episodes = obj["episodes"]
    if not isinstance(episodes, list) or not all(isinstance(e, str) for e in episodes):
        raise ValueError("field 'episodes' must be a list of strings (the episode texts)")
    for name in PER_CUT + ("progress",):
        _check_numbers(obj, name)
    num_cuts = len(obj["j"])
    if num_cuts == 0:
        raise ValueError("field 'j' is empty; every trace has at least one cut (the empty prefix)")
    for name in PER_CUT:
        if len(obj[name]) != num_cuts:
            raise ValueError(f"field {name!r} has {len(obj[name])} values but 'j' has {num_cuts}; one per cut")
    for name, want in (("progress", num_cuts - 1), ("episodes", num_cuts - 1)):
        if len(obj[name]) != want:
            raise ValueError(f"field {name!r} has {len(obj[name])} values but 'j' has {num_cuts} cuts; "
                             f"need {want} (one per episode)")
    bad = [x for x in obj["j"] if not -J_SLACK <= x <= 1 + J_SLACK]
    if bad:
        raise ValueError(f"field 'j' holds {bad[0]!r}, outside [0, 1]; J is a success probability")
    if any(t < 0 for t in obj["tokens_at_cut"]):
        raise ValueError("field 'tokens_at_cut' holds a negative token count")
    if obj.get("j_stderr") is not None:
        _check_numbers(obj, "j_stderr", allow_null=True)
        if len(obj["j_stderr"]) != num_cuts:
            raise ValueError(f"field 'j_stderr' has {len(obj['j_stderr'])} values but 'j' has {num_cuts}")
    if obj.get("outcome") is not None and not _is_number(obj["outcome"]):
        raise ValueError(f"field 'outcome' must be a number or null, got {obj['outcome']!r}")


def _answers(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [value if isinstance(value, str) else json.dumps(value)]


def _record(obj: dict, line: int) -> TraceRecord:
    check_record(obj)
    clean = dict(obj)
    if clean.get("j_stderr") is None:
        clean.pop("j_stderr", None)  # from_json fills zeros
    trace_index = obj.get("trace_index")
    problem = obj.get("problem", "")
    return TraceRecord(
        line=line,
        id=str(obj.get("id", line)),
        trace_index=trace_index if isinstance(trace_index, int) and not isinstance(trace_index, bool) else None,
        problem=problem if isinstance(problem, str) else json.dumps(problem),
        answers=_answers(obj.get("answer")),
        generated=bool(obj.get("generated", False)),
        result=ProgressResult.from_json(clean),
    )


def read_progress(path: str) -> list[TraceRecord]:
    """All records of a progress.jsonl; ``ReportInputError`` (one line, with the line number)
    on an unreadable file, a line that is not UTF-8 JSON, or a record that fails ``check_record``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read the progress file ({exc.strerror or exc})") from exc
    records = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReportInputError(f"{path}:{n}: not UTF-8 text (bad byte at column {exc.start + 1})") from exc
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                   "one JSON object per line") from exc
        try:
            records.append(_record(obj, n))
        except (ValueError, TypeError) as exc:
            raise ReportInputError(f"{path}:{n}: {exc}") from exc
    if not records:
        raise ReportInputError(f"{path}: no progress records (an empty file?); run `mrt-engine progress` first")
    return records
