"""The ``mrt-engine`` command. Each subcommand lives in ``mrt_engine/commands/<name>.py``
with ``add_parser(subparsers)`` (which sets ``func`` on its parser) so parts stay apart.

Errors: an :class:`~mrt_engine.errors.MRTUserError` (bad input, config, missing file or model)
prints ``mrt-engine: error: ...`` on one line and exits 2; ``--debug`` (before or after the
subcommand) shows its traceback. Any other exception keeps its traceback (see errors.py).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from mrt_engine.errors import MRTUserError, one_line

COMMANDS = ("demo", "compare", "gates", "results", "toy", "progress", "regret", "train", "sft", "generate", "report")
_DEBUG_HELP = "on an input or config error, show the traceback instead of the one-line message"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrt-engine", description="Meta Reinforcement Fine-Tuning (MRT) engine")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mrt_engine.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mrt_engine.commands.{name}":
                raise
            continue  # command not part of this build
        module.add_parser(sub)
    for p in sub.choices.values():  # `mrt-engine train --debug ...` works too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def _format_warning(message, category, filename, lineno, line=None, *, _default=warnings.formatwarning):
    # our own warnings (e.g. SingleEpisodeWarning) are for the user: one line, no source excerpt
    if category.__module__.startswith("mrt_engine"):
        return f"mrt-engine: warning: {one_line(message)} [{category.__name__}]\n"
    return _default(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    before, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return int(args.func(args) or 0)
    except MRTUserError as exc:
        if args.debug:
            raise
        print(f"mrt-engine: error: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = before


if __name__ == "__main__":
    sys.exit(main())
