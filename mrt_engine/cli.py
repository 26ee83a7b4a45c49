"""The ``mrt-engine`` command. Each subcommand lives in ``mrt_engine/commands/<name>.py``
with ``add_parser(subparsers)`` (which sets ``func`` on its parser) so parts stay apart."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("demo", "progress", "regret", "train", "sft", "generate", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrt-engine", description="Meta Reinforcement Fine-Tuning (MRT) engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mrt_engine.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mrt_engine.commands.{name}":
                raise
            continue  # command not part of this build
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
