"""The ``brainlike`` command. Thin: every subcommand calls the Python API.

Each module named in ``COMMAND_MODULES`` defines ``register(subparsers)``, which
adds its subcommands and sets ``func`` (called with the parsed arguments).

A user error (a bad argument, config, data file or results folder) ends the command with one
line on stderr, ``brainlike COMMAND: error: ...`` naming the argument, key or file, and exit
code 2; ``brainlike --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import zipfile
from pathlib import Path

COMMAND_MODULES: tuple[str, ...] = ("extract", "datasets", "reproduce", "report", "map", "encode", "benchmark", "run", "demo")

# exceptions that mean "the input is bad", not "brainlike is broken": one line, exit code 2
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError)


class UsageError(Exception):
    """Raised instead of argparse's exit so that a bad argument is one line, like every other user error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block; exit code 2 through main()
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="brainlike", description="How brain-like is a deep network?")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"brainlike.cli.{name}").register(sub)
    return parser


def out_folder(path, option: str = "--out") -> Path:
    """Check that ``path`` can be an output folder (absent, or a writable folder); return it.

    Fails with the option's name and the path: a file where the folder should be, a folder that
    cannot be written, or a path below a file.
    """
    p = Path(path)
    for parent in (p, *p.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "is a file, not a folder" if parent == p else f"cannot be created: {parent} is a file"
                raise NotADirectoryError(f"{option} {path}: {what}")
            try:  # a real write: permission bits say nothing for root, read-only mounts or /proc
                fd, probe = tempfile.mkstemp(prefix=".brainlike-probe-", dir=parent)
                os.close(fd)
                os.unlink(probe)
            except OSError as err:
                raise PermissionError(f"{option} {path}: folder {parent} is not writable ({err.strerror})") from None
            break
    return p


def _message(err: BaseException) -> str:
    msg = str(err)
    if isinstance(err, KeyError) and err.args:
        msg = str(err.args[0])
    if isinstance(err, OSError) and err.filename and str(err.filename) not in msg:
        msg = f"{err.filename}: {msg}"
    if isinstance(err, OSError) and err.strerror and err.filename:
        msg = f"{err.filename}: {err.strerror}" + (f" -> {err.filename2}" if err.filename2 else "")
    msg = " ".join(msg.split()) or type(err).__name__
    return msg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug
    from brainlike._logging import cli_logging

    with cli_logging(logging.DEBUG if debug else logging.INFO):  # the command line shows INFO messages
        try:
            result = args.func(args)
        except USER_ERRORS as err:  # user errors: one clear line, no traceback (unless --debug)
            if debug:
                raise
            print(f"brainlike {args.command}: error: {_message(err)}", file=sys.stderr)
            return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
