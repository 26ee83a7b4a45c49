"""Segmenters: a reasoning trace -> episodes with char (and token) offsets.

``segment(text, scheme="r1", *, tokenizer=None, **opts) -> list[Episode]``

Every scheme is a function ``text -> cuts``: the char offsets where a new episode starts
(``0 < cut < len(text)``, strictly increasing). ``segment`` turns cuts into episodes, so the
episode texts always concatenate back to the trace exactly. Built-in schemes:

- ``"r1"``: the R1 rule of the paper's analysis (docs/method.md section 4). Paragraphs are
  separated by ``"\\n\\n"``; a paragraph starting with one of ``R1_KEYWORDS`` starts a new
  episode unless the previous boundary (the trace start counts as one) is 0, 1 or 2
  paragraphs before it. The ``"\\n\\n"`` separator stays at the end of the preceding episode,
  so a cut falls right before the keyword paragraph. A trace left as one episode although a
  keyword paragraph was skipped this way gets a ``SingleEpisodeWarning`` naming it.
- ``"backtrack"``: backtracking-search traces (steps labelled ``Node #``): a line that begins
  with ``Backtrack to Line N`` or ``Backtrack to beginning`` starts a new episode.
- ``"regex"``: a new episode starts at every match start of ``pattern``.
- ``"tokens"``: fixed windows of ``window`` tokens (needs ``tokenizer``).

Options common to all schemes (applied in this order, after the scheme's own cuts):
``max_cuts`` keeps the first ``max_cuts`` cuts (the rest of the trace is one final episode;
the analysis code called it ``max_steps``); ``merge_episodes`` merges each ``merge_episodes``
consecutive episodes into one (the analysis code's ``group_size``). The old names still work
for one release, with a ``DeprecationWarning``.

Token offsets. With a tokenizer, the trace is tokenized once (``return_offsets_mapping=True``,
no special tokens) and each char offset ``c`` maps to the token offset
``t(c) = min{i : token_end[i] > c}`` (or the number of tokens when none): the token prefix
``ids[:t(c)]`` is the longest one whose text ends at or before ``c``. A token that straddles a
cut therefore belongs to the *later* episode, so a prefix never shows the meta-prover any text
from past the cut. On R1 traces the cut sits right after ``"\\n\\n"`` and tokenizers split
there, so straddling is rare. For token ids that came from a model (not from re-tokenizing the
text) use ``segment_ids``: it decodes the ids and maps cuts onto those exact ids.

Where we depart from the released analysis code: nothing in the rule itself; the released
code rebuilt episodes by rejoining paragraphs, which we reproduce by slicing the original text
(identical output, but the join is exact by construction, including "\\n\\n\\n" runs).
"""
from __future__ import annotations

import bisect
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

from mrt_engine._native import native as _native
from mrt_engine.token_spans import decode_with_spans, token_char_spans  # noqa: F401 (public here too)

R1_KEYWORDS: tuple[str, ...] = (
    "Wait",
    "But wait",
    "Alternatively",
    "Is there another way to think about this?",
    "But let me double-check",
    "But hold on",
)
PARAGRAPH_SEP = "\n\n"
# The R1 rule skips a keyword paragraph whose previous boundary is 0, 1 or 2 paragraphs before
# it, i.e. a new episode needs at least 3 paragraphs since the previous boundary.
R1_MIN_PARAGRAPHS = 3
BACKTRACK_PATTERN = r"(?m)^Backtrack to (?:Line \d+|beginning)"

_USE_NATIVE = _native is not None and hasattr(_native, "r1_cuts") and hasattr(_native, "char_to_token_offsets")


@dataclass(frozen=True)
class Episode:
    """One episode: ``text == trace[char_start:char_end]``; token span when a tokenizer was given."""

    text: str
    char_start: int
    char_end: int
    token_start: int | None = None
    token_end: int | None = None

    def __post_init__(self):
        if not 0 <= self.char_start <= self.char_end:
            raise ValueError(f"Episode char span [{self.char_start}, {self.char_end}) is not ordered")
        if self.char_end - self.char_start != len(self.text):
            raise ValueError(
                f"Episode text has {len(self.text)} chars but its span [{self.char_start}, "
                f"{self.char_end}) covers {self.char_end - self.char_start}"
            )
        if (self.token_start is None) != (self.token_end is None):
            raise ValueError("Episode needs both token_start and token_end, or neither")
        if self.token_start is not None and not 0 <= self.token_start <= self.token_end:
            raise ValueError(f"Episode token span [{self.token_start}, {self.token_end}) is not ordered")


