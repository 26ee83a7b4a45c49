"""A hard time limit for math-verify: the check runs in a worker process that is killed
when it runs past its time.

An in-process guard cannot stop one long C call: sympy raising a huge integer to a power
(``(9^{99999})^{999}``) holds the GIL inside CPython's ``pow``, so a watchdog thread cannot
even return, and the interrupted check would keep burning a core. A separate process can
simply be killed. Workers are plain ``python _child.py`` processes (the spawn start method's
clean interpreter, without spawn re-importing the caller's ``__main__``), reused across calls
(~1 s to start: the math-verify import) and restarted after a kill. Each thread takes its own
idle worker from a pool, so graders in a thread pool run in parallel. ``shutdown_workers``
(also run at exit) stops them all; a worker also dies with its parent (Linux).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT_S = 120.0  # the first sympy import on a loaded machine can take a while
_CHILD = Path(__file__).with_name("_child.py")


class WorkerError(RuntimeError):
    """The math-verify worker could not start or broke its protocol (not the answer's fault)."""


class _Worker:
    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.pid_of_owner = os.getpid()
        self.proc = subprocess.Popen([sys.executable, str(_CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, bufsize=0)
        self._buf = b""
        line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if line is None or not json.loads(line).get("ready"):
            self.kill()
            raise WorkerError(f"the math-verify worker ({_CHILD}) did not start within {STARTUP_TIMEOUT_S:.0f} s "
                              "(see its error above); is math-verify installed?")

    def _read_line(self, deadline: float) -> bytes | None:
        """One protocol line, or None when the deadline passes or the worker died."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the worker exited (crashed, or killed by the memory cap)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def compare(self, reference: str, candidate: str, timeout: float) -> str | None:
        """The worker's status string, or None on timeout (the worker is then dead)."""
        request = json.dumps({"reference": reference, "candidate": candidate}).encode() + b"\n"
        try:
            self.proc.stdin.write(request)
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerError(f"the math-verify worker died before the request ({exc})") from exc
        line = self._read_line(time.monotonic() + timeout)
        if line is None:
            crashed = self.proc.poll() is not None
            self.kill()
            return "costly" if crashed else None  # a crash here is the memory cap: the answer's size
        return json.loads(line)["status"]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            pipe.close()


_lock = threading.Lock()
_idle: list[_Worker] = []
_busy: set[_Worker] = set()


def _take() -> _Worker:
    with _lock:
        if _idle and _idle[-1].pid_of_owner != os.getpid():  # we are a forked child: not our workers
            _idle.clear()
            _busy.clear()
        while _idle:
            w = _idle.pop()
            if w.alive:
                _busy.add(w)
                return w
    w = _Worker()  # outside the lock: startup takes a second
    with _lock:
        _busy.add(w)
    return w


def _give_back(w: _Worker) -> None:
    with _lock:
        _busy.discard(w)
        if w.alive:
            _idle.append(w)


def check_in_worker(reference: str, candidate: str, timeout: float) -> str:
    """math-verify's verdict under a hard limit: 'equal' / 'different' / 'unparseable' /
    'costly' (out of memory) / 'timeout' (the worker was killed; the next call starts a new one)."""
    w = _take()
    try:
        status = w.compare(reference, candidate, timeout)
    finally:
        _give_back(w)
    return "timeout" if status is None else status


def num_workers() -> int:
    """Live worker processes of this process (for tests and monitoring)."""
    with _lock:
        return sum(w.alive for w in (*_idle, *_busy) if w.pid_of_owner == os.getpid())


def shutdown_workers() -> None:
    """Stop every worker (run at exit too); the next check starts a fresh one."""
    with _lock:
        workers = [w for w in (*_idle, *_busy) if w.pid_of_owner == os.getpid()]
        _idle.clear()
        _busy.clear()
    for w in workers:
        w.kill()


atexit.register(shutdown_workers)
