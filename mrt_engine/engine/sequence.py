"""One sequence in the engine (a prompt and the tokens sampled after it) and its output."""
from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from .config import SamplingParams

_ids = itertools.count()


class Status(enum.Enum):
    WAITING = 0
    RUNNING = 1
    FINISHED = 2


@dataclass
class GenerationOutput:
    """One sample: ``token_ids`` are the sampled tokens (prompt excluded); ``text`` their
    decoding, cut before a stop string; ``logprobs[i]`` the raw-model log-prob of
    ``token_ids[i]`` (None unless ``SamplingParams.logprobs``); ``finish_reason`` is
    ``"stop"`` (EOS, a stop token id or a stop string) or ``"length"`` (max_tokens)."""

    prompt_ids: list[int]
    token_ids: list[int]
    text: str
    logprobs: list[float] | None
    finish_reason: str


class Sequence:
    """Token ids, where their KV lives (``block_table``) and how far it is computed.

    ``num_computed_tokens`` tokens have their KV in the cache; the engine computes the rest
    (a prefill chunk, or the one newest token when decoding). ``num_samples`` > 1 on a
    parent that is still prefilling: when its prompt is done it samples that many first
    tokens and forks into as many sequences sharing its blocks.
    """

    def __init__(self, token_ids: list[int], params: SamplingParams, *, request_id: int, sample_index: int,
                 seed: int, num_samples: int = 1):
        self.seq_id = next(_ids)
        self.token_ids = list(token_ids)
        self.num_prompt_tokens = len(token_ids)
        self.params = params
        self.request_id = request_id
        self.sample_index = sample_index
        self.seed = seed
        self.num_samples = num_samples
        self.status = Status.WAITING
        self.block_table: list[int] = []
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0  # of the computed ones, how many came from the prefix cache
        self.prefilled = False  # all but the newest token computed: the next step is a decode step
        self.logprobs: list[float] = []
        self.finish_reason: str | None = None
        self.stop_text_end: int | None = None  # where a stop string began in the decoded text
        # Cascade grouping: sequences forked together share their full blocks (the planner
        # reads which from the block tables).
        self.group_id = self.seq_id

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def output_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    def __repr__(self) -> str:
        return (f"Sequence(id={self.seq_id}, req={self.request_id}.{self.sample_index}, len={len(self)}, "
                f"computed={self.num_computed_tokens}, blocks={self.block_table}, {self.status.name})")
