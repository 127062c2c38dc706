"""Feature extraction into a resumable, content-keyed zarr store.

Layout of a store folder::

    zarr.json              group; attrs["brainlike_features"] holds the request, its key, the ids
    L0/, L1/, ...          one float array (n_stimuli, n_units) per requested layer,
                           chunks (batch_size, unit_chunk): each batch owns its own chunk files
    _done/batch_000012     completion record of batch 12, written (tmp + fsync + os.replace) only
                           after every layer's rows of that batch were written and fsynced

A batch without its record is recomputed on resume, so a killed run loses only the batch in
flight and an unfinished batch is never read as complete. The store is created in a temporary
sibling folder and renamed into place, so a half-created store is never seen either.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brainlike._io import atomic_write_bytes

FORMAT_VERSION = 1
ATTR = "brainlike_features"
_CHUNK_BYTES = 4 << 20
# Write every chunk as is: zarr's default compares each chunk with the fill value first to skip
# empty ones, which costs more CPU than the write (5x slower writes measured here), and a batch
# must own all its chunk files for the completion record to mean what it says.
_ZARR_WRITE = {"write_empty_chunks": True}


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
    def open(cls, path) -> FeatureSet:
        """Open a finished store (error when it is not a store or batches are missing)."""
        meta = _read_meta(Path(path))
        if meta is None:
            raise ValueError(f"store must be a brainlike feature store; {str(path)!r} is not one")
        done = _done_batches(Path(path))
        missing = sorted(set(range(meta["n_batches"])) - done)
        if missing:
            raise ValueError(
                f"feature store {path} is incomplete: {len(missing)} of {meta['n_batches']} batches unfinished "
                f"(first: {missing[:5]}); run extract again with the same request to resume"
            )
        return _featureset_from_meta(Path(path), meta)


def _featureset_from_meta(path: Path, meta: dict, keepalive=None) -> FeatureSet:
    import zarr

    layers = {}
    for spec in meta["layers"]:
        arr = zarr.open_array(str(path / spec["array"]), mode="r")
        layers[spec["name"]] = LayerFeatures(arr, meta["ids"], spec["unit_shape"], name=spec["name"],
                                             module=spec["module"], _keepalive=keepalive)
    return FeatureSet(layers, meta["ids"], path=str(path), key=meta["key"], request=meta["request"])


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
    d = path / "_done"
    if not d.is_dir():
        return set()
    out = set()
    for f in d.iterdir():
        if f.name.startswith("batch_") and f.name[6:].isdigit():
            out.add(int(f.name[6:]))
    return out


def _write_marker(path: Path, batch: int, info: dict) -> None:
    """Completion record of one batch: tmp file, fsync, atomic rename."""
    atomic_write_bytes(path / "_done" / f"batch_{batch:06d}", json.dumps(info).encode(), fsync=True)


def _write_rows(arr, start: int, stop: int, data: np.ndarray) -> None:
    arr[start:stop, :] = data


def _flush_batch(path: Path, arrays_meta, batch: int) -> None:
    """fsync the chunk files of one batch (and their folders): the data is on disk before its record."""
    for spec in arrays_meta:
        d = path / spec["array"] / "c" / str(batch)
        if not d.is_dir():
            continue
        for f in d.iterdir():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


class _Capture:
    """Forward hooks that copy the requested outputs (before any in-place op changes them)."""

    def __init__(self, module, paths):
        self.paths = list(dict.fromkeys(paths))
        self.out: dict[str, np.ndarray] = {}
        self.handles = []
        subs = dict(module.named_modules())
        for p in self.paths:
            self.handles.append(subs[p].register_forward_hook(self._hook(p)))

    def _hook(self, path):
        import torch

        def hook(_mod, _inp, out):
            t = out.detach()
            # copy now: a later in-place op (ReLU(inplace=True)) would change the tensor under us
            t = t.to("cpu", memory_format=torch.contiguous_format) if t.device.type != "cpu" else \
                t.clone(memory_format=torch.contiguous_format)
            self.out[path] = t.numpy().reshape(t.shape[0], -1)
            if len(self.out) == len(self.paths):
                raise _StopForward

        return hook

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


class _Writer(threading.Thread):
    """Writes finished batches (data, fsync, then completion record).

    With a spare core it runs in a thread, overlapping the next batch's forward pass. Without one
    (as many cores as torch threads) it writes in the caller's thread: a competing writer thread
    would stall every parallel region of the forward pass, which costs more than the write itself.
    """

    def __init__(self, path: Path, arrays, arrays_meta, n_batches: int, threaded: bool):
        super().__init__(daemon=True)
        self.path, self.arrays, self.arrays_meta, self.n_batches = path, arrays, arrays_meta, n_batches
        self.threaded = threaded
        self.q: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.failed_batch: int | None = None

    def write(self, item):
        b, start, stop, outs = item
        try:
            for arr, data in zip(self.arrays, outs):
                _write_rows(arr, start, stop, data)
            _flush_batch(self.path, self.arrays_meta, b)
            _write_marker(self.path, b, {"batch": b, "rows": [start, stop], "time": time.time()})
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
    for spec in arrays_meta:
        shutil.rmtree(path / spec["array"] / "c" / str(batch), ignore_errors=True)
    for tmp in path.rglob("*.partial"):
        tmp.unlink(missing_ok=True)


def _create_store(path: Path, meta: dict, n: int, batch_size: int, dtype) -> None:
    import zarr

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.creating-", dir=path.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w")
        for spec in meta["layers"]:
            n_units = int(np.prod(spec["unit_shape"]))
            unit_chunk = int(max(1, min(n_units, _CHUNK_BYTES // (4 * batch_size))))
            group.create_array(spec["array"], shape=(n, n_units), chunks=(batch_size, unit_chunk),
                               dtype=np.dtype(dtype).name, compressors=None, fill_value=0, config=_ZARR_WRITE)
        group.attrs[ATTR] = meta
        (tmp / "_done").mkdir()
        if path.exists():  # an empty folder given by the user
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def extract(model, stimuli, layers, store=None, batch_size: int = 32, device="cpu", progress: bool = True,
            dtype="float32") -> FeatureSet:
    """Activations of ``layers`` of ``model`` to ``stimuli``, all layers in one forward pass per batch.

    ``model``: a ``Model``, a name for ``models.load`` or an ``nn.Module``. ``stimuli``: an ``ImageSet``
    (or a uint8 array (N, H, W[, 3])). ``layers``: module paths or aliases (``layers(model)`` lists them).
    ``store``: folder of the zarr store (None: a temporary one, removed when the result is dropped).
    The store is keyed by a content hash of (weights, preprocessing, layers, stimulus ids and pixels,
    dtype): the same request is read back without recomputing, an interrupted one resumes, and a
    store written for another request is never reused (error). Memory stays at about two batches.
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
            raise ValueError(f"store must be a new/empty folder or a brainlike feature store; {str(path)!r} "
                             "exists and is neither")
        bs = int(batch_size)
        meta = {
            "format": FORMAT_VERSION, "key": key, "ids": stimuli.ids, "batch_size": bs,
            "n_batches": -(-n // bs), "dtype": dtype.name,
            "layers": [{"name": nm, "module": p, "array": f"L{i}", "unit_shape": list(shapes[p])}
                       for i, (nm, p) in enumerate(zip(names, resolved))],
            "request": {"model": model.name, "pretrained": bool(model.pretrained),
                        "seed": getattr(model, "seed", None), "layers": names,
                        "stimuli": stimuli.name, "n_stimuli": n, "fingerprints": parts},
        }
        _create_store(path, meta, n, bs, dtype)
        created = True
    elif meta.get("key") != key:
        old = meta.get("request", {})
        raise ValueError(
            f"store {str(path)!r} was written for another request (model {old.get('model')!r}, layers "
            f"{old.get('layers')}, stimuli {old.get('stimuli')!r}, {old.get('n_stimuli')} images); this request is "
            f"model {model.name!r}, layers {names}, stimuli {stimuli.name!r}, {n} images. "
            "Use another store folder (or delete that one)."
        )
    bs, n_batches = int(meta["batch_size"]), int(meta["n_batches"])
    done = _done_batches(path)
    todo = [b for b in range(n_batches) if b not in done]
    if todo:
        _run_batches(model, stimuli, path, meta, todo, done, dev, progress, dtype, created)
    return _featureset_from_meta(path, meta, keepalive)


def _run_batches(model, stimuli, path, meta, todo, done, dev, progress, dtype, created):
    import torch
    import zarr
    from tqdm.auto import tqdm

    bs, n_batches, n = int(meta["batch_size"]), int(meta["n_batches"]), len(stimuli)
    for tmp in path.rglob("*.partial"):  # leftovers of a killed write
        tmp.unlink(missing_ok=True)
    arrays = [zarr.open_array(str(path / spec["array"]), mode="r+", config=_ZARR_WRITE) for spec in meta["layers"]]
    paths = [spec["module"] for spec in meta["layers"]]
    module = model.module
    param = next(iter(module.parameters()), None)
    home = param.device if param is not None else torch.device("cpu")
    module.to(dev)
    capture = _Capture(module, paths)
    threaded = (os.cpu_count() or 1) > torch.get_num_threads()
    writer = _Writer(path, arrays, meta["layers"], n_batches, threaded)
    writer.begin()
    bar = tqdm(total=n_batches, initial=len(done), disable=not progress, unit="batch",
               desc=f"extract {model.name}", leave=False)
    try:
        for b in todo:
            start, stop = b * bs, min(n, (b + 1) * bs)
            x = _load_batch(stimuli, range(start, stop), model.preprocess).to(dev)
            outs = capture.run(module, x)
            writer.put((b, start, stop, [outs[p].astype(dtype, copy=False) for p in paths]))
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
