"""Brain data without the responses: subjects' stimulus ids, splits and ROI masks, read from metadata.

``brainlike run CONFIG --check`` needs the names (ROIs, subjects), the samples (stimulus ids,
train/test split) and the ROIs' voxel counts, not the voxel matrix, which is most of the bytes of
a dataset. A ``BrainMeta`` holds what a ``BrainData`` holds except ``responses``. Formats with a
metadata path:

- BData HDF5 (``format: bdata``; registered ``shen2019_deeprecon``, ``horikawa2017_god``):
  ``/metadata`` and the label columns of ``/dataset`` (:func:`brainlike.datasets.bdata.bdata_meta`);
- ``.npz`` per subject (``format: npz``): ``stimulus_ids``, ``split``, ``roi_*``, and only the
  header (shape) of ``responses``;
- BHscore's ``data/`` folder (``format: bhscore``): the feature trees' file names and the BData
  metadata of the fMRI files;
- BIDS (``format: bids``): file names, ``events.tsv``, the ROI masks, and the runs' NIfTI headers;
- NSD (registered ``nsd``): ``nsd_expdesign.mat``, the ROI volumes, and the betas files' shapes.

Every other registered dataset (``cowley2023_v4``, ``kay2008_vim1``, ``kay2008_vim1_npz`` and
datasets added with ``register`` without a ``metadata`` function) has none: callers load it whole.
What cannot be seen without the responses: NaN voxels (found when the run reads them).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

__all__ = ["BrainMeta", "stack_meta", "npz_meta", "local_meta", "registered_meta"]


class BrainMeta:
    """Per-sample stimulus ids and splits, per-voxel ROI masks: a ``BrainData`` without responses."""

    def __init__(self, stimulus_ids, rois, *, split=None, subject: str = "", n_voxels: int | None = None,
                 sample_info=None, source: str = ""):
        self.stimulus_ids = np.asarray(stimulus_ids).astype(str)
        n = self.stimulus_ids.size
        self.rois = {str(k): np.asarray(m, dtype=bool) for k, m in (rois or {}).items()}
        v = n_voxels if n_voxels is not None else next((m.size for m in self.rois.values()), 0)
        for name, m in self.rois.items():
            if m.shape != (v,):
                raise ValueError(f"{source}: rois[{name!r}] must be a mask of shape ({v},) (one per voxel); "
                                 f"got {m.shape}")
        self.n_voxels = int(v)
        if split is None:
            self.split = None
        else:
            sp = np.full(n, split, dtype=object) if isinstance(split, str) else np.asarray(split)
            if sp.shape != (n,):
                raise ValueError(f"{source}: split must have shape ({n},) or be one string; got {sp.shape}")
            self.split = sp.astype(str)
        self.subject = subject
        self.sample_info = dict(sample_info or {})
        self.source = source
        self.stimuli = None

    @property
    def n_samples(self) -> int:
        return int(self.stimulus_ids.size)

    def __repr__(self) -> str:
        return f"BrainMeta({self.source!r}, subject={self.subject!r}, samples={self.n_samples}, rois={list(self.rois)})"


def stack_meta(parts: list[BrainMeta]) -> BrainMeta:
    """Parts of one subject (training and test files) along samples, as ``bdata.stack_splits``."""
    first = parts[0]
    for d in parts[1:]:
        if d.n_voxels != first.n_voxels or any(not np.array_equal(d.rois[k], first.rois[k]) for k in first.rois):
            raise ValueError("parts must share voxels and ROI masks to be stacked along samples")
    keys = set.intersection(*[set(d.sample_info) for d in parts])
    return BrainMeta(np.concatenate([d.stimulus_ids for d in parts]), first.rois,
                     split=np.concatenate([d.split if d.split is not None else np.full(d.n_samples, "")
                                           for d in parts]),
                     subject=first.subject, n_voxels=first.n_voxels,
                     sample_info={k: np.concatenate([d.sample_info[k] for d in parts]) for k in keys},
                     source=" + ".join(d.source for d in parts))


def _npy_shape(path: Path, key: str) -> tuple:
    """Shape of array ``key`` of an .npz from its .npy header (the data are not decompressed)."""
    try:
        with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as fh:
            version = np.lib.format.read_magic(fh)
            shape, _, _ = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                           else np.lib.format.read_array_header_2_0(fh))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path}: cannot read the header of array {key!r} ({err})") from None
    return tuple(shape)


def npz_meta(path, subject: str, split: str | None, rois=None) -> BrainMeta:
    """What ``{format: npz}`` would load, without reading ``responses`` (only its header)."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npz ({err})") from None
    with z:
        keys = list(z.files)
        for k in ("responses", "stimulus_ids"):
            if k not in keys:
                raise ValueError(f"{path}: array {k!r} missing (has {keys}); expected responses, stimulus_ids, "
                                 "split and roi_<NAME> masks")
        if split is None and "split" not in keys:
            raise ValueError(f"{path}: array 'split' missing (train/test per sample); or give dataset.splits")
        masks = {k[4:]: np.asarray(z[k], dtype=bool) for k in keys if k.startswith("roi_")}
        if not masks:
            raise ValueError(f"{path}: no roi_<NAME> mask arrays (has {keys})")
        if rois is not None:
            missing = [r for r in rois if r not in masks]
            if missing:
                raise ValueError(f"{path}: ROI(s) {missing} have no roi_<NAME> mask; masks: {sorted(masks)}")
        shape = _npy_shape(path, "responses")
        if len(shape) != 2:
            raise ValueError(f"{path}: responses must be a 2-D array (n_samples, n_voxels); got shape {shape}")
        ids = np.asarray(z["stimulus_ids"]).astype(str)
        if ids.shape != (shape[0],):
            raise ValueError(f"{path}: stimulus_ids must have shape ({shape[0]},) (one id per sample); "
                             f"got {ids.shape}")
        sp = np.full(ids.size, split) if split is not None else np.asarray(z["split"]).astype(str)
    return BrainMeta(ids, masks, split=sp, subject=subject, n_voxels=shape[1], source=str(path))


