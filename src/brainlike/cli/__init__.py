"""The ``brainlike`` command. Thin: every subcommand calls the Python API.

Each module named in ``COMMAND_MODULES`` defines ``register(subparsers)``, which
adds its subcommands and sets ``func`` (called with the parsed arguments).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = ("extract", "datasets", "reproduce", "report", "map", "benchmark", "run", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brainlike", description="How brain-like is a deep network?")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"brainlike.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:  # user errors: one clear line, no traceback
        print(f"brainlike {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
