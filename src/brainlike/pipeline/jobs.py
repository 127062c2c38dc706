"""The job graph: jobs over (DNN, subject, ROI, layer, unit chunk), their result files and bodies.

A job is a small frozen record; its result file path is a pure function of the record and the
work folder, and a job is done iff that file exists. ``run_job(context_path, job)`` is what runs
on a worker: it loads the (cached) context from disk, reads its inputs, computes and writes its
result atomically. Rerunning a job overwrites its file with identical content, so a job that
was running on a worker that died can simply run again elsewhere.

Kinds:
- ``decode``  (dnn, subject, roi, layer, chunk): SelectiveRidge from ROI voxels to a chunk of units.
- ``kernel``  (dnn, layer): the layer's Gram embedding, built from unit chunks.
- ``encode``  (dnn, subject, roi, layer): ridge from the layer (its embedding) to every ROI voxel;
  depends on the ``kernel`` job of its layer (``encoding.method: ridge_cv``).
- ``recipe``  (dnn, subject, layer, voxel chunk): BHscore's encoding recipe for a chunk of the
  subject's sampled voxels (all ROIs together), streaming every unit of the layer
  (``encoding.method: recipe``).

Other modules add kinds with :func:`register_kind` (the encoding study's fits,
``brainlike.encoding.study_jobs``): their files lie under ``<workdir>/<kind>-<sig>/`` and their
bodies are methods of the context they are run against (a pickled object with a ``run_job``
method), so the same executor, claims and set-aside rule serve them, and a worker process learns
them by unpickling that context.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import compute
from .store import CorruptResultError, load_npz, load_result, safe_name, save_npz, set_aside

# arrays every result file of a kind holds: a file without them is damaged, never done
RESULT_KEYS = {
    "decode": ("units", "accuracy", "prediction", "truth"),
    "kernel": ("z",),
    "encode": ("voxels", "accuracy", "prediction", "truth", "best_alpha"),
    "recipe": ("voxels", "accuracy", "prediction", "truth"),
}


KINDS = ("decode", "kernel", "encode", "recipe")
_REGISTERED: set[str] = set()


def register_kind(kind: str, result_keys) -> None:
    """Add a job kind run by its own context (``context.run_job(job)``); ``result_keys``: the arrays
    every result file of the kind holds (a file without them is damaged, never done)."""
    if kind in KINDS:
        raise ValueError(f"job kind {kind!r} is one of the pipeline's own {list(KINDS)}")
    RESULT_KEYS[kind] = tuple(result_keys)
    _REGISTERED.add(kind)


@dataclass(frozen=True, order=True)
class Job:
    kind: str
    dnn: str
    layer: str
    subject: str = ""
    roi: str = ""
    chunk: int = -1
    sig: str = ""  # hash of the settings and inputs behind the result: changed inputs -> new files
    dep_sig: str = ""  # encode jobs: the signature of the kernel they read

    @property
    def key(self) -> str:
        parts = [self.kind, self.dnn, self.subject, self.roi, self.layer]
        if self.chunk >= 0:
            parts.append(str(self.chunk))
        return "|".join(p for p in parts if p != "")

    def path(self, workdir) -> Path:
        root = Path(workdir)
        if self.kind == "decode":
            w = root / f"decoding-{self.sig}"
            return (w / safe_name(self.dnn) / safe_name(self.subject) / safe_name(self.roi)
                    / safe_name(self.layer) / f"chunk-{self.chunk:05d}.npz")
        if self.kind == "kernel":
            return root / f"kernels-{self.sig}" / safe_name(self.dnn) / f"{safe_name(self.layer)}.npz"
        if self.kind == "encode":
            return (root / f"encoding-{self.sig}" / safe_name(self.dnn) / safe_name(self.subject) / safe_name(self.roi)
                    / f"{safe_name(self.layer)}.npz")
        if self.kind == "recipe":
            return (root / f"encoding-recipe-{self.sig}" / safe_name(self.dnn) / safe_name(self.subject)
                    / safe_name(self.layer) / f"voxels-{self.chunk:05d}.npz")
        if self.kind in _REGISTERED:
            # <kind>-<sig>/<dnn>/<subject>/<roi>/<layer>[-<chunk>].npz, empty fields left out
            parts = [safe_name(p) for p in (self.dnn, self.subject, self.roi, self.layer) if p != ""] or ["result"]
            chunk = f"-{self.chunk:05d}" if self.chunk >= 0 else ""
            return root.joinpath(f"{self.kind}-{self.sig}", *parts[:-1], f"{parts[-1]}{chunk}.npz")
        raise ValueError(f"job kind must be one of {list(KINDS) + sorted(_REGISTERED)}; got {self.kind!r}")

    def done(self, workdir) -> bool:
        return self.path(workdir).is_file()

    def depends_on(self) -> list[Job]:
        if self.kind == "encode":
            return [Job("kernel", self.dnn, self.layer, sig=self.dep_sig)]
        return []


@dataclass
class Context:
    """Everything a job needs, pickled once into the work folder (workers read it from there).

    subjects: {subject: path of its prepared .npz (train_x, test_x, train_rows, test_rows,
        train_ids, test_ids, roi_<name> masks)}; features: {dnn: {layer: handle with .read(units)
        -> (n_stimuli, k)}}; units: {dnn: {layer: selected unit indices}}.
    """

    workdir: str
    subjects: dict[str, str]
    rois: list[str]
    features: dict[str, dict[str, object]]
    units: dict[str, dict[str, np.ndarray]]
    n_units: dict[str, dict[str, int]]
    decoding: dict
    encoding: dict
    train_rows_all: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # recipe encoding: {subject: sorted voxel columns encoded (the ROIs' sampled voxels together)}
    encoding_voxels: dict = field(default_factory=dict)
    encoding_roi_voxels: dict = field(default_factory=dict)  # {subject: {roi: sorted voxel columns}}
    signatures: dict = field(default_factory=dict)  # {"decode"|"kernel"|"encode": {dnn: signature}}
    # {dnn: {layer: handle}} read by the kernel / encode / recipe jobs of DNNs whose encoding analysis
    # reads another feature tree than their decoding (BHscore: features_all/ vs features/)
    encoding_features: dict = field(default_factory=dict)

    def encoding_handle(self, dnn: str, layer: str):
        """The features the encoding jobs of ``dnn`` read for ``layer``."""
        return self.encoding_features.get(dnn, self.features[dnn])[layer]

    def save(self, path) -> Path:
        from .store import save_bytes

        return save_bytes(path, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


@functools.lru_cache(maxsize=4)
def _load_context(path: str, mtime: float) -> Context:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def load_context(path) -> Context:
    path = str(path)
    return _load_context(path, Path(path).stat().st_mtime)


@functools.lru_cache(maxsize=2)
def _load_subject(path: str) -> dict:
    return load_npz(path)


def iter_blocks(handle, chunk_size: int):
    """Yield (n_stimuli, k) blocks that together hold every unit of ``handle`` once."""
    if hasattr(handle, "iter_blocks"):
        yield from handle.iter_blocks(chunk_size)
        return
    n = int(handle.shape[1]) if hasattr(handle, "shape") else int(np.shape(handle)[1])
    for start in range(0, n, chunk_size):
        yield read_units(handle, slice(start, min(start + chunk_size, n)))


def read_units(handle, units) -> np.ndarray:
    """Read unit columns (n_stimuli, k) from a feature handle (``.read``) or a 2-D array."""
    if not isinstance(units, slice):
        units = np.asarray(units)
    if hasattr(handle, "read"):
        return np.asarray(handle.read(units), dtype=np.float32)
    return np.asarray(np.asarray(handle)[:, units], dtype=np.float32)


def plan(ctx: Context, dnn_layers: dict[str, list[str]], analyses) -> list[Job]:
    """All jobs of an experiment, in an order that puts dependencies first."""
    jobs: list[Job] = []
    cs = int(ctx.decoding["chunk_size"])
    sig = ctx.signatures
    # jobs that read the same unit chunk are adjacent, so a worker's chunk cache serves them
    for dnn, layers in dnn_layers.items():
        sd, sk, se = (sig.get(k, {}).get(dnn, "") for k in ("decode", "kernel", "encode"))
        recipe = ctx.encoding.get("method") == "recipe"
        if "encoding" in analyses and not recipe:
            jobs += [Job("kernel", dnn, layer, sig=sk) for layer in layers]
        if "decoding" in analyses:
            for layer in layers:
                n = len(ctx.units[dnn][layer])
                for c in range((n + cs - 1) // cs):
                    jobs += [Job("decode", dnn, layer, subject, roi, c, sig=sd)
                             for subject in ctx.subjects for roi in ctx.rois]
        if "encoding" in analyses and recipe:
            per_job = int(ctx.encoding["voxels_per_job"])
            jobs += [Job("recipe", dnn, layer, subject, chunk=c, sig=se) for layer in layers for subject in ctx.subjects
                     for c in range((len(ctx.encoding_voxels[subject]) + per_job - 1) // per_job)]
        elif "encoding" in analyses:
            jobs += [Job("encode", dnn, layer, subject, roi, sig=se, dep_sig=sk)
                     for layer in layers for subject in ctx.subjects for roi in ctx.rois]
    return jobs


@functools.lru_cache(maxsize=2)
def _chunk_features(context_path: str, mtime: float, dnn: str, layer: str, chunk: int) -> np.ndarray:
    ctx = _load_context(context_path, mtime)
    cs = int(ctx.decoding["chunk_size"])
    units = ctx.units[dnn][layer][chunk * cs:(chunk + 1) * cs]
    return read_units(ctx.features[dnn][layer], units)


def run_job(context_path, job: Job) -> str:
    """Run one job (on any worker) and write its result atomically; return the result path."""
    ctx = load_context(context_path)
    own = getattr(ctx, "run_job", None)
    if own is not None:  # a context that brings its own job kinds (register_kind)
        return str(own(job))
    out = job.path(ctx.workdir)
    if out.is_file():
        return str(out)
    if job.kind == "decode":
        path = str(context_path)
        feats = _chunk_features(path, Path(path).stat().st_mtime, job.dnn, job.layer, job.chunk)
        _decode(ctx, job, out, feats, path)
    elif job.kind == "kernel":
        _kernel(ctx, job, out)
    elif job.kind == "encode":
        _encode(ctx, job, out)
    elif job.kind == "recipe":
        _encode_recipe(ctx, job, out)
    else:
        raise ValueError(f"job kind must be one of {list(KINDS)}; got {job.kind!r}")
    return str(out)


class _VoxelCache:
    """A worker's prepared ROI voxels (z-scored, centred, with their Gram), kept across jobs.

    Jobs come chunk by chunk, each chunk cycling through every (subject, ROI), so an LRU smaller
    than the working set would miss every time. Entries are admitted while they fit in the byte
    limit and kept for the rest of the run; another experiment context starts an empty cache.
    """

    def __init__(self):
        self._context = None
        self._items: dict = {}
        self._bytes = 0

    def get(self, context_key, key):
        if context_key != self._context:
            self._context, self._items, self._bytes = context_key, {}, 0
        return self._items.get(key)

    def offer(self, key, value, max_bytes: int) -> None:
        size = int(value.nbytes)
        if key not in self._items and self._bytes + size <= max_bytes:
            self._items[key] = value
            self._bytes += size

    def clear(self) -> None:
        self._context, self._items, self._bytes = None, {}, 0


_VOXELS = _VoxelCache()


def release_voxel_cache() -> None:
    """Drop this process's cached ROI voxels (called when a run ends)."""
    _VOXELS.clear()