def local_meta(spec: dict, subject: str, rois=None, *, dnn_dirs=()) -> BrainMeta:
    """``BrainMeta`` of one subject of ``dataset: {format, path, ...}`` (every local format has one)."""
    from .local import FORMATS, _check_file, _paths

    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"dataset.format must be one of {list(FORMATS)}; got {fmt!r}")
    if fmt == "bhscore":
        from .bhscore_data import bhscore_fmri_meta

        if not dnn_dirs:
            raise ValueError("dataset format 'bhscore' needs the networks' BHscore 'dir' (e.g. caffe/AlexNet) "
                             "to match image_index to the feature files: give each DNN a 'dir'")
        return bhscore_fmri_meta(spec["path"], subject, dnn_dirs, rois=rois, features=spec.get("features", "features"))
    if fmt == "bids":
        from .horikawa import horikawa_bids_meta

        return horikawa_bids_meta(spec["path"], subject=subject, roi=rois, **(spec.get("options") or {}))
    from .bdata import bdata_meta

    parts = []
    for split, p in _paths(spec, subject).items():
        _check_file(p, spec, subject)
        if fmt == "bdata":
            parts.append(bdata_meta(p, roi=rois, label_key=spec.get("label"), split=split, subject=subject))
        else:
            parts.append(npz_meta(p, subject, split, rois))
    out = parts[0] if len(parts) == 1 else stack_meta(parts)
    out.subject = subject
    return out


def registered_meta(name: str, *, data_dir=None, **options) -> BrainMeta | None:
    """``BrainMeta`` of a registered brain dataset, or None when its entry has no ``metadata`` reader."""
    from . import registry

    entry = registry.info(name)
    if entry.kind != "brain" or entry.metadata is None:
        return None
    paths = registry.fetch(name, data_dir=data_dir, **{k: v for k, v in options.items() if k in entry.options})
    opts = {k: v[0] for k, v in entry.options.items()}
    opts.update(options)
    return entry.metadata_function()(paths, **opts)
