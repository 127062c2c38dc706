"""Your own files as brain data, without a registry entry: ``{format: ..., path: ..., ...}``.

The spec is what an experiment config's ``dataset`` key holds (``brainlike.pipeline``):

- ``format: bdata``: BData HDF5 (bdpy). ``path`` may hold ``{subject}`` and ``{split}``;
  ``splits: {train: Training, test: Test}`` gives the value of ``{split}`` for each split (without
  it, one file whose ``DataType`` column says 1 = train, 2 = test). ``label``: the metadata key of
  the stimulus labels (default: the first of ``stimulus_name``, ``stimulus_id``, ``Label``,
  ``image_index``). ROIs are the file's ``ROI_*`` columns.
- ``format: npz``: one ``.npz`` per subject (``{subject}`` in ``path``; or per split with
  ``{split}`` and ``splits``) with ``responses`` (samples x voxels), ``stimulus_ids`` (samples),
  ``split`` (samples: train / test; not needed with ``splits``) and one boolean ``roi_<NAME>``
  mask (voxels) per ROI.
- ``format: bids``: a BIDS folder, read by :func:`brainlike.datasets.load_horikawa_bids`
  (``options`` are passed to it).
- ``format: bhscore``: BHscore's ``data/`` folder (:mod:`brainlike.datasets.bhscore_data`);
  ``features: features_all`` matches ``image_index`` to ``features_all/`` instead of ``features/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._braindata import BrainData

__all__ = ["load_local", "save_npz_subject", "FORMATS"]

FORMATS = ("bdata", "npz", "bids", "bhscore")


def _paths(spec: dict, subject: str) -> dict[str | None, Path]:
    """{split or None: file} of one subject."""
    path = spec["path"]
    splits = spec.get("splits")
    if splits:
        if "{split}" not in path:
            raise ValueError(f"dataset.path must hold '{{split}}' when dataset.splits is given; got {path!r}")
        return {s: Path(path.format(subject=subject, split=v)) for s, v in splits.items()}
    if "{split}" in path:
        raise ValueError(f"dataset.path holds '{{split}}': give dataset.splits (e.g. {{train: Training, test: Test}})")
    return {None: Path(path.format(subject=subject))}


def _check_file(p: Path, spec: dict, subject: str) -> Path:
    if not p.is_file():
        raise FileNotFoundError(f"dataset ({spec['format']}): file of subject {subject!r} not found: {p} "
                                f"(dataset.path is {spec['path']!r})")
    return p


def _load_npz(path: Path, subject: str, split: str | None, rois, dtype) -> BrainData:
    with np.load(path, allow_pickle=False) as z:
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
        responses = np.asarray(z["responses"])
        ids = np.asarray(z["stimulus_ids"]).astype(str)
        sp = np.full(ids.size, split) if split is not None else np.asarray(z["split"]).astype(str)
    return BrainData(responses, ids, rois=masks, split=sp, subject=subject, dtype=dtype,
                     provenance={"dataset": "npz", "path": str(path)})


def save_npz_subject(path, data: BrainData) -> Path:
    """Write ``data`` as the ``npz`` format read by ``{format: npz}`` (atomically)."""
    from brainlike._io import atomic_write

    arrays = {"responses": np.asarray(data.responses), "stimulus_ids": np.asarray(data.stimulus_ids).astype(str)}
    if data.split is not None:
        arrays["split"] = np.asarray(data.split).astype(str)
    for name, mask in data.rois.items():
        arrays[f"roi_{name}"] = np.asarray(mask, dtype=bool)

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(Path(path), write, suffix=".npz")


def load_local(spec: dict, subject: str, rois=None, *, dnn_dirs=(), dtype=np.float32) -> BrainData:
    """One subject's ``BrainData`` from local files described by ``spec`` (see the module doc)."""
    from .bdata import stack_splits

    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"dataset.format must be one of {list(FORMATS)}; got {fmt!r}")
    if fmt == "bhscore":
        from .bhscore_data import load_bhscore_fmri

        if not dnn_dirs:
            raise ValueError("dataset format 'bhscore' needs the networks' BHscore 'dir' (e.g. caffe/AlexNet) "
                             "to match image_index to the feature files: give each DNN a 'dir'")
        return load_bhscore_fmri(spec["path"], subject, dnn_dirs, rois=rois, dtype=dtype,
                                 features=spec.get("features", "features"))
    if fmt == "bids":
        from .horikawa import load_horikawa_bids

        return load_horikawa_bids(spec["path"], subject=subject, roi=rois, dtype=dtype, **(spec.get("options") or {}))
    parts = []
    for split, p in _paths(spec, subject).items():
        _check_file(p, spec, subject)
        if fmt == "bdata":
            from .bdata import load_bdata

            parts.append(load_bdata(p, roi=rois, label_key=spec.get("label"), split=split, subject=subject, dtype=dtype))
        else:
            parts.append(_load_npz(p, subject, split, rois, dtype))
    if len(parts) == 1:
        out = parts[0]
    else:
        out = stack_splits(parts, dataset=fmt)
    out.subject = subject
    return out
