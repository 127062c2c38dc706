"""Integrity of a feature store: every chunk file is recorded with its size and xxh3-128 checksum.

The completion record ``_done/batch_<i>`` of a batch lists the chunk files the batch wrote, each
as ``[size, xxh3-128 of the file's bytes]``, plus a checksum of the record itself. From them:

- opening a store checks that every recorded file exists with its size (a missing chunk is never
  read as the fill value) and, by default, every checksum;
- every chunk read through a ``FeatureSet`` is checked against its checksum before it is decoded;
- a record that does not parse or whose own checksum is wrong makes its batch unverifiable: the
  batch counts as damaged (recomputed by ``extract``), never as verified.

``verify(store)`` checks everything and names each damaged file with its layer and batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from zarr.storage import LocalStore

from .._hash import hash_buffer, hash_file, hash_json

__all__ = ["CheckedStore", "DamagedStoreError", "Problem", "ChunkWriter", "StoreState", "check_store",
           "make_record", "write_record"]
from .._io import atomic_write_bytes

DONE = "_done"


def record_path(path: Path, batch: int) -> Path:
    return path / DONE / f"batch_{batch:06d}"


@dataclass(frozen=True)
class Problem:
    """One damaged file of a store: ``file`` is relative to the store folder; ``batch`` is None for
    a layer's array metadata, ``layer`` None for a batch's completion record."""

    file: str
    batch: int | None
    layer: str | None
    what: str

    def __str__(self) -> str:
        where = [f"layer {self.layer!r}"] * (self.layer is not None) + [f"batch {self.batch}"] * (self.batch is not None)
        return f"{self.file} ({', '.join(where)}): {self.what}" if where else f"{self.file}: {self.what}"


class DamagedStoreError(ValueError):
    """A feature store file is missing, truncated or does not match its recorded checksum."""

    def __init__(self, store, problems: list[Problem]):
        self.store = str(store)
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        fix = ("Run extract again with the same request (`brainlike extract ...` or features.extract) to recompute "
               "the damaged batches")
        if any(p.batch is None for p in self.problems):
            fix = "Metadata cannot be recomputed batch by batch: delete the store folder and extract again"
        super().__init__(f"feature store {self.store} is damaged: {shown}{more}. {fix}")


@dataclass
class StoreState:
    """What a check of a store found: verified records, damaged batches and unfinished ones."""

    path: Path
    records: dict[int, dict] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    n_files: int = 0
    n_bytes: int = 0
    checksums: bool = True

    @property
    def damaged(self) -> list[int]:
        return sorted({p.batch for p in self.problems if p.batch is not None})

    @property
    def metadata_damaged(self) -> bool:
        return any(p.batch is None for p in self.problems)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unfinished

    def expected(self, meta: dict) -> dict[str, tuple]:
        """chunk key -> (size, checksum, layer name, batch) over the verified batches."""
        layer_of = {spec["array"]: spec["name"] for spec in meta["layers"]}
        out = {}
        for b, rec in self.records.items():
            for key, (size, digest) in rec["chunks"].items():
                out[key] = (size, digest, layer_of[key.split("/", 1)[0]], b)
        return out


def chunk_keys(meta: dict, batch: int) -> list[str]:
    """The chunk files (zarr v3 keys ``L<i>/c/<batch>/<j>``) that batch ``batch`` writes."""
    keys = []
    for spec in meta["layers"]:
        n_units = 1
        for s in spec["unit_shape"]:
            n_units *= int(s)
        n_chunks = -(-n_units // int(spec["unit_chunk"]))
        keys += [f"{spec['array']}/c/{batch}/{j}" for j in range(n_chunks)]
    return keys


def make_record(batch: int, rows, chunks: dict) -> bytes:
    body = {"batch": int(batch), "rows": [int(rows[0]), int(rows[1])], "chunks": dict(sorted(chunks.items()))}
    return json.dumps({**body, "check": hash_json(body)}).encode()


def write_record(path: Path, batch: int, data: bytes) -> None:
    """Completion record of one batch: tmp file, fsync, atomic rename."""
    atomic_write_bytes(record_path(path, batch), data, fsync=True)


def _read_record(path: Path, meta: dict, batch: int) -> tuple[dict | None, str | None]:
    """(record, None) when sound; (None, why) when damaged; (None, None) when absent."""
    f = record_path(path, batch)
    try:
        raw = f.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"unreadable ({err.strerror})"
    try:
        rec = json.loads(raw)
        body = {k: rec[k] for k in ("batch", "rows", "chunks")}
    except (ValueError, TypeError, KeyError):
        return None, f"does not parse ({len(raw)} bytes)"
    if rec.get("check") != hash_json(body):
        return None, "its own checksum does not match"
    bs, n = int(meta["batch_size"]), len(meta["ids"])
    if body["batch"] != batch or body["rows"] != [batch * bs, min(n, (batch + 1) * bs)]:
        return None, f"names batch {body['batch']} rows {body['rows']}"
    chunks = body["chunks"]
    if not isinstance(chunks, dict) or sorted(chunks) != sorted(chunk_keys(meta, batch)):
        return None, "does not list the chunk files of this batch"
    return rec, None


def check_store(path: Path, meta: dict, checksums: bool = True) -> StoreState:
    """Check every batch of a store: its record, then each file's size (and checksum)."""
    path = Path(path)
    state = StoreState(path, checksums=checksums)
    layer_of = {spec["array"]: spec["name"] for spec in meta["layers"]}
    for spec in meta["layers"]:  # each layer's array metadata (shape, chunks, codec), checksummed at creation
        file = f"{spec['array']}/zarr.json"
        try:
            ok = hash_file(path / file) == meta["array_meta"][spec["array"]]
            what = None if ok else "array metadata damaged (checksum mismatch)"
        except FileNotFoundError:
            what = "array metadata missing"
        if what:
            state.problems.append(Problem(file, None, spec["name"], what))
    for b in range(int(meta["n_batches"])):
        rec, why = _read_record(path, meta, b)
        if rec is None:
            if why is None:
                state.unfinished.append(b)
            else:
                state.problems.append(Problem(f"{DONE}/batch_{b:06d}", b, None,
                                              f"completion record damaged ({why}); the batch cannot be verified "
                                              "and counts as damaged"))
            continue
        bad = []
        for key, (size, digest) in rec["chunks"].items():
            layer = layer_of[key.split("/", 1)[0]]
            what = check_file(path / key, size, digest if checksums else None)
            state.n_files += 1
            state.n_bytes += size
            if what:
                bad.append(Problem(key, b, layer, what))
        if bad:
            state.problems += bad
        else:
            state.records[b] = rec
    return state


