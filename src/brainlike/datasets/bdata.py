"""Kamitani lab BData HDF5 files (bdpy / BrainDecoderToolbox2 format).

Layout: ``/dataset`` (n_samples, n_columns) float; ``/metadata/key`` (n_keys,) names,
``/metadata/value`` (n_keys, n_columns) with 1 where a column belongs to the key (NaN
elsewhere); optional ``/vmap/<key>/<value>`` label maps. Voxels are the ``VoxelData`` columns;
ROIs are the ``ROI_*`` keys (``ROI_V1`` ... ``ROI_HVC``, ``ROI_VC``). Only the columns of the
requested ROIs are read from disk.

Stimulus labels stored as floats are ImageNet ids: ``1518878.005958`` is ``n01518878_5958``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._braindata import BrainData
from ._fetch import file_sha256

__all__ = ["load_bdata", "bdata_meta", "float_label_to_id", "id_to_float_label", "stack_splits", "open_hdf5"]

LABEL_KEYS = ("stimulus_name", "stimulus_id", "Label", "image_index")
DATATYPE_SPLITS = {1: "train", 2: "test", 3: "imagery"}


def float_label_to_id(x: float) -> str:
    """``1518878.005958`` -> ``"n01518878_5958"`` (WordNet synset . image number, 6 decimals)."""
    whole, frac = f"{float(x):.6f}".split(".")
    return f"n{int(whole):08d}_{int(frac)}"


def id_to_float_label(s: str) -> float:
    """``"n01518878_5958"`` -> ``1518878.005958`` (inverse of ``float_label_to_id``)."""
    syn, num = s.lstrip("n").split("_")
    return float(f"{int(syn)}.{int(num):06d}")


def open_hdf5(path):
    """Open an HDF5 file read-only; a truncated or non-HDF5 file gives a ValueError naming it."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path must be an existing HDF5 file; got {str(path)!r}")
    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise ValueError(
            f"cannot read {p} as HDF5 ({p.stat().st_size} bytes): it is truncated, corrupt or not HDF5 ({err})"
        ) from err


def _labels_from_column(values: np.ndarray, vmap: dict | None) -> np.ndarray:
    if vmap:
        try:
            return np.array([vmap[float(v)] for v in values])
        except KeyError as err:
            raise ValueError(f"label value {err.args[0]} has no entry in the file's vmap") from err
    vals = np.asarray(values, dtype=np.float64)
    if np.all(np.mod(vals, 1) == 0):
        return np.array([str(int(v)) for v in vals])
    return np.array([float_label_to_id(v) for v in vals])


def _labels_from_index(values: np.ndarray, labels, key: str, path) -> np.ndarray:
    """1-based indices -> labels (bdpy ``Features.index = arange(len(labels)) + 1``, features.py l.255)."""
    labels = np.asarray([str(x) for x in labels])
    vals = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(vals) | (np.mod(vals, 1) != 0) | (vals < 1) | (vals > labels.size)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} '{key}' value(s) are not indices 1..{labels.size} of the "
                         f"{labels.size} feature files, e.g. {vals[bad][:5].tolist()}")
    return labels[vals.astype(np.int64) - 1]


