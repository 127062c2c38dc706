"""Feature extraction into a resumable, content-keyed zarr store.

Layout of a store folder::

    zarr.json              group; attrs["brainlike_features"] holds the request, its key, the ids
    L0/, L1/, ...          one float array (n_stimuli, n_units) per requested layer, Blosc-LZ4
                           compressed (lossless), chunks (batch_size, unit_chunk): each batch owns
                           its own chunk files L<i>/c/<batch>/<j>
    _done/batch_000012     completion record of batch 12: the size and xxh3-128 checksum of each of
                           its chunk files, written (tmp + fsync + os.replace) only after every
                           layer's rows of that batch were written and fsynced

A batch without its record is recomputed on resume, so a killed run loses only the batch in
flight and an unfinished batch is never read as complete; a batch whose files do not match its
record (missing, truncated, corrupt) or whose record is damaged is recomputed too (see
``_integrity``). The store is created in a temporary sibling folder and renamed into place, so a
half-created store is never seen either.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._hash import hash_file, hash_json
from ._integrity import (
    DONE,
    CheckedStore,
    DamagedStoreError,
    Problem,
    ChunkWriter,
    StoreState,
    check_store,
    make_record,
    record_path,
    write_record,
)

FORMAT_VERSION = 2
ATTR = "brainlike_features"
_CHUNK_BYTES = 4 << 20
# Blosc-LZ4 without shuffle: ReLU outputs are about half zeros, runs of 4 zero bytes that LZ4
# finds; it compresses them ~1.7x at several hundred MB/s a core and passes incompressible
# activations through at GB/s (benchmarks/bench_features.py measures both). Lossless.
CODEC = {"cname": "lz4", "clevel": 1, "shuffle": "noshuffle"}
log = logging.getLogger("brainlike")
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


class _StopForward(Exception):
    """Raised by the last hook: the outputs after the last requested layer are not needed."""


# --------------------------------------------------------------------------- read side
class LayerFeatures:
    """Unit activations of one layer: array-like (n_stimuli, n_units), read lazily.

    ``numpy.asarray(lf)`` reads everything; ``lf.read(units)`` reads a unit chunk;
    ``lf.maps()`` gives (n, C, H, W) for spatial layers.
    """

    def __init__(self, data, ids, unit_shape, name: str = "", module: str = "", _keepalive=None):
        self._data = data
        self.ids = list(ids)
        self.unit_shape = tuple(int(s) for s in unit_shape)
        self.name = name
        self.module = module
        self._keepalive = _keepalive
        if tuple(data.shape) != (len(self.ids), int(np.prod(self.unit_shape))):
            raise ValueError(f"layer {name!r}: data shape {data.shape} does not match "
                             f"{len(self.ids)} ids x unit shape {self.unit_shape}")

    @property
    def shape(self) -> tuple:
        return tuple(int(s) for s in self._data.shape)

    @property
    def dtype(self):
        return np.dtype(self._data.dtype)

    @property
    def ndim(self) -> int:
        return 2

    @property
    def n_units(self) -> int:
        return self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LayerFeatures({self.name!r}, shape={self.shape}, unit_shape={self.unit_shape}, dtype={self.dtype})"

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self._data[...])
        return arr.astype(dtype, copy=False) if dtype is not None else arr

    def __getitem__(self, key):
        return np.asarray(self._data[key])

    def read(self, units=slice(None), stimuli=None) -> np.ndarray:
        """(n_stimuli, k) for ``units`` (a slice, an int index array or a boolean mask), all or given stimuli."""
        if isinstance(units, slice):
            cols = units
        else:
            u = np.asarray(units)
            if u.dtype == bool:
                if u.shape != (self.n_units,):
                    raise ValueError(f"units mask must have shape ({self.n_units},); got {u.shape}")
                u = np.flatnonzero(u)
            u = u.astype(np.int64).ravel()
            if u.size and (u.min() < -self.n_units or u.max() >= self.n_units):
                raise ValueError(f"units must index [0, {self.n_units}); got range [{u.min()}, {u.max()}]")
            cols = np.where(u < 0, u + self.n_units, u)
        rows = slice(None) if stimuli is None else np.asarray(stimuli, dtype=np.int64).ravel()
        if isinstance(self._data, np.ndarray):
            if isinstance(rows, slice) or isinstance(cols, slice):
                return np.asarray(self._data[rows][:, cols])
            return self._data[np.ix_(rows, cols)]
        return np.asarray(self._data.oindex[rows, cols])

    def iter_units(self, chunk: int = 4096):
        """Yield (unit slice, (n_stimuli, k) block) over the units, ``chunk`` units at a time."""
        if chunk <= 0:
            raise ValueError(f"chunk must be > 0; got {chunk}")
        for start in range(0, self.n_units, chunk):
            sl = slice(start, min(start + chunk, self.n_units))
            yield sl, self.read(sl)

    def maps(self, stimuli=None) -> np.ndarray:
        """(n, C, H, W) feature maps of a spatial layer (``stimuli`` = indices; all when None)."""
        if len(self.unit_shape) != 3:
            raise ValueError(f"layer {self.name!r} is not spatial: unit shape {self.unit_shape}, expected (C, H, W)")
        rows = slice(None) if stimuli is None else np.asarray(stimuli, dtype=np.int64).ravel()
        data = self.read(slice(None), None if stimuli is None else rows)
        return data.reshape((data.shape[0], *self.unit_shape))


class FeatureSet(Mapping):
    """Mapping layer name -> ``LayerFeatures``, in the requested order; ``ids`` are the stimulus ids."""

    def __init__(self, layers: dict, ids, path: str | None = None, key: str = "", request: dict | None = None):
        self._layers = dict(layers)
        self.ids = list(ids)
        self.path = path
        self.key = key
        self.request = dict(request or {})
        self.n_batches = 0  # batches of the store (0: not from a store)
        self.computed: list[int] = []  # batches computed by the call that returned this set
        self.repaired: list = []  # problems found in the store and recomputed (``Problem``s)

    def __getitem__(self, name: str) -> LayerFeatures:
        try:
            return self._layers[name]
        except KeyError:
            raise KeyError(f"layer {name!r} is not in this feature set; layers: {list(self._layers)}") from None

    def __iter__(self):
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.shape}" for k, v in self._layers.items())
        return f"FeatureSet({len(self.ids)} stimuli; {inner}; path={self.path!r})"

    @classmethod
    def open(cls, path, verify: bool = True) -> FeatureSet:
        """Open a finished store.

        Every chunk file must exist with its recorded size; ``verify=True`` also checks every
        checksum (reads the whole store). Errors: not a store, unfinished batches (``ValueError``),
        a missing, truncated or corrupt file or a damaged record (``DamagedStoreError``, naming the
        file, layer and batch). Chunks are checked again against their checksums as they are read.
        """
        path = Path(path)
        meta = _store_meta(path)
        state = check_store(path, meta, checksums=verify)
        if state.problems:
            raise DamagedStoreError(path, state.problems)
        if state.unfinished:
            missing = state.unfinished
            raise ValueError(
                f"feature store {path} is incomplete: {len(missing)} of {meta['n_batches']} batches unfinished "
                f"(first: {missing[:5]}); run extract again with the same request to resume"
            )
        return _featureset_from_meta(path, meta, state)


def verify(store) -> StoreState:
    """Check every chunk file of a store against its recorded size and checksum.

    Returns a ``StoreState``: ``ok`` (everything verified), ``problems`` (each a ``Problem`` naming
    the file, layer, batch and what is wrong: missing, truncated, checksum mismatch, damaged
    record), ``unfinished`` (batches without a completion record), ``n_files``, ``n_bytes``.
    ``extract`` with the same request recomputes exactly the damaged and unfinished batches.
    """
    path = Path(store)
    return check_store(path, _store_meta(path), checksums=True)


def _store_meta(path: Path) -> dict:
    meta = _read_meta(path)
    if meta is None:
        why = "its zarr.json is missing or damaged" if path.is_dir() else "it does not exist"
        raise ValueError(f"store must be a brainlike feature store; {str(path)!r} is not one ({why})")
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"store {str(path)!r} has format {meta.get('format')!r}, written by another version of "
                         f"brainlike (this one reads format {FORMAT_VERSION}, with chunk checksums); extract "
                         "into another folder (or delete that one)")
    if meta.get("check") != _meta_check(meta):
        raise DamagedStoreError(path, [Problem("zarr.json", None, None, "store metadata (ids, layers, request) "
                                                                        "damaged: its checksum does not match")])
    return meta


def _meta_check(meta: dict) -> str:
    return hash_json({k: v for k, v in meta.items() if k != "check"})


def _featureset_from_meta(path: Path, meta: dict, state: StoreState, keepalive=None) -> FeatureSet:
    import zarr

    store = CheckedStore(path, expected=state.expected(meta))
    layers = {}
    for spec in meta["layers"]:
        arr = zarr.open_array(store=store, path=spec["array"], mode="r")
        layers[spec["name"]] = LayerFeatures(arr, meta["ids"], spec["unit_shape"], name=spec["name"],
                                             module=spec["module"], _keepalive=keepalive)
    fs = FeatureSet(layers, meta["ids"], path=str(path), key=meta["key"], request=meta["request"])
    fs.n_batches = int(meta["n_batches"])
    return fs


def _read_meta(path: Path) -> dict | None:
    f = path / "zarr.json"
    if not f.is_file():
        return None
    try:
        attrs = json.loads(f.read_text()).get("attributes", {})
    except (OSError, json.JSONDecodeError):
        return None
    return attrs.get(ATTR)


def _done_batches(path: Path) -> set[int]:
    """Batches with a completion record file (sound or not: ``check_store`` judges them)."""
    d = path / DONE
    if not d.is_dir():
        return set()
    out = set()
    for f in d.iterdir():
        if f.name.startswith("batch_") and f.name[6:].isdigit():
            out.add(int(f.name[6:]))
    return out


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


def _load_batch(stimuli, indices, preprocess):
    import torch

    imgs = [stimuli.load(i) for i in indices]
    if len({im.shape for im in imgs}) == 1:
        return preprocess(np.stack(imgs))
    return torch.cat([preprocess(im[None]) for im in imgs])


def _prefetched(stimuli, todo, bs: int, preprocess):
    """Yield (batch, rows, input tensor) of ``todo``; the next batch's images are decoded and
    preprocessed in a thread while the caller runs the current one through the model."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(stimuli)

    def load(b):
        return _load_batch(stimuli, range(b * bs, min(n, (b + 1) * bs)), preprocess)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brainlike-load") as pool:
        pending = pool.submit(load, todo[0]) if todo else None
        for i, b in enumerate(todo):
            x = pending.result()
            if i + 1 < len(todo):
                pending = pool.submit(load, todo[i + 1])
            yield b, (b * bs, min(n, (b + 1) * bs)), x


