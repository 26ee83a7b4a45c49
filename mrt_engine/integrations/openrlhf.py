"""OpenRLHF adapter: a ``reward_func`` file computing the MRT scalar bonus.

OpenRLHF loads a Python file given with ``--reward.remote_url /path/to/file.py``
(``--remote_rm_url`` before 0.11) and calls its ``reward_func(queries, prompts, labels)``.
In OpenRLHF 0.11.2 the loader is ``openrlhf.utils.agent.SingleTurnAgentExecutor``
(``spec_from_file_location("reward_func", path)``), and its ``execute`` calls the function
once per sample, in a thread, with one-element lists: ``queries`` the decoded ``prompt +
response`` token ids (``skip_special_tokens=False``, so the end-of-sequence token stays),
``prompts`` the prompt string as the actor saw it (chat template applied with
``--data.apply_chat_template``), ``labels`` the column named by ``--data.label_key``. It reads
back a dict: ``"rewards"`` (tensor [B], the advantage's input), ``"scores"`` (tensor [B],
dynamic filtering: our 0/1 outcome) and ``"extra_logs"`` (dict of tensors, logged). An
exception in ``reward_func`` is only logged there and leaves the sample without a reward.

This module *is* such a file: point ``--reward.remote_url`` at it (``python -c "import
mrt_engine.integrations.openrlhf as m; print(m.__file__)"``). The rollout worker has no handle
on the actor's weights, so the meta-prover is a model loaded here from ``MRT_PROGRESS_MODEL``
(a checkpoint path, or one of our embedded names); point it at a recent actor checkpoint.
That is our departure from the paper, whose meta-prover is the current policy.

Configuration (environment variables, read once per process):
``MRT_PROGRESS_MODEL`` (required), ``MRT_ALPHA`` (1.0), ``MRT_FORM`` (``progress`` or
``termination_baseline``), ``MRT_INCLUDE_OUTCOME`` (1: rewards = outcome + alpha * progress),
``MRT_ESTIMATOR_MODE`` (``score``), ``MRT_DEVICE`` (``cpu``/``cuda``), ``MRT_DTYPE`` (``float32``).
"""
from __future__ import annotations

import functools
import os

import torch

from mrt_engine.integrations._common import (
    EstimatorConfig,
    ProgressScorer,
    outcome_of,
    reference_answer,
    scalar_reward,
)
from mrt_engine import models  # by module: tests stand in for models.load_model

__all__ = ["reward_func", "split_response", "make_reward_func"]


def split_response(query: str, prompt: str, *, special_tokens: tuple[str, ...] = ()) -> str:
    """The response part of an OpenRLHF query (``prompt + response``, special tokens kept).

    OpenRLHF decodes with ``skip_special_tokens=False``: a left-padded batch puts pad tokens
    before the prompt and end-of-sequence/pad tokens after the response. The response starts
    after the last occurrence of the prompt; trailing special tokens are stripped.
    """
    at = query.rfind(prompt) if prompt else -1
    if prompt and at < 0:
        raise ValueError("OpenRLHF query does not contain its prompt; are queries and prompts from the same batch? "
                         f"prompt starts {prompt[:60]!r}, query starts {query[:60]!r}")
    response = query[at + len(prompt):] if prompt else query
    changed = True
    while changed and special_tokens:
        changed = False
        for tok in special_tokens:
            if tok and response.endswith(tok):
                response = response[: -len(tok)]
                changed = True
    return response