def _layout(f, p: Path, roi, label_key, extra_labels) -> dict:
    """Columns of an open BData file: metadata keys and rows, label maps, the voxel and label columns
    to read. Reads only ``/metadata`` and ``/vmap``, never ``/dataset``'s values."""
    ds_name = "dataset" if "dataset" in f else "dataSet" if "dataSet" in f else None
    md_name = "metadata" if "metadata" in f else "metaData" if "metaData" in f else None
    if ds_name is None or md_name is None:
        raise ValueError(f"{p} is not a BData file: expected /dataset and /metadata, found {list(f)}")
    dset = f[ds_name]
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f[md_name]["key"][()]]
    mdv = np.asarray(f[md_name]["value"][()], dtype=np.float64)
    if mdv.shape != (len(keys), dset.shape[1]):
        raise ValueError(
            f"{p}: metadata/value must be ({len(keys)}, {dset.shape[1]}) (keys x columns); got {mdv.shape}"
        )
    cols = {k: mdv[i] == 1 for i, k in enumerate(keys)}
    vmaps = {}
    if "vmap" in f:
        for k in f["vmap"]:
            vmaps[k] = {float(v): (f["vmap"][k][v][()].decode() if isinstance(f["vmap"][k][v][()], bytes)
                                   else str(f["vmap"][k][v][()])) for v in f["vmap"][k]}
    roi_keys = [k for k in keys if k.startswith("ROI_")]
    if "VoxelData" in cols:
        voxel_cols = cols["VoxelData"]
    elif roi_keys:
        voxel_cols = np.logical_or.reduce([cols[k] for k in roi_keys])
    else:
        raise ValueError(f"{p}: no 'VoxelData' or 'ROI_*' metadata key; keys are {keys}")
    voxel_idx = np.flatnonzero(voxel_cols)
    if roi is not None:
        names = [roi] if isinstance(roi, str) else list(roi)
        avail = [k[4:] for k in roi_keys]
        for nm in names:
            if nm not in avail:
                raise ValueError(f"roi must be among {avail} in {p}; got {nm!r}")
        sel = np.logical_or.reduce([cols["ROI_" + nm] for nm in names]) & voxel_cols
        voxel_idx = np.flatnonzero(sel)
        if voxel_idx.size == 0:
            raise ValueError(f"roi {names} selects no voxel in {p}")
    if label_key is None:
        label_key = next((k for k in LABEL_KEYS if k in cols), None)
        if label_key is None:
            raise ValueError(f"{p}: no stimulus label column among {LABEL_KEYS}; pass label_key (keys: {keys})")
    elif label_key not in cols:
        raise ValueError(f"label_key must be one of the metadata keys {keys}; got {label_key!r}")
    for key in extra_labels:
        if key not in cols:
            raise ValueError(f"extra_labels: {key!r} is not a metadata key of {p}; keys are {keys}")
    meta_keys = list(dict.fromkeys(
        [k for k in (label_key, "Run", "Block", "Session", "DataType") if k in cols] + list(extra_labels)))
    meta_idx = {}
    for key in meta_keys:
        idx = np.flatnonzero(cols[key])
        if idx.size != 1:
            raise ValueError(f"{p}: metadata key {key!r} must mark one column; it marks {idx.size}")
        meta_idx[key] = int(idx[0])
    return {"dset": dset, "keys": keys, "mdv": mdv, "cols": cols, "vmaps": vmaps, "roi_keys": roi_keys,
            "voxel_idx": voxel_idx, "label_key": label_key, "meta_idx": meta_idx}


def _sample_labels(lay: dict, meta_cols: dict, split, index_labels, extra_labels, p: Path):
    """(stimulus ids, split, sample_info) from the label columns read."""
    label_key, cols, vmaps = lay["label_key"], lay["cols"], lay["vmaps"]
    if index_labels is None:
        ids = _labels_from_column(meta_cols[label_key], vmaps.get(label_key))
    else:
        ids = _labels_from_index(meta_cols[label_key], index_labels, label_key, p)
    sample_info = {k: _labels_from_column(meta_cols[k], vmaps.get(k)) for k in extra_labels}
    for k, out in (("Run", "run"), ("Block", "block"), ("Session", "session")):
        if k in cols:
            sample_info[out] = meta_cols[k].astype(np.int64)
    if split is None and "DataType" in cols:
        dt = meta_cols["DataType"].astype(int)
        split = np.array([DATATYPE_SPLITS.get(int(v), f"datatype{int(v)}") for v in dt])
    return ids, split, sample_info


def bdata_meta(path, roi=None, *, label_key: str | None = None, split: str | None = None, subject: str = "",
               index_labels=None, extra_labels=()):
    """What :func:`load_bdata` would return, without the responses: a ``BrainMeta``.

    Reads ``/metadata``, ``/vmap`` and only the label columns (``image_index``, ``DataType``, ...)
    of ``/dataset``; the voxel columns are never read. Fails where ``load_bdata`` fails on the layout.
    """
    from .metadata import BrainMeta

    p = Path(path)
    with open_hdf5(p) as f:
        lay = _layout(f, p, roi, label_key, extra_labels)
        n = lay["dset"].shape[0]
        order = sorted(set(lay["meta_idx"].values()))
        block = np.asarray(lay["dset"][:, order], dtype=np.float64) if order else np.empty((n, 0))
    meta_cols = {k: block[:, order.index(j)] for k, j in lay["meta_idx"].items()}
    ids, split, sample_info = _sample_labels(lay, meta_cols, split, index_labels, extra_labels, p)
    rois = {k[4:]: lay["cols"][k][lay["voxel_idx"]] for k in lay["roi_keys"]}
    return BrainMeta(ids, rois, split=split, subject=subject, n_voxels=int(lay["voxel_idx"].size),
                     sample_info=sample_info, source=str(p))


