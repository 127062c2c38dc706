"""Prepare the inputs of an experiment: brain data per subject, stimuli, features, unit selections.

Everything heavy that jobs read is put on disk (subject arrays as .npz) or in the feature cache,
so that a worker on another machine needs only the shared output folder.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np

from .config import DNN, Experiment
from brainlike._hash import hash_arrays

from .store import save_npz


# ---------------------------------------------------------------------------------------------
# brain data
def load_brain(exp: Experiment, brain=None) -> dict[str, object]:
    """{subject: BrainData}, from the ``brain`` argument or the config's dataset."""
    if brain is None:
        if exp.dataset is None:
            raise ValueError("config key 'dataset' is missing: name a dataset (brainlike.datasets.list_datasets()) "
                             "or pass brain data to run_experiment(brain=...)")
        from brainlike import datasets

        if "format" in exp.dataset:  # local files: {format, path, ...}
            from brainlike.datasets.local import load_local

            if not exp.subjects:
                raise ValueError(f"config key 'subjects': list the subjects of the {exp.dataset['format']} files "
                                 f"at {exp.dataset['path']!r}")
            dirs = list(dict.fromkeys(d.dir for d in exp.dnns.values() if d.dir))
            return {s: load_local(exp.dataset, s, exp.rois, dnn_dirs=dirs) for s in exp.subjects}
        name, opts = exp.dataset["name"], dict(exp.dataset["options"])
        if exp.subjects:
            key = exp.dataset["subject_option"]
            out = {}
            for s in exp.subjects:
                out[s] = datasets.load_brain(name, **{**opts, key: subject_value(s, name, key)})
                if hasattr(out[s], "subject"):
                    out[s].subject = s
            return out
        brain = datasets.load_brain(name, **opts)
    if isinstance(brain, dict):
        items = dict(brain)
    elif isinstance(brain, (list, tuple)):
        items = {}
        for i, b in enumerate(brain):
            items[getattr(b, "subject", "") or f"subject-{i + 1}"] = b
    else:
        items = {getattr(brain, "subject", "") or "subject-1": brain}
    if exp.subjects:
        missing = [s for s in exp.subjects if s not in items]
        if missing:
            raise ValueError(f"config key 'subjects': {missing} not in the brain data; available: {sorted(items)}")
        items = {s: items[s] for s in exp.subjects}
    for s, b in items.items():
        if not hasattr(b, "responses") or not hasattr(b, "stimulus_ids"):
            raise ValueError(f"brain data for subject {s!r} must be a BrainData; got {type(b).__name__}")
    return items


def load_brain_meta(exp: Experiment) -> dict[str, object] | None:
    """{subject: BrainMeta} of the config's dataset read from metadata only (no responses), as
    :func:`load_brain` would resolve it; None for a registered dataset without a metadata reader."""
    from brainlike.datasets.metadata import local_meta, registered_meta

    if exp.dataset is None:
        return None
    if "format" in exp.dataset:
        if not exp.subjects:
            raise ValueError(f"config key 'subjects': list the subjects of the {exp.dataset['format']} files "
                             f"at {exp.dataset['path']!r}")
        dirs = list(dict.fromkeys(d.dir for d in exp.dnns.values() if d.dir))
        return {s: local_meta(exp.dataset, s, exp.rois, dnn_dirs=dirs) for s in exp.subjects}
    name, opts = exp.dataset["name"], dict(exp.dataset["options"])
    if not exp.subjects:
        meta = registered_meta(name, **opts)
        return None if meta is None else {getattr(meta, "subject", "") or "subject-1": meta}
    key = exp.dataset["subject_option"]
    out = {}
    for s in exp.subjects:
        meta = registered_meta(name, **{**opts, key: subject_value(s, name, key)})
        if meta is None:
            return None
        meta.subject = s
        out[s] = meta
    return out