class _Capture:
    """Forward hooks that copy the requested outputs (before any in-place op changes them), straight
    into the store's chunk layout: one C-ordered (batch_size, unit_chunk) block per chunk file,
    zero-padded at the edges as zarr stores edge chunks. That copy is the only one before encoding."""

    def __init__(self, module, paths, unit_chunk: dict, batch_size: int, dtype):
        self.paths = list(dict.fromkeys(paths))
        self.unit_chunk, self.bs, self.dtype = unit_chunk, int(batch_size), np.dtype(dtype)
        self.out: dict[str, list] = {}
        self.handles = []
        subs = dict(module.named_modules())
        for p in self.paths:
            self.handles.append(subs[p].register_forward_hook(self._hook(p)))

    def _hook(self, path):
        import torch

        def hook(_mod, _inp, out):
            t = out.detach()
            if t.device.type != "cpu":
                t = t.to("cpu")
            # copy now: a later in-place op (ReLU(inplace=True)) would change the tensor under us
            self.out[path] = self._blocks(t.reshape(t.shape[0], -1).numpy(), self.unit_chunk[path])
            if len(self.out) == len(self.paths):
                raise _StopForward

        return hook

    def _blocks(self, flat: np.ndarray, uc: int) -> list:
        rows, n = flat.shape
        blocks = []
        for s in range(0, n, uc):
            w = min(uc, n - s)
            block = np.empty((self.bs, uc), self.dtype)
            block[:rows, :w] = flat[:, s:s + w]
            if rows < self.bs:
                block[rows:] = 0
            if w < uc:
                block[:rows, w:] = 0
            blocks.append(block)
        return blocks

    def run(self, module, x):
        import torch

        self.out = {}
        try:
            with torch.no_grad():
                module(x)
        except _StopForward:
            pass
        if len(self.out) != len(self.paths):
            missing = [p for p in self.paths if p not in self.out]
            raise RuntimeError(f"layers {missing} produced no output in the forward pass")
        return self.out

    def close(self):
        for h in self.handles:
            h.remove()


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
    import torch

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
