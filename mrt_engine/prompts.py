"""Meta-prover prompts: termination templates and chat-template handling.

The meta-prover is the policy forced to stop after a prefix of its trace (docs/method.md 2-3):
``prompt_ids + prefix + termination``, then the model answers (sampling) or the reference
answer is teacher-forced (scoring).

Token layout. Every piece is tokenized on its own, without special tokens, and the pieces are
concatenated: the prompt (chat template, assistant turn left open), the prefix (the trace's
own token ids up to a cut, or a prefix string), the termination text, and for scoring the
answer followed by ``}``. Seams between pieces are therefore always token boundaries, so the
token ids of a prefix cut from the whole trace line up with the shared-prefix kernels, and the
answer's tokens are the same at every cut. Decoding the ids gives back the texts concatenated.

Templates (``TerminationTemplate``):
- ``R1_TERMINATION``: the R1 termination text of docs/method.md section 3, character-exact (it
  ends in ``1. **``, where the model writes its answer: for sampling).
- ``R1_SCORING_TERMINATION``: the same text up to ``</think>\\n\\n``, then
  ``The final answer is \\boxed{`` so the answer begins right after it (for scoring; ours).
- ``BOXED_TERMINATION``: for models without a think tag (ours):
  ``\\n\\nTime is up. ... based on what I already have.\\n\\nThe final answer is \\boxed{``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

THINK_CLOSE = "</think>"
_R1_STOP = (
    "Time is up.\n\n"
    "Given the time I've spent and the approaches I've tried, I should stop thinking and "
    "formulate a final answer based on what I already have.\n"
)
BOXED_ANSWER_LEAD = "The final answer is \\boxed{"
# Default forced-answer budgets (sample mode), by where the template leaves the model. After
# ``\boxed{`` the answer itself comes next: 16 tokens hold a number or a short expression and
# its ``}``. After the R1 text's ``1. **`` the model first writes a step-by-step explanation
# and only then ``\boxed{...}``: 32 tokens rarely reach the box (a cut-off answer grades 0,
# which biases J down), so the budget covers a short explanation. Generation stops at EOS, so
# a larger budget costs only for answers that are still going.
BOXED_ANSWER_TOKENS = 16
OPEN_ANSWER_TOKENS = 256


@dataclass(frozen=True)
class TerminationTemplate:
    """Text appended after a prefix to force the model to answer.

    Fields:
        text: appended right after the prefix.
        answer_prefix: the tail of ``text`` after which the answer begins (``""`` = the whole
            text leads into the answer). Also ends ``natural_close``.
        name: for logs and the ``TEMPLATES`` registry.
        answer_suffix: closes a teacher-forced answer in scoring (``"}"`` after ``\\boxed{``);
            ``None`` when the template is for sampling only.
        natural_close: appended after the *complete* trace (the last cut, natural end).
            Default: ``"\\n</think>\\n\\n" + answer_prefix`` when ``text`` closes a think block,
            else ``"\\n\\n" + answer_prefix``.
        max_answer_tokens: sample mode's default budget of one forced answer (used when
            ``EstimatorConfig.max_answer_tokens`` is None). Default: ``BOXED_ANSWER_TOKENS`` (16)
            when ``text`` ends at ``\\boxed{`` (the answer comes next), else
            ``OPEN_ANSWER_TOKENS`` (256: room to write an explanation before the box).
    """

    text: str
    answer_prefix: str = ""
    name: str = "custom"
    answer_suffix: str | None = None
    natural_close: str | None = None
    max_answer_tokens: int | None = None

    def __post_init__(self):
        if not isinstance(self.text, str) or not self.text:
            raise ValueError("TerminationTemplate.text must be a non-empty string")
        if not self.text.endswith(self.answer_prefix):
            raise ValueError(
                f"TerminationTemplate {self.name!r}: text must end with answer_prefix "
                f"{self.answer_prefix!r} (the answer begins right after it)"
            )
        if self.answer_suffix is not None and not isinstance(self.answer_suffix, str):
            raise TypeError(f"TerminationTemplate {self.name!r}: answer_suffix must be a str or None")
        if self.natural_close is None:
            close = f"\n{THINK_CLOSE}\n\n" if THINK_CLOSE in self.text else "\n\n"
            object.__setattr__(self, "natural_close", close + self.answer_prefix)
        if self.max_answer_tokens is None:
            budget = BOXED_ANSWER_TOKENS if self.text.endswith("\\boxed{") else OPEN_ANSWER_TOKENS
            object.__setattr__(self, "max_answer_tokens", budget)
        if isinstance(self.max_answer_tokens, bool) or not isinstance(self.max_answer_tokens, int) \
                or self.max_answer_tokens < 1:
            raise ValueError(f"TerminationTemplate {self.name!r}: max_answer_tokens={self.max_answer_tokens!r} "
                             "must be an int >= 1 (or None for the default)")

    @property
    def scorable(self) -> bool:
        """True when the text ends where the answer begins and the answer has a closing suffix."""
        return self.answer_suffix is not None


R1_TERMINATION = TerminationTemplate(
    text=_R1_STOP + THINK_CLOSE + "\n\n**Step-by-Step Explanation and Answer:**\n\n1. **",
    answer_prefix="**Step-by-Step Explanation and Answer:**\n\n1. **",
    name="r1",
)
R1_SCORING_TERMINATION = TerminationTemplate(
    text=_R1_STOP + THINK_CLOSE + "\n\n" + BOXED_ANSWER_LEAD,
    answer_prefix=BOXED_ANSWER_LEAD,
    name="r1_scoring",
    answer_suffix="}",
)
BOXED_TERMINATION = TerminationTemplate(
    text=(
        "\n\nTime is up. Given the time I've spent and the approaches I've tried, I should stop "
        "thinking and formulate a final answer based on what I already have.\n\n" + BOXED_ANSWER_LEAD
    ),
    answer_prefix=BOXED_ANSWER_LEAD,
    name="boxed",
    answer_suffix="}",
)
TEMPLATES: dict[str, TerminationTemplate] = {
    t.name: t for t in (R1_TERMINATION, R1_SCORING_TERMINATION, BOXED_TERMINATION)
}


def get_template(template: str | dict | TerminationTemplate | None, *, scoring: bool = False) -> TerminationTemplate:
    """A template by name, by its fields (a dict, as YAML configs give it) or itself;
    ``None`` -> the R1 default for the mode."""
    if template is None:
        return R1_SCORING_TERMINATION if scoring else R1_TERMINATION
    if isinstance(template, dict):
        template = TerminationTemplate(**template)
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ValueError(f"unknown termination template {template!r}; known: {sorted(TEMPLATES)}")
        template = TEMPLATES[template]
    if not isinstance(template, TerminationTemplate):
        raise TypeError(f"template must be a name or a TerminationTemplate, got {type(template).__name__}")
    if scoring and not template.scorable:
        raise ValueError(
            f"template {template.name!r} is for sampling only (its answer has no closing suffix); "
            f"for scoring use one ending where the answer begins, e.g. {R1_SCORING_TERMINATION.name!r} or "
            f"{BOXED_TERMINATION.name!r}"
        )
    return template


# ---------------------------------------------------------------- token ids
def encode(tokenizer, text: str) -> list[int]:
    """``text`` tokenized on its own, without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts a BOS in front when asked for special tokens."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return len(with_special) > len(without) and with_special[0] == bos


def chat_text(tokenizer, problem: str, *, system: str | None = None) -> str:
    """The chat template rendered with the assistant turn left open (add_generation_prompt)."""
    if not isinstance(problem, str):
        raise TypeError(f"problem must be a str, got {type(problem).__name__}")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "the tokenizer has no chat template; set tokenizer.chat_template (a jinja string) "
            "or build the prompt ids yourself"
        )
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": problem}
    ]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def prompt_ids(tokenizer, problem: str, *, system: str | None = None) -> list[int]:
    """Prompt token ids: chat template, assistant turn open, exactly one leading BOS.

    The rendered template is tokenized without special tokens. If the tokenizer normally adds
    a BOS and the template did not already write one, one BOS is prepended; if the template
    wrote it, it is kept once (a tokenizer that adds its own would double it: we drop that).
    """
    ids = encode(tokenizer, chat_text(tokenizer, problem, system=system))
    bos = tokenizer.bos_token_id
    if _adds_bos(tokenizer) and (not ids or ids[0] != bos):
        ids = [bos] + ids
    while bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]  # a template that writes BOS itself, rendered twice
    return ids


