"""brainlike's messages: the ``"brainlike"`` logger and progress bars that follow it.

Library code never prints to stderr: it logs on ``logging.getLogger("brainlike")`` (INFO for
progress, WARNING for what a user must see) and lets the application decide what to show. The
command line runs each command under :func:`cli_logging` so that INFO messages reach its users (DEBUG with
``--debug``); in Python, ``logging.basicConfig(level=logging.INFO)`` shows them.

Progress bars (:func:`progress_bar`) are drawn only when the caller asks for them, stderr is a
terminal, and the ``"brainlike"`` logger is not set above INFO: ``logging.getLogger("brainlike")
.setLevel(logging.WARNING)`` silences messages and bars alike.
"""

from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger("brainlike")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (so redirection is respected)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the current sys.stderr is always used
        pass


@contextlib.contextmanager
def cli_logging(level: int = logging.INFO):
    """For the duration of a command: show ``"brainlike"`` messages at ``level`` and above on stderr as
    ``[brainlike] message`` (the logger's level and handlers are restored afterwards)."""
    h = _StderrHandler()
    h.setFormatter(logging.Formatter("[brainlike] %(message)s"))
    h.setLevel(level)
    old = log.level
    log.addHandler(h)
    if old == logging.NOTSET or old > level:
        log.setLevel(level)
    try:
        yield h
    finally:
        log.removeHandler(h)
        log.setLevel(old)


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw a progress bar: asked for, and not silenced -- the ``"brainlike"`` logger's own
    level (when set) lets INFO through, and ``logging.disable`` does not cover INFO."""
    if not requested or logging.root.manager.disable >= logging.INFO:
        return False
    return log.level == logging.NOTSET or log.level <= logging.INFO


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar on stderr when :func:`progress_enabled` (asked for explicitly, so drawn to a log file
    too), else a disabled one with the same interface."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not progress_enabled(enabled), **kwargs)