def subject_value(name: str, dataset: str | None = None, option: str = "subject"):
    """The value given to a dataset loader's subject option for the config's subject ``name``.

    Names are passed as they are (``sub-01`` stays ``sub-01``), except for a registered dataset
    whose loader numbers its subjects (its declared default for ``option`` is an integer, e.g.
    ``horikawa2017_god``, ``nsd``): there ``sub-01`` / ``S1`` / ``1`` give ``1``. A name without a
    number for such a loader is an error naming the dataset.
    """
    import re

    default = None
    if dataset is not None:
        from brainlike import datasets

        if dataset in datasets.list_datasets():
            default = datasets.info(dataset).options.get(option, (None, ""))[0]
    if isinstance(default, bool) or not isinstance(default, int):
        return name
    m = re.fullmatch(r"(?:sub-?|subject-?|subj|s)?0*(\d+)", str(name), flags=re.I)
    if m is None:
        raise ValueError(f"config key 'subjects': dataset {dataset!r} numbers its subjects ({option}=1, 2, ...); "
                         f"got {name!r}")
    return int(m.group(1))


class NpyLayer:
    """A layer's features in a .npy file, opened memory-mapped on each read: a small, picklable
    handle for workers (reads of unit chunks touch only the needed bytes of each row)."""

    def __init__(self, path, shape):
        self.path = str(path)
        self.shape = tuple(int(s) for s in shape)

    def read(self, units) -> np.ndarray:
        arr = np.load(self.path, mmap_mode="r")
        return np.asarray(arr[:, units], dtype=np.float32)


def to_npy_layer(arr, path) -> NpyLayer:
    """Write a 2-D array once (atomically) as .npy and return its handle."""
    from .store import save_bytes

    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D (n_stimuli, n_units); got shape {arr.shape}")
    path = Path(path)
    if not path.is_file():
        import io

        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr))
        save_bytes(path, buf.getvalue())
    return NpyLayer(path, arr.shape)


def resolve_rois(exp: Experiment, brains: dict) -> list[str]:
    rois = exp.rois
    if rois is None:
        first = next(iter(brains.values()))
        rois = list(first.rois)
        if len(rois) < 2 and "encoding" in exp.analyses:
            raise ValueError(f"config key 'rois': the data has {rois}; the encoding BH score needs at least 2 ROIs "
                             "in hierarchy order")
    for s, b in brains.items():
        missing = [r for r in rois if r not in b.rois]
        if missing:
            raise ValueError(f"config key 'rois': {missing} not found for subject {s!r}; available: {list(b.rois)}")
        empty = [r for r in rois if not np.asarray(b.rois[r]).any()]
        if empty:
            raise ValueError(f"config key 'rois': ROI(s) {empty} of subject {s!r} have no voxels")
    return list(rois)


def split_subject(brain, rois: list[str], subject: str) -> dict:
    """Training trials and repetition-averaged test images of the ROI voxels of one subject."""
    if brain.split is None:
        raise ValueError(f"brain data of subject {subject!r} has no train/test split (BrainData.split is None)")
    splits = set(np.asarray(brain.split).tolist())
    if not {"train", "test"} <= splits:
        raise ValueError(f"brain data of subject {subject!r} needs 'train' and 'test' samples; got splits {sorted(splits)}")
    union = np.zeros(brain.n_voxels, dtype=bool)
    for r in rois:
        union |= np.asarray(brain.rois[r], dtype=bool)
    train = brain.select_split("train")
    test = brain.select_split("test").average_repetitions()
    train_x = np.asarray(train.responses[:, union], dtype=np.float32)
    test_x = np.asarray(test.responses[:, union], dtype=np.float32)
    for name, arr in (("training", train_x), ("test", test_x)):
        bad = ~np.isfinite(arr).all(axis=0)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} ROI voxel(s) of subject {subject!r} hold NaN/inf in the {name} "
                             "samples; remove them first (BrainData.drop_nan_voxels())")
    if test_x.shape[0] < 3:
        raise ValueError(f"subject {subject!r} has {test_x.shape[0]} test image(s); need at least 3 for Pearson r")
    out = {
        "train_x": train_x,
        "test_x": test_x,
        "train_ids": np.asarray(train.stimulus_ids).astype(str),
        "test_ids": np.asarray(test.stimulus_ids).astype(str),
        "voxel_index": np.flatnonzero(union).astype(np.int64),
    }
    for r in rois:
        out[f"roi_{r}"] = np.asarray(brain.rois[r], dtype=bool)[union]
    return out


