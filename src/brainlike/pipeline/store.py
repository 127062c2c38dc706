"""Atomic result files: a job is done iff its file exists; a partial file is never visible.

Each result is written to a temporary name in the same folder, flushed to disk and then
renamed with ``os.replace`` (atomic on POSIX and Windows; ``brainlike._io.atomic_write``), so a
killed worker leaves at most a stray ``*.tmp-*`` file that is never read back and is cleaned up
on the next run.

A result that is there but damaged (truncated by a copy, overwritten, changed keys) is not done:
:func:`check_result` (the zip directory and its arrays' names, cheap) runs before a job counts
as done, :func:`load_result` (every byte, CRC-checked) when it is read; a damaged file is moved
by :func:`set_aside` to ``work/corrupt/`` with a warning naming it, and the job runs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np

from brainlike._io import atomic_write, atomic_write_bytes

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """A file-system-safe, collision-free form of a layer/ROI/subject name."""
    clean = _SAFE.sub("_", name)
    if clean != name or clean in ("", ".", ".."):
        clean = f"{clean}~{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    return clean


def save_npz(path, **arrays) -> Path:
    """Write arrays to ``path`` (.npz) atomically."""

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file handle: np.savez would append ".npz" to a bare name
            np.savez(fh, **arrays)

    return atomic_write(path, write, fsync=True)


def load_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class CorruptResultError(ValueError):
    """A job result file that cannot be read back whole (the message names the file)."""

    def __init__(self, path, why: str):
        super().__init__(f"{path}: damaged job result ({why})")
        self.path = Path(path)


def _missing_keys(path, names, keys) -> None:
    missing = sorted(set(keys) - set(names))
    if missing:
        raise CorruptResultError(path, f"arrays {missing} missing; has {sorted(names)}")


def check_result(path, keys) -> None:
    """Raise CorruptResultError unless ``path`` is a whole .npz archive holding ``keys``.

    Reads only the zip directory (at the end of the file: a truncated file has none).
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = [n.removesuffix(".npy") for n in z.namelist()]
            size = os.path.getsize(path)
            if any(i.header_offset + i.compress_size > size for i in z.infolist()):
                raise CorruptResultError(path, "an array reaches past the end of the file")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, CorruptResultError):
            raise
        raise CorruptResultError(path, f"{type(e).__name__}: {e}") from None
    _missing_keys(path, names, keys)


def load_result(path, keys) -> dict:
    """Every array of a job result, CRC-checked; CorruptResultError naming the file if damaged."""
    try:
        out = load_npz(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CorruptResultError(path, f"{type(e).__name__}: {e}") from None
    _missing_keys(path, out, keys)
    return out


def set_aside(path, workdir) -> Path | None:
    """Move a damaged result to ``<workdir>/corrupt/`` (same relative path + time); warn naming it."""
    path, workdir = Path(path), Path(workdir)
    try:
        rel = path.relative_to(workdir)
    except ValueError:
        rel = Path(path.name)
    dest = workdir / "corrupt" / rel.parent / f"{rel.name}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # another process moved or replaced it first
        return None
    logging.getLogger("brainlike").warning("damaged job result %s moved to %s; the job runs again", path, dest)
    return dest


def save_text(path, text: str) -> Path:
    return save_bytes(path, text.encode("utf-8"))


def save_json(path, obj) -> Path:
    return save_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_bytes(path, data: bytes) -> Path:
    return atomic_write_bytes(path, data, fsync=True)


def save_table(df, path_parquet) -> tuple[Path, Path]:
    """Write a DataFrame as Parquet and CSV beside it, each atomically."""
    path_parquet = Path(path_parquet)
    csv = path_parquet.with_suffix(".csv")
    atomic_write(path_parquet, lambda p: df.to_parquet(p, index=False), fsync=True)
    atomic_write(csv, lambda p: df.to_csv(p, index=False), fsync=True)
    return path_parquet, csv


def remove_stale_tmp(folder, older_than_s: float = 600.0) -> int:
    """Delete leftovers of killed writers (``*.tmp-*``) under ``folder``; return how many.

    Only files untouched for ``older_than_s`` seconds: another process working on the same folder
    may be writing a younger one right now.
    """
    n = 0
    now = time.time()
    for p in Path(folder).rglob("*.tmp-*"):
        try:
            if now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n


def sha256_file(path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