def _decode(ctx: Context, job: Job, out: Path, feats: np.ndarray, context_path: str) -> None:
    dec = ctx.decoding
    # context files are named by a hash of their settings and inputs: within one, (subject, ROI) is enough
    key = (job.subject, job.roi)
    voxels = _VOXELS.get(context_path, key)
    if voxels is None:
        sub = _load_subject(ctx.subjects[job.subject])
        mask = sub[f"roi_{job.roi}"]
        voxels = compute.prepare_voxels(sub["train_x"][:, mask], sub["test_x"][:, mask], alpha=dec["alpha"],
                                        dtype=dec["dtype"], train_rows=sub["train_rows"], test_rows=sub["test_rows"])
    cs = int(dec["chunk_size"])
    units = ctx.units[job.dnn][job.layer][job.chunk * cs:(job.chunk + 1) * cs]
    acc, pred, truth = compute.decode_prepared(voxels, feats[voxels.train_rows], feats[voxels.test_rows],
                                               n_feat=dec["n_feat"])
    # offered after the fit, so that the Gram it built counts against the limit
    _VOXELS.offer(key, voxels, int(dec.get("voxel_cache_mb", 0)) * 2**20)
    save_npz(out, units=np.asarray(units, dtype=np.int64), accuracy=acc, prediction=pred, truth=truth)


