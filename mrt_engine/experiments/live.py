"""Live progress of training runs that work in other processes (the demo's algorithms,
compare's arms and seeds): tqdm lines on stderr with the training tokens against the budget,
the step, the phase and an ETA.

The runs are not asked for anything: each run's rank 0 appends a row to
``<run_dir>/metrics.jsonl`` every step (``train_tokens_total`` and ``step``), and a thread here
reads those files once a second. Bars go to stderr and, by default, only to a terminal, so what
a command prints on stdout (the demo's table, compare's report) is byte for byte the same with
or without them. Lines printed while the bars are up go through :meth:`RunBars.paused`.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WatchedRun:
    label: str
    run_dir: Path
    steps: int                      # the run's step cap
    max_train_tokens: int | None    # its token budget (it stops at whichever comes first)

    @property
    def total(self) -> int:
        return self.max_train_tokens or self.steps

    def amount(self, row: dict) -> int:
        """How far ``row`` is, in the bar's unit (tokens under a budget, else steps)."""
        return int(row["train_tokens_total"] if self.max_train_tokens else row["step"])


def last_train_row(path: Path, *, since: float) -> tuple[dict, float] | None:
    """(the newest training row of a ``metrics.jsonl``, the file's mtime), or None while there is
    none; a file not written since ``since`` is left by an earlier invocation, not this run."""
    try:
        mtime = path.stat().st_mtime
        if mtime < since:
            return None
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:  # the line being written
            continue
        if "train_tokens_total" in row:
            return row, mtime
    return None


def eta(remaining: float, done: float, seconds: float) -> str:
    """``remaining`` at the rate ``done`` per ``seconds``, as h:mm:ss or m:ss ("?" before a rate)."""
    if done <= 0 or seconds <= 0:
        return "?"
    s = int(remaining * seconds / done)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RunBars:
    """``with RunBars(runs) as bars: ...; bars.done(i)`` when run ``i`` has returned.

    ``combined=False``: one line per run (ETA: to the end of its training, at its own rate since
    its first step). ``combined=True``: one line for all of them (ETA: the rest at the average
    rate of the whole invocation so far, measurements included). ``enabled=None``: only when
    ``file`` (stderr) is a terminal.
    """

    def __init__(self, runs: list[WatchedRun], *, combined: bool = False, enabled: bool | None = None, file=None,
                 interval_s: float = 1.0):
        self.runs, self.combined, self.interval_s = runs, combined, interval_s
        self.file = file if file is not None else sys.stderr
        self.enabled = bool(runs) and (self.file.isatty() if enabled is None else enabled)
        self.bars: list = []
        self.rows: list[dict | None] = [None] * len(runs)
        self.first: list[tuple[float, int] | None] = [None] * len(runs)  # (time, amount) of the first row seen
        self.notes: list[str | None] = [None] * len(runs)  # "done", "reused", "failed" once returned
        self._final: set[int] = set()  # runs whose line is drawn for the last time (its clock stops)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunBars:
        if not self.enabled:
            return self
        from tqdm import tqdm

        self.t0 = time.time()
        fmt = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        if self.combined:
            total = sum(r.total for r in self.runs)
            self.bars = [tqdm(total=total, desc=f"{len(self.runs)} runs", bar_format=fmt, file=self.file,
                              dynamic_ncols=True, leave=True)]
        else:
            width = max(len(r.label) for r in self.runs)
            self.bars = [tqdm(total=r.total, desc=r.label.ljust(width), bar_format=fmt, file=self.file, position=i,
                              dynamic_ncols=True, leave=True) for i, r in enumerate(self.runs)]
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="run-bars", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.refresh()
            for bar in self.bars:
                bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.refresh()

    def done(self, index: int, note: str = "done") -> None:
        """Run ``index`` has returned (``note``: "done", "reused", "failed")."""
        if not self.enabled:
            return
        with self._lock:
            self.notes[index] = note
            self.refresh()

    @contextmanager
    def paused(self):
        """Print lines to the terminal without tearing the bars."""
        if not self.enabled:
            yield
            return
        from tqdm import tqdm

        with self._lock, tqdm.external_write_mode(file=self.file):
            yield

    # -- drawing
    def refresh(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            for i, run in enumerate(self.runs):
                if self.notes[i] is None:
                    found = last_train_row(run.run_dir / "metrics.jsonl", since=self.t0)
                    if found is not None:
                        self.rows[i] = found[0]
                        self.first[i] = self.first[i] or (found[1], run.amount(found[0]))
            if self.combined:
                self._draw_combined()
            else:
                for i in range(len(self.runs)):
                    self._draw_one(i)

    def _amount(self, i: int) -> int:
        run, row = self.runs[i], self.rows[i]
        if self.notes[i] is not None:
            return run.total
        return min(run.amount(row), run.total) if row is not None else 0

    def _phase(self, i: int) -> str:
        run, row = self.runs[i], self.rows[i]
        if self.notes[i] is not None:
            return self.notes[i]
        if row is None:
            return "starting"
        trained = row["step"] >= run.steps or (run.max_train_tokens and row["train_tokens_total"] >= run.max_train_tokens)
        return f"step {row['step']}/{run.steps}" + (", measuring" if trained else "")

    def _draw_one(self, i: int) -> None:
        if i in self._final:
            return
        bar, run = self.bars[i], self.runs[i]
        if self.notes[i] is not None:
            self._final.add(i)
        bar.n = self._amount(i)
        postfix = self._phase(i)
        if self.notes[i] is None and self.rows[i] is not None and bar.n < run.total:
            t_first, first = self.first[i]
            postfix += f", ETA {eta(run.total - bar.n, bar.n - first, time.time() - t_first)}"
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def _draw_combined(self) -> None:
        bar = self.bars[0]
        bar.n = sum(self._amount(i) for i in range(len(self.runs)))
        finished = sum(n is not None for n in self.notes)
        running = [f"{r.label} {self._phase(i)}" for i, r in enumerate(self.runs)
                   if self.notes[i] is None and self.rows[i] is not None]
        postfix = f"{finished}/{len(self.runs)} done"
        if bar.n < bar.total:  # a reused run took no time here: its amount is not a rate
            reused = sum(r.total for r, note in zip(self.runs, self.notes) if note == "reused")
            postfix += f", ETA {eta(bar.total - bar.n, bar.n - reused, time.time() - self.t0)}"
        bar.set_postfix_str("; ".join([postfix, *running]), refresh=False)
        bar.refresh()