# ---------------------------------------------------------------- pure-Python scans (fallbacks)
def _r1_cuts_py(text: str, keywords: Sequence[str], min_paragraphs: int) -> list[int]:
    cuts: list[int] = []
    last_boundary = 0  # paragraph index of the previous boundary; the trace start counts
    start = 0  # char offset of the current paragraph
    index = 0
    while True:
        if index - last_boundary >= min_paragraphs and text.startswith(tuple(keywords), start):
            cuts.append(start)
            last_boundary = index
        sep = text.find(PARAGRAPH_SEP, start)
        if sep < 0:
            return cuts
        start = sep + len(PARAGRAPH_SEP)
        index += 1


def _char_to_token_offsets_py(char_offsets: Sequence[int], token_char_spans) -> list[int]:
    ends = []
    prev_end = 0
    for i, span in enumerate(token_char_spans):
        start, end = int(span[0]), int(span[1])
        if not 0 <= start <= end or end < prev_end:
            raise ValueError(
                f"token_char_spans[{i}] = ({start}, {end}) is not a valid offset mapping entry "
                f"(need 0 <= start <= end and ends non-decreasing; previous end {prev_end}). "
                "Tokenize without special tokens (add_special_tokens=False)."
            )
        ends.append(end)
        prev_end = end
    out = []
    for c in char_offsets:
        if c < 0:
            raise ValueError("char offsets must be >= 0")
        out.append(bisect.bisect_right(ends, c))
    return out


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- public scan helpers
def r1_cuts(text: str, *, keywords: Sequence[str] = R1_KEYWORDS, min_paragraphs: int = R1_MIN_PARAGRAPHS) -> list[int]:
    """Char offsets where the R1 rule starts a new episode (no ``max_cuts`` limit)."""
    keywords = tuple(keywords)
    if not keywords or any(not isinstance(k, str) or not k for k in keywords):
        raise ValueError(f"keywords must be non-empty strings, got {keywords!r}")
    if min_paragraphs < 1:
        raise ValueError(f"min_paragraphs must be >= 1, got {min_paragraphs}")
    if _USE_NATIVE:
        # UTF-8 bytes in, code-point offsets out ("surrogatepass" keeps lone surrogates 1 code point).
        return list(_native.r1_cuts(_utf8(text), [_utf8(k) for k in keywords], int(min_paragraphs)))
    return _r1_cuts_py(text, keywords, min_paragraphs)


def char_to_token_offsets(char_offsets: Sequence[int], token_char_spans: Sequence[Sequence[int]]) -> list[int]:
    """Map char offsets to token offsets: ``t(c) = min{i : token_end[i] > c}`` (else the count).

    ``token_char_spans`` is a tokenizer offset mapping (``[(start, end), ...]`` in code points,
    no special tokens). The ids ``[:t(c)]`` are the longest token prefix whose text ends at or
    before ``c``; a token straddling ``c`` goes to the later side.
    """
    offsets = [int(c) for c in char_offsets]
    spans = [(int(a), int(b)) for a, b in token_char_spans]
    if _USE_NATIVE:
        return list(_native.char_to_token_offsets(offsets, spans))
    return _char_to_token_offsets_py(offsets, spans)


# ---------------------------------------------------------------- schemes
SchemeFn = Callable[..., Sequence[int]]


@dataclass(frozen=True)
class _Scheme:
    fn: SchemeFn
    needs_tokens: bool
    options: tuple[str, ...] | None  # None: any keyword options go to fn


SCHEMES: dict[str, _Scheme] = {}