def load_bdata(
    path,
    roi=None,
    *,
    label_key: str | None = None,
    split: str | None = None,
    subject: str = "",
    nan: str = "warn",
    dtype=np.float32,
    index_labels=None,
    extra_labels=(),
) -> BrainData:
    """Read a BData HDF5 file into ``BrainData``.

    ``roi``: ROI name(s) without the ``ROI_`` prefix (None: every voxel); only those columns are
    read. ``label_key``: metadata key of the stimulus labels (default: the first of
    ``stimulus_name``, ``stimulus_id``, ``Label``, ``image_index`` present). ``split``: the split of
    every sample (default: from a ``DataType`` column, 1/2/3 = train/test/imagery, if present).
    Runs go to ``sample_info["run"]``.

    ``index_labels``: the label column holds 1-based indices into this list (BHscore's
    ``image_index`` into bdpy ``Features.labels``, see :mod:`brainlike.datasets.bhscore_data`);
    the stimulus ids are its entries. ``extra_labels``: further metadata keys read into
    ``sample_info[key]`` as labels (through the file's vmap when it has one), e.g. to check
    ``stimulus_name`` against the ids.
    """
    p = Path(path)
    with open_hdf5(p) as f:
        lay = _layout(f, p, roi, label_key, extra_labels)
        responses, meta = _read_columns(lay["dset"], lay["voxel_idx"], np.array(list(lay["meta_idx"].values()),
                                                                                dtype=np.intp), dtype)
    meta_cols = {k: meta[:, i] for i, k in enumerate(lay["meta_idx"])}
    ids, split, sample_info = _sample_labels(lay, meta_cols, split, index_labels, extra_labels, p)
    label_key, voxel_idx, keys, mdv = lay["label_key"], lay["voxel_idx"], lay["keys"], lay["mdv"]
    rois = {k[4:]: lay["cols"][k][voxel_idx] for k in lay["roi_keys"]}
    voxel_info = {}
    for axis in ("voxel_x", "voxel_y", "voxel_z"):
        if axis in keys:
            voxel_info[axis] = mdv[keys.index(axis)][voxel_idx]
    prov = {
        "dataset": "bdata",
        "files": {p.name: {"path": str(p), "sha256": file_sha256(p)}},
        "options": {"roi": roi, "label_key": label_key},
    }
    return BrainData(
        responses, ids, rois=rois, split=split, subject=subject, provenance=prov, nan=nan, dtype=dtype,
        voxel_info=voxel_info, sample_info=sample_info,
    )


def _read_columns(dset, voxel_idx: np.ndarray, meta_idx: np.ndarray, dtype=np.float32, block_bytes: int = 32 << 20):
    """(responses[:, voxel_idx], dset[:, meta_idx]) in one sequential pass over row blocks.

    BData files are row-major: the columns of one ROI are spread over every row, so reading whole
    rows in blocks of ~32 MiB is faster than strided column reads and keeps memory bounded
    (output + one block).
    """
    n, c = dset.shape
    rows = max(1, block_bytes // max(1, c * dset.dtype.itemsize))
    if voxel_idx.size and np.all(np.diff(voxel_idx) == 1):
        vsel = slice(int(voxel_idx[0]), int(voxel_idx[-1]) + 1)
    else:
        vsel = voxel_idx
    out = np.empty((n, voxel_idx.size), dtype=dtype)  # converted block by block: no full float64 copy
    meta = np.empty((n, meta_idx.size), dtype=np.float64)
    for r0 in range(0, n, rows):
        blk = dset[r0 : r0 + rows]
        out[r0 : r0 + blk.shape[0]] = blk[:, vsel]
        meta[r0 : r0 + blk.shape[0]] = blk[:, meta_idx]
    return out, meta


def stack_splits(parts: list[BrainData], dataset: str = "") -> BrainData:
    """Stack BrainData of one subject (same voxels, e.g. training and test files) along samples."""
    first = parts[0]
    for d in parts[1:]:
        if d.n_voxels != first.n_voxels or any(not np.array_equal(d.rois[k], first.rois[k]) for k in first.rois):
            raise ValueError("parts must share voxels and ROI masks to be stacked along samples")
    keys = set.intersection(*[set(d.sample_info) for d in parts])
    out = BrainData(
        np.concatenate([d.responses for d in parts]),
        np.concatenate([d.stimulus_ids for d in parts]),
        rois=first.rois,
        repetition=np.concatenate([d.repetition for d in parts]),
        split=np.concatenate([d.split if d.split is not None else np.full(d.n_samples, "") for d in parts]),
        subject=first.subject,
        provenance={"dataset": dataset, "parts": [d.provenance for d in parts]},
        dtype=first.responses.dtype,
        nan="ignore",
        voxel_info=first.voxel_info,
        sample_info={k: np.concatenate([d.sample_info[k] for d in parts]) for k in keys},
    )
    return out
