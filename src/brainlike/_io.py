"""Atomic file writes shared by every room.

A result is written to a temporary file beside its final name and renamed into
place, so a killed run never leaves a partial file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path, writer: Callable[[str], object], *, suffix: str = ".tmp") -> Path:
    """Call ``writer(tmp_path)``, then rename the temporary file to ``path``.

    ``suffix`` is the temporary file's extension, for writers that infer the format
    from it (matplotlib's ``savefig``). The file gets the usual 0644 permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
