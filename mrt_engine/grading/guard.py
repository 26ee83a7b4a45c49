"""The in-process time guard: `signal.setitimer` in the main thread, a watchdog thread
elsewhere. Kept for callers who want a soft limit on their own Python code; `grade` no
longer relies on it for math-verify (see worker.py): neither guard can stop one long C call,
and from a non-main thread such a call even holds the GIL so the watchdog cannot return.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

class AnswerCheckTimeout(BaseException):
    """Raised inside a guarded check when it runs past its time.

    A BaseException on purpose: math-verify and sympy catch `Exception` broadly, and the
    timeout must get through them.
    """


def _raise_timeout(signum, frame):
    raise AnswerCheckTimeout()


def _can_use_itimer() -> bool:
    # Only the main thread receives signals, and we must not clobber a timer someone else
    # armed (pytest-timeout, a caller's own alarm).
    if threading.current_thread() is not threading.main_thread():
        return False
    if not hasattr(signal, "setitimer"):
        return False
    if signal.getsignal(signal.SIGALRM) is None:  # a handler set from C: cannot restore it
        return False
    return signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def _interrupt_thread(worker: threading.Thread) -> None:
    # Best effort: raise AnswerCheckTimeout inside the worker at its next bytecode, so an
    # abandoned sympy computation stops instead of burning a core (CPython API; a long
    # call inside C code still finishes first).
    import ctypes

    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(AnswerCheckTimeout)
        )


def run_with_timeout(fn: Callable[[], object], timeout: float | None):
    """fn() or AnswerCheckTimeout after `timeout` seconds (None or <= 0: no limit)."""
    if timeout is None or timeout <= 0:
        return fn()
    if _can_use_itimer():
        old_handler = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn()
        finally:
            try:  # the alarm may fire right here; the handler is restored regardless
                signal.setitimer(signal.ITIMER_REAL, 0.0)
            finally:
                signal.signal(signal.SIGALRM, old_handler)
    box: dict[str, object] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name="mrt-answer-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _interrupt_thread(worker)
        raise AnswerCheckTimeout()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]

