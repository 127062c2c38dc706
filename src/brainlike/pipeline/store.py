"""Atomic result files: a job is done iff its file exists; a partial file is never visible.

Each result is written to a temporary name in the same folder, flushed to disk and then
renamed with ``os.replace`` (atomic on POSIX and Windows; ``brainlike._io.atomic_write``), so a
killed worker leaves at most a stray ``*.tmp-*`` file that is never read back and is cleaned up
on the next run.
"""

from __future__ import annotations

import hashlib
import json
import re
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


def remove_stale_tmp(folder) -> int:
    """Delete leftovers of killed writers (``*.tmp-*``) under ``folder``; return how many."""
    n = 0
    for p in Path(folder).rglob("*.tmp-*"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


def sha256_arrays(*arrays) -> str:
    """Content hash of arrays (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        if a.dtype.kind in "OU":
            h.update("\x00".join(map(str, a.ravel().tolist())).encode())
        else:
            h.update(a.tobytes())
    return h.hexdigest()


def sha256_file(path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
