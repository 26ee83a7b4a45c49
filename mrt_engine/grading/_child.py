"""The math-verify comparison, and the worker process that runs it (``python _child.py``).

Only the standard library and math-verify are imported here: the worker starts as a plain
script (no ``mrt_engine`` import, no re-import of the caller's ``__main__`` as multiprocessing's
spawn would do), speaks one JSON line per request on stdin/stdout, and is killed by its parent
on timeout. Its address space is capped (``MRT_GRADING_MEMORY_MB``, default 4096) so a giant
integer fails with MemoryError instead of eating the machine's memory.
"""

from __future__ import annotations

import json
import logging
import os
import sys


class _DropTimeoutWarning(logging.Filter):
    # math-verify warns that its timeout is off; the caller guards it (worker kill).
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())


def compare(reference: str, candidate: str) -> str:
    """'equal' / 'different' / 'unparseable' (candidate not readable as math) / 'costly'
    (the check ran out of memory)."""
    from math_verify import parse, verify

    try:
        gold = parse("\\boxed{" + reference + "}", parsing_timeout=None)
        pred = parse("\\boxed{" + candidate + "}", parsing_timeout=None)
        if not gold or not pred:
            return "unparseable" if not pred else "different"
        if verify(gold, pred, timeout_seconds=None):
            return "equal"
    except MemoryError:
        return "costly"
    # parse() falls back to the raw string when sympy fails: no math object -> unreadable.
    if all(isinstance(p, str) for p in pred):
        return "unparseable"
    return "different"


def _die_with_parent() -> None:
    # Linux: SIGKILL us when the parent dies, even while we are stuck inside one C call.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve() -> None:
    _die_with_parent()
    try:
        import resource

        limit = int(os.environ.get("MRT_GRADING_MEMORY_MB", "4096")) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything printed by sympy goes to stderr, never into the protocol
    compare("1/2", "0.5")  # the import and the parsers' first-use set-up (~1 s) happen before "ready"

    proto.write('{"ready": true}\n')
    proto.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            status = compare(request["reference"], request["candidate"])
        except Exception as exc:  # noqa: BLE001 - a math-verify crash is the answer's problem
            status = "unparseable"
            print(f"mrt_engine grading worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        proto.write(json.dumps({"status": status}) + "\n")
        proto.flush()


if __name__ == "__main__":
    _serve()