def split_meta(meta, rois: list[str], subject: str) -> dict:
    """What :func:`split_subject` checks and counts, from a BrainMeta (no responses: NaN voxels are
    not seen). Returns n_train, n_test (repetition-averaged images), voxels per ROI, and the ids."""
    if meta.split is None:
        raise ValueError(f"brain data of subject {subject!r} has no train/test split (BrainData.split is None)")
    splits = set(np.asarray(meta.split).tolist())
    if not {"train", "test"} <= splits:
        raise ValueError(f"brain data of subject {subject!r} needs 'train' and 'test' samples; got splits {sorted(splits)}")
    ids = np.asarray(meta.stimulus_ids).astype(str)
    train_ids = ids[meta.split == "train"]
    test_ids = np.array(list(dict.fromkeys(ids[meta.split == "test"].tolist())), dtype=str)
    if test_ids.size < 3:
        raise ValueError(f"subject {subject!r} has {test_ids.size} test image(s); need at least 3 for Pearson r")
    return {"n_train": int(train_ids.size), "n_test": int(test_ids.size), "train_ids": train_ids,
            "test_ids": test_ids, "n_voxels": {r: int(np.asarray(meta.rois[r]).sum()) for r in rois}}


def write_subject(path, arrays: dict, feature_ids) -> tuple[Path, str]:
    """Add the feature row of each sample (paired by stimulus id), write atomically; return (path,
    content hash of the brain arrays)."""
    from brainlike.ids import align

    checksum = hash_arrays(*(arrays[k] for k in sorted(arrays)))
    rows = {f"{part}_rows": align(feature_ids, arrays[f"{part}_ids"], source="the feature rows",
                                  wanted=f"the {part} samples").astype(np.int64)
            for part in ("train", "test")}
    return save_npz(path, **arrays, **rows), checksum


# ---------------------------------------------------------------------------------------------
# stimuli and features
def load_stimuli(exp: Experiment, brains: dict, stimuli=None):
    """The ImageSet the features are computed on (argument > config > BrainData.stimuli)."""
    if stimuli is not None:
        return stimuli
    spec = exp.stimuli
    if spec is not None:
        from brainlike.stimuli import ImageSet

        if "folder" in spec:
            return ImageSet.from_folder(spec["folder"])
        if "zip" in spec:
            return ImageSet.from_zip(spec["zip"])
        if "npz" in spec:
            return ImageSet.from_npz(spec["npz"], spec.get("key", "images"))
        return ImageSet.from_hdf5(spec["hdf5"], spec.get("key", "images"))
    first = next(iter(brains.values()))
    if getattr(first, "stimuli", None) is None:
        return None
    return first.stimuli


def stable_seed(*parts) -> int:
    h = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little")


def select_units(n_units: int, units_per_layer, seed: int, dnn: str, layer: str) -> np.ndarray:
    """Sorted random subset of units (all when ``units_per_layer`` is None or >= n_units)."""
    if units_per_layer is None or units_per_layer >= n_units:
        return np.arange(n_units, dtype=np.int64)
    rng = np.random.default_rng(stable_seed(seed, dnn, layer, "units"))
    return np.sort(rng.choice(n_units, size=int(units_per_layer), replace=False)).astype(np.int64)


class ShuffledLayer:
    """A pseudo-layer of a layer-shuffled control network: its units drawn from every real layer.

    The units of all layers are pooled and dealt out again at random (layer sizes preserved), so
    the control has the same units as the network but no hierarchy. Reads go to the real layers.
    """

    def __init__(self, sources: list, source_of: np.ndarray, unit_of: np.ndarray, name: str = ""):
        self.sources = sources
        self.source_of = np.asarray(source_of, dtype=np.int32)
        self.unit_of = np.asarray(unit_of, dtype=np.int64)
        self.name = name
        n_rows = {int(_shape(s)[0]) for s in sources}
        if len(n_rows) != 1:
            raise ValueError(f"layers of a shuffled control must have the same stimuli; got row counts {n_rows}")
        self._n_rows = n_rows.pop()

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n_rows, int(self.unit_of.size))

    def iter_blocks(self, chunk_size: int):
        """Blocks of this pseudo-layer's units, read source layer by source layer in contiguous runs
        (any order will do for a Gram matrix), so each source chunk is read once."""
        from .jobs import read_units

        for s, source in enumerate(self.sources):
            mine = np.sort(self.unit_of[self.source_of == s])
            if mine.size == 0:
                continue
            n = _shape(source)[1]
            for start in range(0, n, chunk_size):
                lo, hi = np.searchsorted(mine, [start, min(start + chunk_size, n)])
                if hi > lo:
                    block = read_units(source, slice(start, min(start + chunk_size, n)))
                    yield block[:, mine[lo:hi] - start]

    def read(self, units) -> np.ndarray:
        from .jobs import read_units

        if isinstance(units, slice):
            units = np.arange(self.unit_of.size)[units]
        units = np.asarray(units, dtype=np.int64)
        out = np.empty((self._n_rows, units.size), dtype=np.float32)
        src = self.source_of[units]
        for s in np.unique(src):
            pos = np.flatnonzero(src == s)
            real = self.unit_of[units[pos]]
            order = np.argsort(real, kind="stable")
            out[:, pos[order]] = read_units(self.sources[s], real[order])
        return out


