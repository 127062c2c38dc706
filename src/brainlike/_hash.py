"""Content hashing: the one home for keys that decide reuse.

A key that decides whether a result can be reused must cover the whole content of every input,
or a changed input returns a stale answer. Arrays are hashed with their dtype and shape, in
bounded memory (row blocks of memory-mapped arrays, unit chunks of feature stores); xxh3-128
hashes at several GB/s, so hashing everything costs little next to the work it guards.
(Published dataset checksums stay SHA-256: see ``datasets/_fetch.py``.)
"""

from __future__ import annotations

import json

import numpy as np
import xxhash

__all__ = ["ContentHasher", "hash_arrays", "hash_buffer", "hash_file", "hash_handle", "hash_json"]

BLOCK_BYTES = 64 << 20


class ContentHasher:
    """Incremental xxh3-128 over arrays, feature handles, files and JSON-able values."""

    def __init__(self):
        self._h = xxhash.xxh3_128()

    def bytes(self, data) -> ContentHasher:
        self._h.update(len(data).to_bytes(8, "little"))
        self._h.update(data)
        return self

    def json(self, value) -> ContentHasher:
        return self.bytes(json.dumps(value, sort_keys=True, default=str).encode())

    def array(self, arr) -> ContentHasher:
        """dtype, shape and every element, streamed by blocks of rows (memmaps stay on disk)."""
        arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
        self.json(["array", arr.dtype.str, list(arr.shape)])
        if arr.dtype.kind in "OUS":
            for s in arr.ravel().tolist():
                self.bytes(str(s).encode())
            return self
        if arr.ndim == 0 or arr.nbytes <= BLOCK_BYTES:
            self._h.update(np.ascontiguousarray(arr).data.cast("B"))
            return self
        rows = max(1, BLOCK_BYTES // max(1, arr[0].nbytes))
        for start in range(0, arr.shape[0], rows):
            self._h.update(np.ascontiguousarray(arr[start:start + rows]).data.cast("B"))
        return self

    def handle(self, handle, units_per_block: int | None = None) -> ContentHasher:
        """A 2-D feature source (numpy array, memmap, zarr array, or anything with ``.read(units)``
        and ``.shape``), hashed unit chunk by unit chunk, so the whole layer need not fit in memory.

        Values are hashed as the float32 the jobs read (``pipeline.jobs.read_units``)."""
        if isinstance(handle, np.ndarray):
            return self.array(handle)
        shape = tuple(int(s) for s in getattr(handle, "shape", np.shape(handle)))
        if len(shape) != 2:
            raise ValueError(f"feature handle: expected a 2-D (stimuli, units) source; got shape {shape}")
        n_rows, n_units = shape
        self.json(["handle", list(shape)])
        step = units_per_block or max(1, BLOCK_BYTES // (4 * max(1, n_rows)))
        for start in range(0, n_units, step):
            units = slice(start, min(start + step, n_units))
            if hasattr(handle, "read"):
                block = handle.read(units)
            else:
                block = handle[:, units]
            # unit-major bytes: the key does not depend on the chunk size
            block = np.ascontiguousarray(np.asarray(block, dtype=np.float32).T)
            self._h.update(block.data.cast("B"))
        return self

    def file(self, path, block: int = 1 << 22) -> ContentHasher:
        with open(path, "rb") as fh:
            while chunk := fh.read(block):
                self._h.update(chunk)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_arrays(*arrays) -> str:
    """Key of arrays (dtype, shape and all bytes)."""
    h = ContentHasher()
    for a in arrays:
        h.array(a)
    return h.hexdigest()


def hash_handle(handle) -> str:
    """Key of a whole 2-D feature source, read in bounded memory."""
    return ContentHasher().handle(handle).hexdigest()


def hash_buffer(data) -> str:
    """xxh3-128 of raw bytes (no length prefix): equal to ``hash_file`` of a file holding them."""
    return xxhash.xxh3_128(data).hexdigest()


def hash_file(path) -> str:
    return ContentHasher().file(path).hexdigest()


def hash_json(value) -> str:
    return ContentHasher().json(value).hexdigest()
