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

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._hash import hash_json
from ._integrity import DONE, CheckedStore, DamagedStoreError, Problem, StoreState, check_store

FORMAT_VERSION = 2
ATTR = "brainlike_features"
# Blosc-LZ4 without shuffle: ReLU outputs are about half zeros, runs of 4 zero bytes that LZ4
# finds; it compresses them ~1.7x at several hundred MB/s a core and passes incompressible
# activations through at GB/s (benchmarks/bench_features.py measures both). Lossless.
CODEC = {"cname": "lz4", "clevel": 1, "shuffle": "noshuffle"}
log = logging.getLogger("brainlike")


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