def _shape(handle) -> tuple[int, int]:
    shape = getattr(handle, "shape", None)
    if shape is None:
        shape = np.shape(handle)
    return tuple(int(s) for s in shape)


def shuffled_layers(handles: dict[str, object], seed: int, dnn: str) -> dict[str, ShuffledLayer]:
    """Layer-shuffled control: deal the pooled units of ``handles`` back out to layers at random."""
    names = list(handles)
    sizes = [_shape(handles[n])[1] for n in names]
    src = np.repeat(np.arange(len(names), dtype=np.int32), sizes)
    unit = np.concatenate([np.arange(s, dtype=np.int64) for s in sizes])
    perm = np.random.default_rng(stable_seed(seed, dnn, "layer-shuffle")).permutation(src.size)
    src, unit = src[perm], unit[perm]
    out, start = {}, 0
    sources = [handles[n] for n in names]
    for n, s in zip(names, sizes):
        out[n] = ShuffledLayer(sources, src[start:start + s], unit[start:start + s], name=f"{n} (shuffled)")
        start += s
    return out


class RowsOf:
    """Rows of a feature handle picked (and ordered) by stimulus id; reads go to the source."""

    def __init__(self, source, rows):
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (int(self.rows.size), _shape(source)[1])

    def read(self, units) -> np.ndarray:
        from .jobs import read_units

        return read_units(self.source, units)[self.rows]


def given_handles(name: str, given, layers: list[str], ids: list[str], store) -> tuple[dict, dict]:
    """{layer: handle} of precomputed features, their rows paired with ``ids`` by stimulus id.

    ``given`` is a FeatureSet, or {layer: features} whose values carry ``.ids`` (LayerFeatures)
    or whose container does. Plain arrays without ids are refused: a feature matrix in another
    order (``sorted()`` instead of natural order) or with one mistyped id would otherwise be
    paired by position and give a wrong score. The fingerprint of each layer hashes its full
    content (``brainlike._hash``), in the row order the jobs read.
    """
    from brainlike._hash import hash_arrays, hash_handle
    from brainlike.ids import align, as_ids

    if not hasattr(given, "keys"):
        raise ValueError(f"features[{name!r}] must be a FeatureSet or a {{layer: features}} dict; "
                         f"got {type(given).__name__}")
    missing = [layer for layer in layers if layer not in given]
    if missing:
        raise ValueError(f"features of {name!r}: layers {missing} missing; given {list(given)}")
    handles, fp = {}, {"source": "given"}
    for layer in layers:
        h = given[layer]
        label = f"features[{name!r}][{layer!r}]"
        hid = getattr(h, "ids", None)
        if hid is None:
            hid = getattr(given, "ids", None)
        if hid is None:
            raise ValueError(
                f"{label} carries no stimulus ids, so its rows cannot be paired with the brain data; give "
                f"FeatureSet({{layer: array}}, ids=[...]) (one id per row) or LayerFeatures")
        hid = as_ids(hid, f"stimulus ids of {label}")
        if hid.size != _shape(h)[0]:
            raise ValueError(f"{label} has {_shape(h)[0]} rows but {hid.size} stimulus ids")
        rows = align(hid, ids, source=label, wanted="the stimuli of the brain data")
        identity = rows.size == hid.size and bool((rows == np.arange(rows.size)).all())
        if isinstance(h, np.ndarray):
            # plain arrays go to disk once, so that the job context stays small for workers
            arr = np.asarray(h if identity else h[rows], dtype=np.float32)
            fp[layer] = hash_arrays(arr)
            handles[layer] = to_npy_layer(arr, Path(store) / f"given-{fp[layer][:16]}.npy")
        else:
            handles[layer] = h if identity else RowsOf(h, rows)
            fp[layer] = hash_handle(handles[layer])
    return handles, fp