def termination_ids(tokenizer, template: str | TerminationTemplate | None = None) -> list[int]:
    """Token ids of the termination text (default ``R1_TERMINATION``)."""
    return encode(tokenizer, get_template(template).text)


def answer_ids(tokenizer, answer: str, template: str | TerminationTemplate | None = None) -> list[int]:
    """Teacher-forced answer ids for scoring: ``answer`` + the template's closing ``}``.

    The closing brace makes "the forced answer is exactly this string" events disjoint, so the
    probabilities of several accepted forms of one answer can be summed (docs/method.md 3).
    """
    if not isinstance(answer, str) or not answer:
        raise ValueError(f"answer must be a non-empty string, got {answer!r}")
    template = get_template(template, scoring=True)
    return encode(tokenizer, answer + template.answer_suffix)


def natural_close_ids(tokenizer, template: str | TerminationTemplate | None = None) -> list[int]:
    """Ids appended after the complete trace for the last cut (``\\n</think>\\n\\n`` + answer lead)."""
    return encode(tokenizer, get_template(template).natural_close)


def meta_prover_ids(tokenizer, problem: str, prefix: str | Sequence[int],
                    template: str | TerminationTemplate | None = None, *, system: str | None = None) -> list[int]:
    """``prompt_ids + prefix + termination``: the meta-prover's input after a prefix.

    ``prefix`` is either token ids (the trace's own ids up to a cut, as the progress estimator
    uses them) or a string (tokenized on its own, without special tokens).
    """
    if isinstance(prefix, str):
        prefix_ids = encode(tokenizer, prefix)
    else:
        prefix_ids = [int(i) for i in prefix]
    return prompt_ids(tokenizer, problem, system=system) + prefix_ids + termination_ids(tokenizer, template)