def check_file(file: Path, size: int, digest: str | None) -> str | None:
    """What is wrong with a chunk file (None: nothing); ``digest=None`` checks the size only."""
    try:
        actual = file.stat().st_size
    except FileNotFoundError:
        return "missing"
    if actual != size:
        return f"truncated: {actual} of {size} bytes" if actual < size else f"{actual} bytes, recorded {size}"
    if digest is not None and hash_file(file) != digest:
        return "checksum mismatch (corrupt)"
    return None


def check_bytes(data, size: int, digest: str) -> str | None:
    if len(data) != size:
        return f"truncated: {len(data)} of {size} bytes" if len(data) < size else f"{len(data)} bytes, recorded {size}"
    if hash_buffer(data) != digest:
        return "checksum mismatch (corrupt)"
    return None


class ChunkWriter:
    """Write side: each chunk file is written in place, fsynced and recorded with its size and checksum.

    Chunks are encoded by the caller (``_store`` writes zarr's own chunk bytes without going through
    zarr, whose write path costs more CPU than the codec). Written in place, not tmp + rename: a
    chunk only counts once its batch's record lists its checksum, and a recorded batch is never
    rewritten before its record is removed.
    """

    def __init__(self, root):
        self.root = Path(root)
        self._written: dict[str, list] = {}
        self._lock = threading.Lock()

    def write(self, key: str, data) -> None:
        data = memoryview(data).cast("B")
        file = self.root / key
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = data
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        entry = [len(data), hash_buffer(data)]
        with self._lock:
            self._written[key] = entry

    def take_batch(self, meta: dict, batch: int) -> dict:
        """The recorded chunks of ``batch`` (all of them, or an error), removed from the table."""
        keys = chunk_keys(meta, batch)
        with self._lock:
            missing = [k for k in keys if k not in self._written]
            if missing:
                raise RuntimeError(f"batch {batch}: chunk files {missing[:3]} were not written")
            return {k: self._written.pop(k) for k in keys}


class CheckedStore(LocalStore):
    """Read side: a recorded chunk is checked (exists, size, checksum) before zarr decodes it."""

    def __init__(self, root, *, read_only: bool = True, expected: dict | None = None):
        super().__init__(root, read_only=read_only)
        self._expected = expected or {}

    def with_read_only(self, read_only: bool = False):
        return type(self)(self.root, read_only=read_only, expected=self._expected)

    async def get(self, key, prototype=None, byte_range=None):
        if key not in self._expected:
            return await super().get(key, prototype, byte_range)
        if byte_range is None:
            return await asyncio.to_thread(self._checked_buffer, key, prototype)
        await asyncio.to_thread(self._checked, key)  # the whole file is checked, then the range read
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            if key in self._expected:
                await asyncio.to_thread(self._checked, key)
        return await super().get_partial_values(prototype, key_ranges)

    def _checked(self, key: str) -> bytes:
        size, digest, layer, batch = self._expected[key]
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            data = None
        what = "missing" if data is None else check_bytes(data, size, digest)
        if what:
            raise DamagedStoreError(self.root, [Problem(key, batch, layer, what)])
        return data

    def _checked_buffer(self, key: str, prototype):
        from zarr.core.buffer.core import default_buffer_prototype

        prototype = prototype or default_buffer_prototype()
        return prototype.buffer.from_bytes(self._checked(key))
