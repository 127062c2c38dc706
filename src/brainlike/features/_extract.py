"""Write side of the feature store: ``extract`` runs the model over the stimuli and writes each
batch's chunks (encoded here in zarr's chunk format, fsynced, checksummed), then its completion
record; resumes and repairs an existing store (see ``_store`` for the layout)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from .._hash import hash_file
from ._capture import _Capture, _prefetched
from ._integrity import (
    DONE,
    ChunkWriter,
    DamagedStoreError,
    StoreState,
    check_store,
    make_record,
    record_path,
    write_record,
)
from ._store import (
    ATTR,
    CODEC,
    FORMAT_VERSION,
    FeatureSet,
    _done_batches,
    _featureset_from_meta,
    _meta_check,
    _read_meta,
    _store_meta,
    log,
)

_CHUNK_BYTES = 4 << 20
# Every chunk is written, also an all-zero one (a dead layer): a batch must own all its chunk files
# for the completion record to mean what it says (zarr's default skips chunks equal to the fill value).
_ZARR_CREATE = {"write_empty_chunks": True}
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}  # numcodecs.Blosc's constants


def _chunk_codec(meta: dict):
    """The numcodecs Blosc that encodes a chunk to the bytes zarr's BloscCodec writes for this store
    (same cname, clevel, shuffle; typesize from the array's dtype)."""
    from numcodecs import Blosc

    c = meta["codec"]
    return Blosc(cname=c["cname"], clevel=int(c["clevel"]), shuffle=_SHUFFLE[c["shuffle"]])


def _write_marker(path: Path, batch: int, record: bytes) -> None:
    """Completion record of one batch (its chunks' sizes and checksums): tmp file, fsync, atomic rename."""
    write_record(path, batch, record)


def _write_layer(chunks: ChunkWriter, codec, array: str, batch: int, blocks: list) -> None:
    """Encode and write one layer's chunk blocks of ``batch`` (zarr v3 keys ``<array>/c/<batch>/<j>``)."""
    for j, block in enumerate(blocks):
        chunks.write(f"{array}/c/{batch}/{j}", codec.encode(block))


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_batch(path: Path, arrays_meta, batch: int) -> None:
    """fsync the folders of one batch's chunk files (the files were fsynced as they were written)."""
    for spec in arrays_meta:
        d = path / spec["array"] / "c" / str(batch)
        if d.is_dir():
            _fsync_dir(d)
            _fsync_dir(d.parent)


# --------------------------------------------------------------------------- write side
class _TempDir:
    """Owns a temporary store folder; removed when the last reader goes away."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="brainlike-features-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)


def _request_key(model, stimuli, resolved, names, dtype) -> tuple[str, dict]:
    from ..models import preprocess_fingerprint, weights_fingerprint

    parts = {
        "format": FORMAT_VERSION,
        "weights": weights_fingerprint(model.module),
        "seed": None if model.pretrained else getattr(model, "seed", None),
        "preprocess": preprocess_fingerprint(model.preprocess),
        "layers": [[n, p] for n, p in zip(names, resolved)],
        "stimuli": stimuli.fingerprint(),
        "dtype": np.dtype(dtype).name,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return key, parts


def _check_device(device):
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but torch.cuda.is_available() is False; use device='cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda[:i]' or 'mps'; got {device!r}")
    return dev


# The writer runs in its own thread (bounded queue), overlapping the next batch's forward pass;
# False writes in the caller's thread (tests use it to make failures deterministic).
WRITER_THREAD = True


class _Writer(threading.Thread):
    """Writes finished batches: chunks (compressed, fsynced, checksummed), then the completion record.

    In a thread, with a queue of one batch: the next forward pass runs while a batch is written,
    and at most three batches are held (computing, queued, writing). Most of a write is
    compression and I/O, which release the GIL.
    """

    def __init__(self, path: Path, meta: dict, threaded: bool):
        super().__init__(daemon=True)
        self.path, self.meta = path, meta
        self.chunks, self.codec = ChunkWriter(path), _chunk_codec(meta)
        self.arrays_meta = meta["layers"]
        self.threaded = threaded
        self.q: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.failed_batch: int | None = None

    def write(self, item):
        b, start, stop, outs = item
        try:
            for spec, blocks in zip(self.arrays_meta, outs):
                _write_layer(self.chunks, self.codec, spec["array"], b, blocks)
            chunks = self.chunks.take_batch(self.meta, b)
            _flush_batch(self.path, self.arrays_meta, b)
            _write_marker(self.path, b, make_record(b, (start, stop), chunks))
        except BaseException as err:
            self.error, self.failed_batch = err, b
            raise

    def run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                self.write(item)
            except BaseException:  # noqa: BLE001 - kept in self.error for the main thread
                pass

    def put(self, item):
        if self.error is not None:
            raise self.error
        if self.threaded:
            self.q.put(item)
        else:
            self.write(item)

    def begin(self):
        if self.threaded:
            self.start()

    def finish(self):
        if self.threaded and self.is_alive():
            self.q.put(None)
            self.join()


def _remove_batch_chunks(path: Path, arrays_meta, batch: int) -> None:
    record_path(path, batch).unlink(missing_ok=True)
    for spec in arrays_meta:
        shutil.rmtree(path / spec["array"] / "c" / str(batch), ignore_errors=True)
    for tmp in path.rglob("*.partial"):
        tmp.unlink(missing_ok=True)


def _unit_chunk(n_units: int, batch_size: int, dtype) -> int:
    return int(max(1, min(n_units, _CHUNK_BYTES // (np.dtype(dtype).itemsize * batch_size))))


def _create_store(path: Path, meta: dict, n: int, batch_size: int, dtype) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.creating-", dir=path.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w")
        codec = BloscCodec(typesize=np.dtype(dtype).itemsize, **meta["codec"])
        for spec in meta["layers"]:
            n_units = int(np.prod(spec["unit_shape"]))
            group.create_array(spec["array"], shape=(n, n_units), chunks=(batch_size, spec["unit_chunk"]),
                               dtype=np.dtype(dtype).name, compressors=codec, fill_value=0, config=_ZARR_CREATE)
        meta["array_meta"] = {spec["array"]: hash_file(tmp / spec["array"] / "zarr.json") for spec in meta["layers"]}
        meta["check"] = _meta_check(meta)
        group.attrs[ATTR] = meta
        (tmp / DONE).mkdir()
        if path.exists():  # an empty folder given by the user
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def extract(model, stimuli, layers, store=None, batch_size: int = 32, device="cpu", progress: bool = True,
            dtype="float32", verify: bool = True) -> FeatureSet:
    """Activations of ``layers`` of ``model`` to ``stimuli``, all layers in one forward pass per batch.

    ``model``: a ``Model``, a name for ``models.load`` or an ``nn.Module``. ``stimuli``: an ``ImageSet``
    (or a uint8 array (N, H, W[, 3])). ``layers``: module paths or aliases (``layers(model)`` lists them).
    ``store``: folder of the zarr store (None: a temporary one, removed when the result is dropped).
    The store is keyed by a content hash of (weights, preprocessing, layers, stimulus ids and pixels,
    dtype): the same request is read back without recomputing, an interrupted one resumes, and a
    store written for another request is never reused (error). Memory stays at about three batches.

    On an existing store every finished batch is checked first: its chunk files must exist with
    their recorded sizes and (``verify=True``) checksums. A batch with a missing, truncated or
    corrupt file or a damaged record is logged and recomputed with the unfinished ones; the result
    lists them in ``.repaired`` (``Problem``s) and the computed batches in ``.computed``.
    """

    from ..models import load, resolve_layers
    from ..models._layers import layer_shapes
    from ..stimuli import ImageSet

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    dev = _check_device(device)
    model = load(model)
    if not isinstance(stimuli, ImageSet):
        if isinstance(stimuli, np.ndarray):
            stimuli = ImageSet.from_array(stimuli)
        else:
            raise ValueError(f"stimuli must be an ImageSet or an (N, H, W[, C]) array; got {type(stimuli).__name__}")
    names = [layers] if isinstance(layers, str) else list(layers)
    if len(set(names)) != len(names):
        raise ValueError(f"layers must not repeat a name; got {names}")
    resolved = resolve_layers(model, names)
    shapes = layer_shapes(model)
    key, parts = _request_key(model, stimuli, resolved, names, dtype)  # decodes every image: bad files fail here
    n = len(stimuli)

    keepalive = None
    if store is None:
        keepalive = _TempDir()
        path = Path(keepalive.path) / "store"
    else:
        path = Path(store)
    meta = _read_meta(path) if path.exists() else None
    created = False
    if meta is None:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            why = " (a feature store whose zarr.json is missing or damaged: delete it or use another folder)" \
                if (path / DONE).is_dir() else ""
            raise ValueError(f"store must be a new/empty folder or a brainlike feature store; {str(path)!r} "
                             f"exists and is neither{why}")
        bs = int(batch_size)
        meta = {
            "format": FORMAT_VERSION, "key": key, "ids": stimuli.ids, "batch_size": bs,
            "n_batches": -(-n // bs), "dtype": dtype.name, "codec": dict(CODEC),
            "layers": [{"name": nm, "module": p, "array": f"L{i}", "unit_shape": list(shapes[p]),
                        "unit_chunk": _unit_chunk(int(np.prod(shapes[p])), bs, dtype)}
                       for i, (nm, p) in enumerate(zip(names, resolved))],
            "request": {"model": model.name, "pretrained": bool(model.pretrained),
                        "seed": getattr(model, "seed", None), "layers": names,
                        "stimuli": stimuli.name, "n_stimuli": n, "fingerprints": parts},
        }
        _create_store(path, meta, n, bs, dtype)
        created = True
    elif _store_meta(path) and meta.get("key") != key:  # (_store_meta: format and metadata checksum)
        old = meta.get("request", {})
        raise ValueError(
            f"store {str(path)!r} was written for another request (model {old.get('model')!r}, layers "
            f"{old.get('layers')}, stimuli {old.get('stimuli')!r}, {old.get('n_stimuli')} images); this request is "
            f"model {model.name!r}, layers {names}, stimuli {stimuli.name!r}, {n} images. "
            "Use another store folder (or delete that one)."
        )
    state = StoreState(path, unfinished=list(range(int(meta["n_batches"])))) if created else \
        check_store(path, meta, checksums=verify)
    if state.metadata_damaged:
        raise DamagedStoreError(path, [p for p in state.problems if p.batch is None])
    if state.problems:
        log.warning("feature store %s: %d damaged batch(es) will be recomputed: %s", path, len(state.damaged),
                    "; ".join(str(p) for p in state.problems[:10]))
        for b in state.damaged:
            _remove_batch_chunks(path, meta["layers"], b)
        _fsync_dir(path / DONE)
    found = state.problems
    todo = sorted(set(state.unfinished) | set(state.damaged))
    if todo:
        _run_batches(model, stimuli, path, meta, todo, len(state.records), dev, progress, dtype, created)
        state = check_store(path, meta, checksums=False)  # the new records; files were just written
        if state.problems:  # pragma: no cover - another process writing the same store
            raise DamagedStoreError(path, state.problems)
    fs = _featureset_from_meta(path, meta, state, keepalive)
    fs.computed, fs.repaired = todo, found
    return fs


def _run_batches(model, stimuli, path, meta, todo, n_done, dev, progress, dtype, created):
    import torch

    from brainlike._logging import progress_bar

    bs, n_batches = int(meta["batch_size"]), int(meta["n_batches"])
    for tmp in path.rglob("*.partial"):  # leftovers of a killed write
        tmp.unlink(missing_ok=True)
    paths = [spec["module"] for spec in meta["layers"]]
    module = model.module
    param = next(iter(module.parameters()), None)
    home = param.device if param is not None else torch.device("cpu")
    module.to(dev)
    capture = _Capture(module, paths, {spec["module"]: int(spec["unit_chunk"]) for spec in meta["layers"]}, bs, dtype)
    writer = _Writer(path, meta, WRITER_THREAD)
    writer.begin()
    bar = progress_bar(total=n_batches, initial=n_done, enabled=progress, unit="batch",
               desc=f"extract {model.name}", leave=False)
    try:
        for b, (start, stop), x in _prefetched(stimuli, todo, bs, model.preprocess):
            outs = capture.run(module, x.to(dev))
            writer.put((b, start, stop, [outs[p] for p in paths]))
            bar.update(1)
        writer.finish()
        if writer.error is not None:
            raise writer.error
    except OSError as err:
        writer.finish()
        failed = writer.failed_batch
        if failed is not None:
            _remove_batch_chunks(path, meta["layers"], failed)
        if created and not _done_batches(path):
            shutil.rmtree(path, ignore_errors=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "nothing was kept" if created and not path.exists() else (
                "finished batches are kept: free space and run extract again to resume")
            raise OSError(err.errno, f"no space left on device while writing features to {path} "
                          f"(batch {failed}); the unfinished batch was removed and {kept}") from err
        raise
    except BaseException:
        writer.finish()
        if writer.failed_batch is not None:
            _remove_batch_chunks(path, meta["layers"], writer.failed_batch)
        raise
    finally:
        bar.close()
        capture.close()
        module.to(home)
