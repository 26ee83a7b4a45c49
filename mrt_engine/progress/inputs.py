"""Turn (problem, trace, answer) items into token-level work: one tokenization, shared by
the fast and the naive paths so both see exactly the same ids.

Sequence scored at cut c of a trace: ``prompt_ids + trace_ids[:c] + suffix_ids + answer_ids``
where ``suffix_ids`` is the termination text (or, at the last cut with ``natural_end``, the
natural close) and ``answer_ids`` one accepted form of the reference followed by ``}``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

from mrt_engine import prompts
from mrt_engine.episodes import char_to_token_offsets, decode_with_spans, segment, segment_ids
from mrt_engine.grading import grade as grade_fn


@dataclass
class TraceInputs:
    index: int                      # position of the item in the caller's lists
    prompt_ids: list[int]
    trace_ids: list[int]            # the thinking text, tokenized once, no special tokens
    thinking: str
    episodes: list[str]
    cut_chars: list[int]            # [num_cuts]
    cut_tokens: list[int]           # [num_cuts], offsets into trace_ids
    suffix_ids: list[list[int]]     # [num_cuts][*]: termination (or natural close at the end)
    answer_ids: list[list[int]]     # [num_forms][*]: accepted answer forms + "}"
    natural_end_included: bool
    outcome: float | None
    references: list[str]
    verifier: Callable | None = None    # exact task verifier for graded answers (None: math equivalence)
    seed_key: tuple[int, int] | None = None  # sample mode: cut c draws from cut_seed(*seed_key, c)

    @property
    def num_cuts(self) -> int:
        return len(self.cut_tokens)

    def forced_cuts_only(self) -> "TraceInputs":
        """The same item without its natural-end cut (J there is taken from the outcome)."""
        if not self.natural_end_included:
            return self
        return dataclasses.replace(self, cut_chars=self.cut_chars[:-1], cut_tokens=self.cut_tokens[:-1],
                                   suffix_ids=self.suffix_ids[:-1], natural_end_included=False)

    def context_len(self, cut: int) -> int:
        """Tokens before the suffix at cut index ``cut``: prompt + trace prefix."""
        return len(self.prompt_ids) + self.cut_tokens[cut]


def reference_answer(value, *, index: int):
    """A data set's answer cell as the estimator takes it: str, or a list of accepted str forms.

    Numbers become strings; numpy arrays (verl's non_tensor_batch) become lists.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    if hasattr(value, "tolist"):
        return reference_answer(value.tolist(), index=index)
    raise TypeError(f"example {index}: reference answer {value!r} ({type(value).__name__}) is not a string, a "
                    "number or a list of accepted forms")


def _as_forms(answer, index: int) -> list[str]:
    if answer is None or isinstance(answer, (bool, dict, bytes)) or not isinstance(answer, (str, int, float, list, tuple)):
        raise TypeError(f"item {index}: the reference answer must be a str, a number or a list of accepted str "
                        f"forms, got {type(answer).__name__}")
    if isinstance(answer, (int, float)):
        answer = str(answer)
    forms = [answer] if isinstance(answer, str) else list(answer)
    if not forms:
        raise ValueError(f"item {index}: no reference answer given")
    for form in forms:
        if not isinstance(form, str):
            raise TypeError(f"item {index}: reference answers must be str, got {type(form).__name__}")
        if not form.strip():
            raise ValueError(f"item {index}: the reference answer is empty; an empty answer cannot be scored "
                             "(give the answer string that goes inside \\boxed{})")
        _check_text(form, index, "reference answer")  # a lone surrogate: the tokenizer's error names no item
    return forms


def _answer_ids(tokenizer, form: str, template, index: int) -> list[int]:
    ids = list(prompts.answer_ids(tokenizer, form, template))
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if text != form + "}":
        raise ValueError(
            f"item {index}: the reference answer {form!r} does not round-trip through the tokenizer "
            f"(decodes to {text[:-1]!r}); its probability would be of a different string. Normalise the "
            "answer to text the tokenizer can represent, or use mode='sample' with a grader.")
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError(f"item {index}: the reference answer {form!r} tokenizes to the unknown token")
    return ids


def _token_cuts(episodes, thinking: str, trace_ids: list[int], tokenizer, index: int) -> list[int]:
    """Token offset at the end of each episode; from the segmenter's spans when it gave them."""
    ends = [e.token_end for e in episodes]
    if all(t is not None for t in ends):
        if ends[-1] != len(trace_ids):
            raise ValueError(f"item {index}: the segmenter's token spans end at {ends[-1]} but the trace has "
                             f"{len(trace_ids)} tokens; segment with the same tokenizer (no special tokens)")
        return ends
    # A custom segmenter gave char spans only: map them with the segmenter's own rule (a token
    # that straddles a cut belongs to the later episode; see mrt_engine.episodes).
    offsets = tokenizer(thinking, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = char_to_token_offsets([e.char_end for e in episodes], offsets)
    out[-1] = len(trace_ids)
    return out


def _ids_trace(tokenizer, ids, close: str, index: int) -> tuple[str, list[int], str]:
    """(full text, thinking ids, thinking text) of a trace given as token ids (kept exactly)."""
    ids = [int(t) for t in ids]
    text, spans = decode_with_spans(tokenizer, ids)
    if close and close in text:
        at = text.index(close)
        keep = sum(1 for _, end in spans if end <= at)
        ids = ids[:keep]
        return text, ids, decode_with_spans(tokenizer, ids)[0]
    return text, ids, text


def _check_text(text: str, index: int, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"item {index}: the {what} is not valid text ({exc.reason} at char {exc.start}); "
                         "fix its encoding") from None


def _check_ids(ids, vocab: int, index: int, what: str) -> list[int]:
    """Token ids as given, checked: ints (not bools) in ``[0, vocab)``."""
    for k, t in enumerate(ids):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab:
            raise ValueError(f"item {index}: {what} token id {t!r} at position {k} is not in the vocabulary "
                             f"[0, {vocab}); give ids from this model's tokenizer")
    return [int(t) for t in ids]


def _prompt(tokenizer, problem, index: int) -> list[int]:
    if isinstance(problem, str):
        _check_text(problem, index, "problem")
        return list(prompts.prompt_ids(tokenizer, problem))
    if isinstance(problem, (list, tuple)) and all(isinstance(t, int) for t in problem):
        # prompt token ids, used as given (chat template already applied)
        return _check_ids(problem, len(tokenizer), index, "prompt")
    raise TypeError(f"item {index}: problem must be a str or a list of prompt token ids, got {type(problem).__name__}")


def prepare(index: int, problem, trace, answer, *, tokenizer, template, config,
            segmenter: Callable | None, max_positions: int, outcome: float | None = None,
            verifier: Callable | None = None, grade: bool = True) -> TraceInputs:
    """Tokenize one item, find its cuts, check it fits the model. Raises ValueError on bad input.

    ``problem``: text (the chat template is applied) or prompt token ids (used as given).
    ``trace``: text (tokenized once, no special tokens) or token ids (kept exactly, e.g. the
    engine's output, and segmented with ``mrt_engine.episodes.segment_ids``), so no
    decode/re-encode round trip can change what the policy generated.
    ``outcome``: the trace's grade when the caller already has it (then it is not re-graded);
    ``verifier``: the exact task verifier that grades the trace and every sampled answer.
    """
    forms = _as_forms(answer, index)
    seg_opts = config.segmenter_options()
    close = config.think_close
    if isinstance(trace, str):
        _check_text(trace, index, "trace")
        full = trace
        thinking = trace.split(close, 1)[0] if close and close in trace else trace
        trace_ids = list(tokenizer(thinking, add_special_tokens=False).input_ids)
        seg = segmenter or (lambda text: segment(text, config.scheme, tokenizer=tokenizer, **seg_opts))
    elif isinstance(trace, (list, tuple)) and all(isinstance(t, int) for t in trace):
        if segmenter is not None:
            raise ValueError(f"item {index}: a custom segmenter needs text traces; token-id traces use "
                             "mrt_engine.episodes.segment_ids with scheme/segment_options")
        full, trace_ids, thinking = _ids_trace(tokenizer, _check_ids(trace, len(tokenizer), index, "trace"),
                                               close, index)
        seg = lambda text: segment_ids(tokenizer, trace_ids, config.scheme, **seg_opts)  # noqa: E731
    else:
        raise TypeError(f"item {index}: trace must be a str or a list of token ids, got {type(trace).__name__}")
    episodes = list(seg(thinking)) if trace_ids else []
    if episodes and "".join(e.text for e in episodes) != thinking:
        raise ValueError(f"item {index}: the segmenter's episodes do not join back to the trace")
    prompt = _prompt(tokenizer, problem, index)
    term = list(prompts.termination_ids(tokenizer, template))
    if not term:
        raise ValueError("the termination text tokenizes to nothing; the first answer token needs a suffix token")

    if episodes:
        ends = _token_cuts(episodes, thinking, trace_ids, tokenizer, index)
        cut_chars = [0] + [e.char_end for e in episodes]
        cut_tokens = [0] + list(ends)
        # The last cut is the natural end: answered after the natural close ("close"), after the
        # termination text like any cut ("forced"), or taken from the outcome ("outcome": no suffix).
        natural = config.natural_end != "forced"
        last = {"close": lambda: list(prompts.natural_close_ids(tokenizer, template)),
                "forced": lambda: term, "outcome": lambda: []}[config.natural_end]()
        suffix_ids = [term] * len(episodes) + [last]
    else:
        cut_chars, cut_tokens, natural, suffix_ids = [0], [0], False, [term]

    # Only score mode teacher-forces the reference; sample mode grades sampled answers, so its
    # template (e.g. the R1 text) need not end where the answer begins.
    answers = [_answer_ids(tokenizer, f, template, index) for f in forms] if config.mode == "score" else []
    tail = max(len(a) for a in answers) if answers else config.max_answer_tokens
    need = len(prompt) + len(trace_ids) + max(len(s) for s in suffix_ids) + tail
    if need > max_positions:
        raise ValueError(
            f"item {index}: prompt ({len(prompt)}) + trace ({len(trace_ids)}) + termination + answer needs {need} "
            f"positions but the model has {max_positions}; shorten the trace (e.g. keep its first "
            f"{max_positions - need + len(trace_ids)} tokens) or use a longer-context model")
    if outcome is None and grade:
        outcome = max(float(grade_fn(full, f, verifier=verifier).score) for f in forms)
    elif outcome is not None:
        outcome = float(outcome)
    return TraceInputs(index=index, prompt_ids=prompt, trace_ids=trace_ids, thinking=thinking,
                       episodes=[e.text for e in episodes], cut_chars=cut_chars, cut_tokens=cut_tokens,
                       suffix_ids=suffix_ids, answer_ids=answers, natural_end_included=natural,
                       outcome=outcome, references=forms, verifier=verifier)


def check_lengths(problems: Sequence, traces: Sequence, answers: Sequence) -> None:
    for name, value in (("problems", problems), ("traces", traces), ("answers", answers)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with one entry per item (got a {type(value).__name__})")
    if not (len(problems) == len(traces) == len(answers)):
        raise ValueError(f"problems ({len(problems)}), traces ({len(traces)}) and answers ({len(answers)}) "
                         "must have one entry per item")