def register_scheme(name: str, fn: SchemeFn, *, needs_tokens: bool = False,
                    options: Sequence[str] | None = None) -> None:
    """Plug in a segmentation scheme: ``fn(text, **options) -> cuts`` (char offsets).

    Cuts are where new episodes start; 0 and ``len(text)`` are ignored, the rest must be
    strictly increasing inside the text. With ``needs_tokens=True`` the function also receives
    ``token_char_spans=[(start, end), ...]`` (``segment`` then requires a tokenizer).
    ``options`` names the keyword options the scheme accepts (others are rejected with a
    clear error); ``None`` passes any keyword options through to ``fn``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"scheme name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"scheme {name!r}: fn must be callable, got {type(fn).__name__}")
    SCHEMES[name] = _Scheme(fn, needs_tokens, None if options is None else tuple(options))


class SingleEpisodeWarning(UserWarning):
    """The R1 rule left a trace as one episode although a paragraph starts with a keyword."""


def _warn_skipped_keywords(text: str, keywords: Sequence[str], min_paragraphs: int) -> None:
    # No cut at all: the only keyword paragraphs sit within min_paragraphs of the trace start.
    head = text.split(PARAGRAPH_SEP, min_paragraphs)[1:min_paragraphs]
    skipped = [(i, next(k for k in keywords if p.startswith(k))) for i, p in enumerate(head, 1)
               if p.startswith(tuple(keywords))]
    if not skipped:
        return
    named = ", ".join(f"paragraph {i + 1} (index {i}) starts with {k!r}" for i, k in skipped)
    warnings.warn(
        f"segment: the trace is one episode although {named}: the R1 rule cuts only at a keyword paragraph "
        f"at least min_paragraphs={min_paragraphs} paragraphs after the previous boundary (the trace start "
        f"counts), so paragraphs 2 to {min_paragraphs} (index 1 to {min_paragraphs - 1}) never cut. "
        "Pass min_paragraphs=... to change the rule.", SingleEpisodeWarning, stacklevel=5)


def _r1_scheme(text: str, *, keywords: Sequence[str] = R1_KEYWORDS, min_paragraphs: int = R1_MIN_PARAGRAPHS) -> list[int]:
    cuts = r1_cuts(text, keywords=keywords, min_paragraphs=min_paragraphs)
    if not cuts and min_paragraphs > 1:
        _warn_skipped_keywords(text, tuple(keywords), min_paragraphs)
    return cuts


def _regex_scheme(text: str, *, pattern: str | re.Pattern | None = None, flags: int = 0) -> list[int]:
    if pattern is None:
        raise ValueError('scheme="regex" needs pattern=..., e.g. segment(text, "regex", pattern=r"(?m)^Step \\d+")')
    regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
    cuts = []
    for match in regex.finditer(text):
        if 0 < match.start() < len(text) and (not cuts or match.start() > cuts[-1]):
            cuts.append(match.start())
    return cuts


def _backtrack_scheme(text: str) -> list[int]:
    return _regex_scheme(text, pattern=BACKTRACK_PATTERN)


def _tokens_scheme(text: str, *, token_char_spans, window: int | None = None) -> list[int]:
    if window is None or isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f'scheme="tokens" needs window=N with N >= 1 tokens, got window={window!r}')
    # Cut at the end of token kN-1 (where token kN's text begins); a char split over tokens
    # moves the cut to the char boundary after it.
    cuts = []
    for k in range(window, len(token_char_spans), window):
        c = int(token_char_spans[k - 1][1])
        if 0 < c < len(text) and (not cuts or c > cuts[-1]):
            cuts.append(c)
    return cuts


register_scheme("r1", _r1_scheme, options=("keywords", "min_paragraphs"))
register_scheme("backtrack", _backtrack_scheme, options=())
register_scheme("regex", _regex_scheme, options=("pattern", "flags"))
register_scheme("tokens", _tokens_scheme, needs_tokens=True, options=("window",))


# ---------------------------------------------------------------- segment
def _check_cuts(cuts: Sequence[int], text_len: int, scheme: str) -> list[int]:
    out = []
    for c in cuts:
        if isinstance(c, bool) or not isinstance(c, int):
            try:
                c = int(c)
            except (TypeError, ValueError):
                raise TypeError(f"scheme {scheme!r} returned a non-integer cut {c!r}") from None
        if c in (0, text_len):
            continue
        if not 0 < c < text_len:
            raise ValueError(f"scheme {scheme!r} returned cut {c} outside the trace (length {text_len})")
        if out and c <= out[-1]:
            raise ValueError(f"scheme {scheme!r} returned cuts that are not strictly increasing: {list(cuts)}")
        out.append(c)
    return out


def _limit_cuts(cuts: list[int], max_cuts: int | None, merge_episodes: int) -> list[int]:
    if max_cuts is not None:
        cuts = cuts[:max_cuts]
    # Merging merge_episodes consecutive episodes keeps every merge_episodes-th cut.
    return cuts[merge_episodes - 1 :: merge_episodes]


_RENAMED_OPTIONS = {"max_steps": "max_cuts", "group_size": "merge_episodes"}


def _common_options(opts: dict) -> tuple[int | None, int]:
    """Pop ``max_cuts`` / ``merge_episodes`` (or their deprecated names) from ``opts``."""
    for old, new in _RENAMED_OPTIONS.items():
        if old in opts:
            warnings.warn(f"segment option {old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=3)
            if new in opts:
                raise ValueError(f"give {new!r} or its old name {old!r}, not both")
            opts[new] = opts.pop(old)
    return opts.pop("max_cuts", None), opts.pop("merge_episodes", 1)


def _check_common(scheme, max_cuts, merge_episodes) -> _Scheme:
    if isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; known: {sorted(SCHEMES)} (add one with register_scheme)")
        entry = SCHEMES[scheme]
    elif callable(scheme):
        entry = _Scheme(scheme, False, None)
    else:
        raise TypeError(f"scheme must be a registered name or a callable text -> cuts, got {type(scheme).__name__}")
    if isinstance(merge_episodes, bool) or not isinstance(merge_episodes, int) or merge_episodes < 1:
        raise ValueError(f"merge_episodes must be an integer >= 1, got {merge_episodes!r}")
    if max_cuts is not None and (isinstance(max_cuts, bool) or not isinstance(max_cuts, int) or max_cuts < 0):
        raise ValueError(f"max_cuts must be None or an integer >= 0, got {max_cuts!r}")
    return entry


def _scheme_cuts(text: str, scheme, entry: _Scheme, opts: dict, spans) -> list[int]:
    name = scheme if isinstance(scheme, str) else getattr(scheme, "__name__", "custom")
    if entry.options is not None:
        unknown = set(opts) - set(entry.options)
        if unknown:
            raise ValueError(
                f"scheme {name!r} got unknown option(s) {sorted(unknown)}; it accepts {list(entry.options)} "
                "plus max_cuts and merge_episodes"
            )
    if entry.needs_tokens:
        if spans is None:
            raise ValueError(f"scheme {name!r} needs token offsets: pass tokenizer=...")
        opts = dict(opts, token_char_spans=spans)
    return _check_cuts(entry.fn(text, **opts), len(text), name)


def _episodes(text: str, cuts: list[int], spans) -> list[Episode]:
    bounds = [0, *cuts, len(text)]
    if spans is None:
        return [Episode(text[a:b], a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    tokens = char_to_token_offsets(bounds, spans)
    # The trace covers every token, including zero-width spans at either end.
    tokens[0], tokens[-1] = 0, len(spans)
    return [
        Episode(text[a:b], a, b, ta, tb)
        for a, b, ta, tb in zip(bounds[:-1], bounds[1:], tokens[:-1], tokens[1:])
    ]


def segment(text: str, scheme: str | SchemeFn = "r1", *, tokenizer=None, **opts) -> list[Episode]:
    """Split a trace into episodes; ``"".join(e.text for e in episodes) == text``.

    Args:
        text: the reasoning trace (the model's output, without the prompt).
        scheme: ``"r1"``, ``"backtrack"``, ``"regex"``, ``"tokens"``, a name added with
            ``register_scheme``, or a callable ``text -> cuts``.
        tokenizer: when given, episodes carry token spans over ``tokenizer(text)`` without
            special tokens (see the module docstring for how a cut inside a token maps).
        **opts: ``max_cuts`` (keep at most this many cuts; the rest of the trace is one final
            episode), ``merge_episodes`` (merge this many consecutive episodes into one; the
            last group may be short), and the scheme options (r1: ``keywords``, ``min_paragraphs``; regex: ``pattern``,
            ``flags``; tokens: ``window``).

    An empty trace gives one empty episode, so every trace has at least one episode.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    max_cuts, merge_episodes = _common_options(opts)
    entry = _check_common(scheme, max_cuts, merge_episodes)
    spans = token_char_spans(tokenizer, text)[1] if tokenizer is not None else None
    cuts = _limit_cuts(_scheme_cuts(text, scheme, entry, opts, spans), max_cuts, merge_episodes)
    return _episodes(text, cuts, spans)


# ---------------------------------------------------------------- token ids from a model
def segment_ids(tokenizer, token_ids: Sequence[int], scheme: str | SchemeFn = "r1", **opts) -> list[Episode]:
    """Segment a trace given as token ids; token spans index into these exact ids.

    The text is ``tokenizer.decode(token_ids)`` (special tokens kept, no clean-up), so the
    episodes join back to that text; ``token_end`` of the last episode is ``len(token_ids)``.
    """
    max_cuts, merge_episodes = _common_options(opts)
    entry = _check_common(scheme, max_cuts, merge_episodes)
    text, spans = decode_with_spans(tokenizer, token_ids)
    cuts = _limit_cuts(_scheme_cuts(text, scheme, entry, opts, spans), max_cuts, merge_episodes)
    return _episodes(text, cuts, spans)


def cut_points(episodes: Sequence[Episode]) -> list[int]:
    """Char offsets after each episode except the last (where the meta-prover is forked)."""
    return [e.char_end for e in list(episodes)[:-1]]


def token_cut_points(episodes: Sequence[Episode]) -> list[int]:
    """Token offsets after each episode except the last (needs episodes with token spans)."""
    episodes = list(episodes)
    if any(e.token_end is None for e in episodes):
        raise ValueError("episodes have no token spans: call segment(..., tokenizer=tok) or segment_ids(tok, ids)")
    return [e.token_end for e in episodes[:-1]]


def token_cuts(tokenizer, token_ids: Sequence[int], scheme: str | SchemeFn = "r1", **opts) -> list[int]:
    """Token cut positions for a trace given as the model's token ids: ``ids[:cut]`` are prefixes.

    ``token_cut_points(segment_ids(tokenizer, token_ids, scheme, **opts))``. Two char cuts that
    fall inside one token map to the same token cut; duplicates are kept so the list stays
    aligned with the episodes (drop them if you fork the meta-prover per distinct prefix).
    """
    return token_cut_points(segment_ids(tokenizer, token_ids, scheme, **opts))