def _kernel(ctx: Context, job: Job, out: Path) -> None:
    handle = ctx.encoding_handle(job.dnn, job.layer)
    gram = compute.accumulate_gram(iter_blocks(handle, int(ctx.encoding["chunk_size"])), ctx.train_rows_all)
    save_npz(out, z=compute.embed_gram(gram))


def _encode(ctx: Context, job: Job, out: Path) -> None:
    sub = _load_subject(ctx.subjects[job.subject])
    dep = job.depends_on()[0]
    try:
        z = load_result(dep.path(ctx.workdir), RESULT_KEYS["kernel"])["z"]
    except CorruptResultError as e:
        set_aside(e.path, ctx.workdir)
        _kernel(ctx, dep, dep.path(ctx.workdir))
        z = load_result(dep.path(ctx.workdir), RESULT_KEYS["kernel"])["z"]
    mask = sub[f"roi_{job.roi}"]
    acc, pred, truth, alphas = compute.encode_voxels(
        z[sub["train_rows"]], sub["train_x"][:, mask], z[sub["test_rows"]], sub["test_x"][:, mask],
        alphas=ctx.encoding["alphas"], cv=ctx.encoding["cv"], groups=sub["train_rows"],
        dtype=ctx.encoding["dtype"])
    save_npz(out, voxels=np.flatnonzero(mask).astype(np.int64), accuracy=acc, prediction=pred,
             truth=truth, best_alpha=alphas)