def feature_handles(exp: Experiment, dnn: DNN, stimuli, ids: list[str], store, progress=True, given=None):
    """{layer: handle} of ``dnn`` over the stimuli ``ids`` (rows in that order), and a fingerprint.

    Fingerprints cover content: given features are hashed whole, BHscore feature trees by the
    arrays read, extracted features by the model's weights and the stimuli's pixels.
    """
    if given is not None:
        return given_handles(dnn.name, given, list(dnn.layers), ids, store)
    from brainlike import features as F

    if dnn.model is None:
        if dnn.features is None:
            raise ValueError(f"config key 'dnns.{dnn.name}': give 'model' or 'features' (a BHscore feature tree)")
        from brainlike._hash import ContentHasher

        fs = F.import_bhscore(dnn.features, layers=dnn.layers, ids=ids, feature_index=dnn.feature_index)
        arrays = [np.asarray(fs[layer], dtype=np.float32) for layer in dnn.layers]
        hasher = ContentHasher().json([list(dnn.layers), list(ids)])
        for arr in arrays:
            hasher.array(arr)
        h = hasher.hexdigest()
        folder = Path(store) / f"bhscore-{h[:16]}"
        handles = {layer: to_npy_layer(arr, folder / f"{k:03d}.npy")
                   for k, (layer, arr) in enumerate(zip(dnn.layers, arrays))}
        return handles, {"source": dnn.features, "feature_index": dnn.feature_index, "content": h,
                         "unit_shapes": {layer: list(fs[layer].unit_shape) for layer in dnn.layers}}
    if stimuli is None:
        raise ValueError(f"DNN {dnn.name!r} needs stimulus images: set config key 'stimuli' or give "
                         "brain data with .stimuli")
    from brainlike import models

    model = models.load(dnn.model, pretrained=dnn.pretrained, seed=dnn.seed, **dnn.model_options)
    if dnn.input_size is not None:
        import dataclasses

        pre = model.preprocess
        model = dataclasses.replace(model, input_size=(dnn.input_size, dnn.input_size),
                                    preprocess=models.Preprocess(dnn.input_size, mean=pre.mean, std=pre.std,
                                                                 interpolation=pre.interpolation))
    sub = stimuli.subset(ids)
    path = Path(store) / feature_store_name(dnn, model, sub)
    fs = F.extract(model, sub, dnn.layers, store=str(path), batch_size=dnn.batch_size, progress=progress)
    handles = {layer: fs[layer] for layer in dnn.layers}
    fp = {"model": dnn.model, "pretrained": dnn.pretrained, "seed": model.seed,
          "model_options": dnn.model_options,
          "model_fingerprint": model.fingerprint(),
          "stimuli_fingerprint": sub.fingerprint()}
    return handles, fp


def encoding_source(dnn: DNN) -> DNN:
    """The DNN as its encoding analysis reads it: its ``encoding_features`` tree, every unit (the
    ``feature_index`` subsets ``features`` only)."""
    import dataclasses

    return dataclasses.replace(dnn, features=dnn.encoding_features, feature_index=None, encoding_features=None)


def feature_store_name(dnn: DNN, model, stimuli) -> str:
    """One store folder per (model weights + preprocessing, layers, stimulus pixels and ids): the
    feature cache is keyed by content, so changed weights or images never meet a stale store."""
    from brainlike._hash import hash_json

    from .store import safe_name

    h = hash_json([model.fingerprint(), list(dnn.layers), stimuli.fingerprint(), list(stimuli.ids)])
    return f"{safe_name(str(dnn.model))}-{h[:16]}"


def crc(s: str) -> int:
    return zlib.crc32(s.encode())
