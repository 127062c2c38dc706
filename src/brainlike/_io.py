"""Atomic file writes shared by every room.

A result is written to a temporary file beside its final name and renamed into
place, so a killed run never leaves a partial file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path, writer: Callable[[str], object], *, suffix: str = "", fsync: bool = False) -> Path:
    """Call ``writer(tmp_path)``, then rename the temporary file to ``path``.

    The temporary file is ``.NAME.tmp-XXXXXXXX`` + ``suffix`` beside ``path`` (``suffix`` for
    writers that infer the format from the extension, like matplotlib's ``savefig``); leftovers of
    killed writers match ``*.tmp-*``. ``fsync=True`` flushes the data to disk before the rename,
    for files whose existence marks finished work (results, completion records): after a crash
    the name never points at data that was not written. The file gets the usual 0644 permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), fsync=fsync)