def recipe_voxels(ctx: Context, subject: str, chunk: int) -> np.ndarray:
    """The voxel columns (of the subject's prepared arrays) encoded by one ``recipe`` job."""
    per_job = int(ctx.encoding["voxels_per_job"])
    return ctx.encoding_voxels[subject][chunk * per_job:(chunk + 1) * per_job]


def _encode_recipe(ctx: Context, job: Job, out: Path) -> None:
    import logging

    enc = ctx.encoding
    sub = _load_subject(ctx.subjects[job.subject])
    vox = recipe_voxels(ctx, job.subject, job.chunk)
    acc, pred, truth, n_const = compute.encode_recipe(
        ctx.encoding_handle(job.dnn, job.layer), sub["train_rows"], sub["train_x"][:, vox], sub["test_rows"],
        sub["test_x"][:, vox], alpha=enc["alpha"], n_feat=enc["n_feat"], chunk_size=enc["chunk_size"],
        memory_mb=enc["memory_mb"], dtype=enc["dtype"])
    if n_const:
        logging.getLogger("brainlike").info("encoding %s %s %s: %d unit(s) constant over the training images "
                                            "(never selected first)", job.dnn, job.layer, job.subject, n_const)
    save_npz(out, voxels=np.asarray(vox, dtype=np.int64), accuracy=acc, prediction=pred, truth=truth,
             n_constant_units=np.int64(n_const))
