"""Errors that are the user's to fix (bad input file, bad config, missing file or model).

The rule the ``mrt-engine`` command follows:

- **Expected** errors are :class:`MRTUserError`. The command prints one line,
  ``mrt-engine: error: <what was wrong, where, what to do>``, and exits 2; ``--debug`` shows
  the traceback instead. Library code that reads user data (data files, checkpoints) raises
  ``MRTUserError`` itself; a command wraps the phase where it reads its inputs, config and
  model in :func:`user_input`, which turns ``ValueError`` / ``TypeError`` / ``KeyError`` /
  ``OSError`` (and YAML syntax errors) raised there into ``MRTUserError``.
- Everything else is **unexpected** (a bug, or a failure mid-run) and keeps its traceback.

``MRTUserError`` subclasses ``ValueError``, so library callers that catch ``ValueError`` keep
working.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

__all__ = ["MRTUserError", "user_input", "one_line", "unknown_fields"]


class MRTUserError(ValueError):
    """A mistake in what the user gave; the message says what, where and what to do."""


def one_line(message: object) -> str:
    """The message with every line break (and the blanks around it) folded into one space."""
    return re.sub(r"\s*\n\s*", " ", str(message)).strip()


def _expected_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ValueError, TypeError, KeyError, OSError]
    try:
        import yaml

        types.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover - yaml is a dependency
        pass
    return tuple(types)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        return f"missing key {exc.args[0]!r}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return one_line(exc) or type(exc).__name__


@contextmanager
def user_input(where: str | None = None, *, kinds: tuple[type[BaseException], ...] | None = None):
    """Inside this block, ``kinds`` (default: ValueError, TypeError, KeyError, OSError, YAML
    errors) are the input's fault: re-raised as :class:`MRTUserError`, prefixed with ``where``
    (a file or option name) unless the message already names it."""
    try:
        yield
    except MRTUserError:
        raise
    except BaseException as exc:
        if not isinstance(exc, kinds or _expected_types()):
            raise
        text = _describe(exc)
        if where and not text.startswith(where):
            text = f"{where}: {text}"
        raise MRTUserError(text) from exc


def unknown_fields(found, known, *, where: str, fix: str) -> MRTUserError:
    """The error for fields in ``found`` that are not ``known``: names each one (with the
    closest known name, for a typo), lists the known ones, and ends with ``fix``."""
    import difflib

    known = sorted(known)
    hints = []
    for name in sorted(set(found) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return MRTUserError(f"{where}: unknown field {', '.join(hints)}; known fields: {known}. {fix}")
