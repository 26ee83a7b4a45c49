"""Char spans of tokens: of a text's own tokenization, or of token ids a model generated.

The segmenter (``mrt_engine.episodes``) maps its char cuts onto these spans; the estimator
uses them to keep a model's exact ids. A bottom-layer module: tokenizers only.
"""
from __future__ import annotations

from typing import Sequence


def token_char_spans(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """(ids, char spans) of ``text`` tokenized without special tokens (needs a fast tokenizer)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as exc:  # slow tokenizers have no offset mapping
        raise ValueError(
            "token offsets need a fast tokenizer (return_offsets_mapping); load it with use_fast=True, "
            "or segment the model's token ids with segment_ids(tokenizer, ids)"
        ) from exc
    return list(enc["input_ids"]), [(int(a), int(b)) for a, b in enc["offset_mapping"]]


def decode_with_spans(tokenizer, token_ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode ``token_ids`` and give each token its char span in the decoded text.

    Decoding is incremental over a short window (like streaming detokenizers): a token whose
    bytes end mid-character gets an empty span at the end of the text so far, and the tokens
    that complete the character share its end. If the windowed pieces do not add up to the
    full decode (a tokenizer whose decoding depends on long context), spans are recomputed
    exactly from prefix decodes (quadratic, but correct).
    """
    ids = [int(i) for i in token_ids]
    kwargs = dict(skip_special_tokens=False, clean_up_tokenization_spaces=False)
    full = tokenizer.decode(ids, **kwargs)
    spans: list[tuple[int, int]] = []
    pieces: list[str] = []
    length = 0
    prefix_offset = read_offset = 0  # decode(ids[prefix_offset:read_offset]) is already emitted
    for i in range(len(ids)):
        prefix_text = tokenizer.decode(ids[prefix_offset:read_offset], **kwargs)
        new_text = tokenizer.decode(ids[prefix_offset : i + 1], **kwargs)
        if new_text.endswith("\ufffd") or not new_text.startswith(prefix_text):
            spans.append((length, length))  # incomplete character: wait for the next token
            continue
        piece = new_text[len(prefix_text) :]
        pieces.append(piece)
        # Tokens since read_offset (waiting on an incomplete char) end where this piece ends.
        for j in range(read_offset, i):
            spans[j] = (spans[j][0], length + len(piece))
        spans.append((length, length + len(piece)))
        length += len(piece)
        prefix_offset, read_offset = max(0, i + 1 - 4), i + 1
    emitted = "".join(pieces)
    if read_offset < len(ids) and full.startswith(emitted):
        # Trailing tokens never completed a character: they end with the text.
        spans[read_offset:] = [(length, len(full))] * (len(ids) - read_offset)
        emitted = full
    if emitted != full:
        spans = []
        prev = 0
        for i in range(len(ids)):
            end = len(tokenizer.decode(ids[: i + 1], **kwargs))
            end = max(prev, min(end, len(full)))
            spans.append((prev, end))
            prev = end
        if spans:
            spans[-1] = (spans[-1][0], len(full))
    return full, spans
