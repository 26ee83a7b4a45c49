"""The pieces the estimator takes from other parts, in one place.

The estimator codes against the internal contracts (docs/interfaces.md): segmenters from
``mrt_engine.episodes``, templates from ``mrt_engine.prompts``, grading from
``mrt_engine.grading``, and the ops from ``mrt_engine.ops``. Imports are lazy so importing
``mrt_engine.progress`` stays cheap.

TRANSITIONAL: while those parts are still being merged, a missing module falls back to a
minimal local stand-in below (plain-torch ops with the contract's signatures, a plain
chat-template prompt, exact-match grading). Each fallback is used only when the module
itself is absent (``ModuleNotFoundError`` naming it), never to hide an error inside it.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

import torch


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


# -- ops --------------------------------------------------------------------------------------
def ops():
    """(prefix_suffix_attention, selective_log_prob) with the signatures of docs/interfaces.md."""
    mod = _optional("mrt_engine.ops")
    if mod is not None:
        return mod.prefix_suffix_attention, mod.selective_log_prob
    return _prefix_suffix_attention_torch, _selective_log_prob_torch


def _prefix_suffix_attention_torch(q, k_suffix, v_suffix, k_prefix, v_prefix, *, suffix_indptr, prefix_start, cuts, scale):
    out = torch.empty_like(q)
    group = q.shape[1] // k_suffix.shape[1]
    bounds = suffix_indptr.tolist()
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if b == a:
            continue
        s, c = int(prefix_start[i]), int(cuts[i])
        k = torch.cat([k_prefix[s:s + c], k_suffix[a:b]]).repeat_interleave(group, dim=1).transpose(0, 1)
        v = torch.cat([v_prefix[s:s + c], v_suffix[a:b]]).repeat_interleave(group, dim=1).transpose(0, 1)
        n = b - a
        mask = torch.ones(n, c + n, dtype=torch.bool).tril(c)
        o = torch.nn.functional.scaled_dot_product_attention(q[a:b].transpose(0, 1).float(), k.float(), v.float(),
                                                             attn_mask=mask, scale=scale)
        out[a:b] = o.transpose(0, 1).to(q.dtype)
    return out


def _selective_log_prob_torch(hidden, weight, targets, *, bias=None, temperature=1.0, return_entropy=False, chunk_size=None):
    logits = hidden.float() @ weight.float().T
    if bias is not None:
        logits = logits + bias.float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(1, targets[:, None].long())[:, 0]


# -- grading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grade:
    score: float
    reason: str
    extracted: str | None


def _extract_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    begin = i
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i]
        i += 1
    return None


def _grade_exact(response: str, reference: str, *, verifier=None):
    got = _extract_boxed(response)
    if got is None:
        return _Grade(0.0, "no boxed answer", None)
    ok = got.strip() == reference.strip()
    return _Grade(float(ok), "exact match" if ok else "mismatch", got)


def grade_fn():
    """``grade(response, reference) -> Grade(score, reason, extracted)``."""
    mod = _optional("mrt_engine.grading")
    return mod.grade if mod is not None else _grade_exact


# -- episodes ---------------------------------------------------------------------------------
def segment_fn():
    """``segment(text, scheme, *, tokenizer=None, **opts) -> list[Episode]``."""
    mod = _optional("mrt_engine.episodes")
    return mod.segment if mod is not None else _segment_paragraphs


@dataclass(frozen=True)
class _Episode:
    text: str
    char_start: int
    char_end: int
    token_start: int | None = None
    token_end: int | None = None


def _segment_paragraphs(text, scheme="r1", *, tokenizer=None, **opts):
    # Minimal stand-in: a new episode at every paragraph starting with "Wait".
    cuts = [m.start() + 2 for m in re.finditer(r"\n\n(?=Wait)", text)]
    bounds = [0, *cuts, len(text)]
    return [_Episode(text[a:b], a, b) for a, b in zip(bounds[:-1], bounds[1:])]


# -- prompts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Template:
    text: str
    close_text: str
    name: str


_FALLBACK_TEMPLATE = _Template(
    text="\n\nTime is up. I should stop thinking and give my final answer now.\nThe final answer is \\boxed{",
    close_text="\n\nThe final answer is \\boxed{", name="boxed")


class _Prompts:
    """Stand-in for ``mrt_engine.prompts`` (chat template, assistant turn open)."""

    BOXED_TERMINATION = _FALLBACK_TEMPLATE
    R1_TERMINATION = _FALLBACK_TEMPLATE

    @staticmethod
    def prompt_ids(tokenizer, problem, *, system=None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": problem}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return list(ids)

    @staticmethod
    def termination_ids(tokenizer, template):
        return list(tokenizer(template.text, add_special_tokens=False).input_ids)

    @staticmethod
    def natural_close_ids(tokenizer, template=_FALLBACK_TEMPLATE):
        return list(tokenizer(template.close_text, add_special_tokens=False).input_ids)

    @staticmethod
    def answer_ids(tokenizer, answer, template=None):
        return list(tokenizer(answer + "}", add_special_tokens=False).input_ids)


def prompts():
    mod = _optional("mrt_engine.prompts")
    return mod if mod is not None else _Prompts
