"""Turn (problem, trace, answer) items into token-level work: one tokenization, shared by
the fast and the naive paths so both see exactly the same ids.

Sequence scored at cut c of a trace: ``prompt_ids + trace_ids[:c] + suffix_ids + answer_ids``
where ``suffix_ids`` is the termination text (or, at the last cut with ``natural_end``, the
natural close) and ``answer_ids`` one accepted form of the reference followed by ``}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from . import _compat


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

    @property
    def num_cuts(self) -> int:
        return len(self.cut_tokens)

    def context_len(self, cut: int) -> int:
        """Tokens before the suffix at cut index ``cut``: prompt + trace prefix."""
        return len(self.prompt_ids) + self.cut_tokens[cut]


def _as_forms(answer, index: int) -> list[str]:
    forms = [answer] if isinstance(answer, str) else list(answer)
    if not forms:
        raise ValueError(f"item {index}: no reference answer given")
    for form in forms:
        if not isinstance(form, str):
            raise TypeError(f"item {index}: reference answers must be str, got {type(form).__name__}")
        if not form.strip():
            raise ValueError(f"item {index}: the reference answer is empty; an empty answer cannot be scored "
                             "(give the answer string that goes inside \\boxed{{}})")
    return forms


def _answer_ids(tokenizer, prompts, form: str, template, index: int) -> list[int]:
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
    # Map char cuts to tokens: a cut inside a token moves to that token's end (the prefix
    # keeps every char before the cut).
    offsets = tokenizer(thinking, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = []
    for e in episodes:
        out.append(sum(1 for start, _ in offsets if start < e.char_end))
    return out


def prepare(index: int, problem: str, trace: str, answer, *, tokenizer, template, config,
            segmenter: Callable | None, max_positions: int, grade: bool = True) -> TraceInputs:
    """Tokenize one item, find its cuts, check it fits the model. Raises ValueError on bad input."""
    if not isinstance(problem, str) or not isinstance(trace, str):
        raise TypeError(f"item {index}: problem and trace must be str")
    prompts = _compat.prompts()
    forms = _as_forms(answer, index)
    close = config.think_close
    thinking = trace.split(close, 1)[0] if close and close in trace else trace

    encoded = tokenizer(thinking, add_special_tokens=False)
    trace_ids = list(encoded.input_ids)
    if thinking == "":
        episodes = []
    else:
        seg = segmenter or (lambda text: _compat.segment_fn()(text, config.scheme, tokenizer=tokenizer,
                                                             **config.segment_options))
        episodes = list(seg(thinking))
        if "".join(e.text for e in episodes) != thinking:
            raise ValueError(f"item {index}: the segmenter's episodes do not join back to the trace")
    prompt = list(prompts.prompt_ids(tokenizer, problem))
    term = list(prompts.termination_ids(tokenizer, template))
    if not term:
        raise ValueError("the termination text tokenizes to nothing; the first answer token needs a suffix token")

    if episodes:
        ends = _token_cuts(episodes, thinking, trace_ids, tokenizer, index)
        cut_chars = [0] + [e.char_end for e in episodes]
        cut_tokens = [0] + list(ends)
        natural = bool(config.natural_end)
        close_ids = list(prompts.natural_close_ids(tokenizer, template)) if natural else term
        suffix_ids = [term] * len(episodes) + [close_ids]
    else:
        cut_chars, cut_tokens, natural, suffix_ids = [0], [0], False, [term]

    answers = [_answer_ids(tokenizer, prompts, f, template, index) for f in forms]
    tail = max(len(a) for a in answers) if config.mode == "score" else config.max_answer_tokens
    need = len(prompt) + len(trace_ids) + max(len(s) for s in suffix_ids) + tail
    if need > max_positions:
        raise ValueError(
            f"item {index}: prompt ({len(prompt)}) + trace ({len(trace_ids)}) + termination + answer needs {need} "
            f"positions but the model has {max_positions}; shorten the trace (e.g. keep its first "
            f"{max_positions - need + len(trace_ids)} tokens) or use a longer-context model")
    outcome = None
    if grade:
        outcome = max(float(_compat.grade_fn()(trace, f).score) for f in forms)
    return TraceInputs(index=index, prompt_ids=prompt, trace_ids=trace_ids, thinking=thinking,
                       episodes=[e.text for e in episodes], cut_chars=cut_chars, cut_tokens=cut_tokens,
                       suffix_ids=suffix_ids, answer_ids=answers, natural_end_included=natural,
                       outcome=outcome, references=forms)


def check_lengths(problems: Sequence, traces: Sequence, answers: Sequence) -> None:
    if not (len(problems) == len(traces) == len(answers)):
        raise ValueError(f"problems ({len(problems)}), traces ({len(traces)}) and answers ({len(answers)}) "
                         "must have one entry per item")
