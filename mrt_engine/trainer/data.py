"""Prompt sampling with a resumable cursor: epochs of seeded permutations."""
from __future__ import annotations

import random


class PromptSampler:
    """Yields ``num`` problems per step from a list, each epoch a fresh permutation seeded by
    ``(seed, epoch)``; ``state()`` / ``load_state()`` make it resume exactly."""

    def __init__(self, problems: list, *, seed: int):
        if not problems:
            raise ValueError("no training problems: check data.task / data.path")
        self.problems = problems
        self.seed = seed
        self.epoch = 0
        self.pos = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next(self, num: int) -> list:
        out = []
        while len(out) < num:
            if self.pos >= len(self._order):
                self.epoch += 1
                self.pos = 0
                self._order = self._permutation(self.epoch)
            out.append(self.problems[self._order[self.pos]])
            self.pos += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._permutation(self.epoch)