def make_reward_func(scorer: ProgressScorer, *, alpha: float = 1.0, form: str = "progress",
                     include_outcome: bool = True, problem_from_prompt=None):
    """Build an OpenRLHF ``reward_func`` around ``scorer`` (tests and custom set-ups use this).

    ``problem_from_prompt``: maps OpenRLHF's prompt string (chat template applied) to the
    problem text the estimator wraps in its own chat template; default: the prompt as is
    when it has no template markers, else the text between the last user-turn markers the
    tokenizer's template produces.
    """
    if form not in ("progress", "termination_baseline"):
        raise ValueError(f"form={form!r}; OpenRLHF takes a scalar reward: use 'progress' or 'termination_baseline'")

    def reward_func(queries, prompts, labels, **kwargs):
        num = len(queries)
        if len(prompts) != num:
            raise ValueError(f"{len(prompts)} prompts for {num} queries")
        if labels is None or len(labels) != num or any(lab is None or str(lab).strip() == "" for lab in labels):
            raise ValueError(
                "MRT progress needs the reference answer of every prompt in labels: start OpenRLHF with "
                "--data.label_key (--label_key before OpenRLHF 0.11) <the data set column that holds the "
                "reference answers>")
        tok = scorer.tokenizer
        specials = tuple(t for t in (getattr(tok, "all_special_tokens", None) or []) if t)
        responses = [split_response(q, p, special_tokens=specials) for q, p in zip(queries, prompts)]
        to_problem = problem_from_prompt or functools.partial(_problem_text, tok)
        problems = [to_problem(p) for p in prompts]
        results = scorer.estimate(problems, responses, [reference_answer(a, index=i) for i, a in enumerate(labels)])
        rewards = torch.tensor([scalar_reward(r, form=form, alpha=alpha, include_outcome=include_outcome)
                                for r in results], dtype=torch.float32)  # [B]
        outcome = torch.tensor([outcome_of(r) for r in results], dtype=torch.float32)  # [B]
        progress = torch.tensor([float(sum(r.progress)) for r in results], dtype=torch.float32)  # [B]
        j0 = torch.tensor([float(r.j[0]) for r in results], dtype=torch.float32)  # [B]
        return {
            "rewards": rewards,
            "scores": outcome,
            "extra_logs": {"mrt_progress": progress, "mrt_outcome": outcome, "mrt_j0": j0},
        }

    return reward_func


def _problem_text(tokenizer, prompt: str) -> str:
    """Recover the user's problem from a prompt rendered with the tokenizer's chat template."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return prompt
    marker = "\x00MRT_PROBLEM\x00"
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                             add_generation_prompt=True)
    before, _, after = rendered.partition(marker)
    if prompt.startswith(before) and prompt.endswith(after) and len(prompt) >= len(before) + len(after):
        return prompt[len(before): len(prompt) - len(after)]
    # Templates that add a date or a system turn: find the user turn by the text next to it.
    head, tail = before[-32:], after[:32]
    at = prompt.rfind(head) if head else -1
    if at < 0:
        return prompt  # a plain prompt (OpenRLHF run without --apply_chat_template)
    start = at + len(head)
    end = prompt.rfind(tail) if tail else len(prompt)
    return prompt[start: end if end >= start else len(prompt)]


@functools.lru_cache(maxsize=1)
def _default_reward_func():
    name = os.environ.get("MRT_PROGRESS_MODEL")
    if not name:
        raise RuntimeError(
            "mrt_engine.integrations.openrlhf needs the model that estimates progress: set MRT_PROGRESS_MODEL to a "
            "checkpoint directory (e.g. the actor's latest save) before starting OpenRLHF")

    model, tok = models.load_model(name, device=os.environ.get("MRT_DEVICE", "cpu"),
                            dtype=os.environ.get("MRT_DTYPE", "float32"))
    options = EstimatorConfig(mode=os.environ.get("MRT_ESTIMATOR_MODE", "score"))
    return make_reward_func(ProgressScorer(model, tok, options), alpha=float(os.environ.get("MRT_ALPHA", "1.0")),
                            form=os.environ.get("MRT_FORM", "progress"),
                            include_outcome=os.environ.get("MRT_INCLUDE_OUTCOME", "1") == "1")


def reward_func(queries, prompts, labels, **kwargs):
    """OpenRLHF entry point; see the module docstring for configuration."""
    return _default_reward_func()(queries, prompts, labels, **kwargs)
