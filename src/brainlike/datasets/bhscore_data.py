"""BHscore's ``data/`` folder as its download scripts and decoding scripts lay it out.

KamitaniLab/BHscore (commit 8608595) reads, relative to ``data/``:

- ``fmri/sub-0N_perceptionNaturalImageTraining_VC_v2.h5`` and ``..._Test_VC_v2.h5``: BData HDF5
  (``data/download_fmri.sh`` l.5-10; ``decoding/feature_decoding_train.py`` l.44-49,
  ``decoding/feature_decoding_predict.py`` l.40-45);
- ROIs by the selectors ``'ROI_V1 = 1'`` ... ``'ROI_HVC = 1'`` (``feature_decoding_train.py`` l.53-59);
- stimulus labels ``image_index`` (``feature_decoding_train.py`` l.51, ``feature_decoding_predict.py``
  l.76): 1-based indices into the feature files of the matching tree, as bdpy's ``Features``
  numbers them (``bdpy/dataform/features.py`` l.255: ``index = arange(len(labels)) + 1``, labels the
  file stems sorted by Python ``sorted`` in every layer folder, l.277-289; layers the sorted
  sub-folders, l.271-275), matched by ``y_index = where(y_labels == x_label)``
  (``feature_decoding_train.py`` l.183);
- features ``features/ImageNetTraining/<dir>/<layer>/<image>.mat`` for training
  (``feature_decoding_train.py`` l.70) and ``features/ImageNetTest/<dir>/<layer>/<image>.mat`` for
  test (``feature_decoding_predict.py`` l.57), ``<dir>`` the ``dir`` of ``settings.json``;
- an optional unit subset ``index_random1000.mat`` in the training tree's network folder
  (``feature_decoding_train.py`` l.75 names it; ``encoding/featenc_fastl2lir_predict.py`` l.40 reads
  it from ``<training feature dir>/<network>/``), in bdpy's ``feature_index`` format: variable
  ``index``, one field per layer, 0-based unit indices after C-order flattening
  (``bdpy/dataform/features.py`` l.92 and l.230-236).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._braindata import BrainData

__all__ = ["FMRI_FILE", "FEATURE_TREES", "FEATURE_FOLDERS", "INDEX_FILE", "ROI_SELECTORS", "feature_labels", "bhscore_paths",
           "load_bhscore_fmri", "bhscore_fmri_meta",
           "read_feature_index"]

# data/download_fmri.sh l.5-10
FMRI_FILE = "fmri/{subject}_perceptionNaturalImage{part}_VC_v2.h5"
# feature_decoding_train.py l.70 (training), feature_decoding_predict.py l.57 (test): under data/features;
# the encoding scripts read all units from data/features_all (encoding/bhscore_caffe_*_allunits.yaml
# 'training feature dir' / 'test feature dir'; data/download_features_all.sh)
FEATURE_TREES = {"train": "ImageNetTraining", "test": "ImageNetTest"}
FEATURE_FOLDERS = ("features", "features_all")
PARTS = {"train": "Training", "test": "Test"}
# feature_decoding_train.py l.75
INDEX_FILE = "index_random1000.mat"
# feature_decoding_train.py l.53-59: ROI name -> BData selector (load_bdata takes the name after ROI_)
ROI_SELECTORS = {"V1": "ROI_V1 = 1", "V2": "ROI_V2 = 1", "V3": "ROI_V3 = 1", "V4": "ROI_V4 = 1", "HVC": "ROI_HVC = 1"}
LABEL_KEY = "image_index"  # feature_decoding_train.py l.51
NAME_KEY = "stimulus_name"  # encoding/bhscore_caffe_*_allunits.yaml 'label key' (checked when present)


def _check_data(data) -> Path:
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"BHscore data folder not found: {data} (expected the 'data' folder of "
                                "KamitaniLab/BHscore, with fmri/ and features/ inside)")
    return data


def bhscore_paths(data, subject: str, dnn_dir: str, features: str = "features") -> dict:
    """The files BHscore's scripts read for one subject and network ``dnn_dir`` (e.g. ``caffe/AlexNet``);
    ``features``: ``features`` (decoding scripts) or ``features_all`` (encoding scripts)."""
    if features not in FEATURE_FOLDERS:
        raise ValueError(f"features must be one of {list(FEATURE_FOLDERS)}; got {features!r}")
    data = _check_data(data)
    out = {"fmri": {s: data / FMRI_FILE.format(subject=subject, part=PARTS[s]) for s in PARTS},
           "features": {s: data / features / FEATURE_TREES[s] / dnn_dir for s in FEATURE_TREES}}
    out["feature_index"] = out["features"]["train"] / INDEX_FILE
    return out


def feature_labels(net_dir) -> list[str]:
    """Stimulus labels of a feature tree as bdpy's ``Features`` lists them (its ``index`` k is entry k-1).

    Layers are the sorted sub-folders; labels the ``.mat`` stems of each layer folder, sorted with
    Python's ``sorted`` (not natural order); every layer must hold the same labels.
    """
    net_dir = Path(net_dir)
    if not net_dir.is_dir():
        raise FileNotFoundError(f"feature folder not found: {net_dir}")
    layers = sorted(p.name for p in net_dir.iterdir() if p.is_dir())
    if not layers:
        raise ValueError(f"{net_dir} holds no layer folders")
    labels = None
    for layer in layers:
        stems = sorted(p.stem for p in (net_dir / layer).glob("*.mat"))
        if labels is None:
            labels, first = stems, layer
        elif stems != labels:
            extra = sorted(set(stems) - set(labels))[:3]
            missing = sorted(set(labels) - set(stems))[:3]
            raise ValueError(f"{net_dir}: layer {layer!r} holds other image files than layer {first!r} "
                             f"(extra {extra}, missing {missing}); bdpy's Features requires the same files in every layer")
    if not labels:
        raise ValueError(f"{net_dir}: layer folders hold no .mat feature files")
    return labels


def read_feature_index(path, layers) -> dict[str, np.ndarray]:
    """``{layer: 0-based unit indices}`` from a bdpy ``feature_index`` file (variable ``index``)."""
    import hdf5storage

    path = Path(path)
    try:
        table = hdf5storage.loadmat(str(path), variable_names=["index"])["index"]
    except KeyError:
        raise ValueError(f"{path}: no variable 'index' (bdpy's feature_index format)") from None
    except Exception as err:  # noqa: BLE001 - h5py raises several kinds on a damaged file
        raise ValueError(f"cannot read {path} as a MATLAB v7.3 feature index: {err}") from err
    out = {}
    for layer in layers:
        try:
            idx = table[layer]
        except (KeyError, ValueError, IndexError):
            raise ValueError(f"{path}: no unit index for layer {layer!r}") from None
        idx = np.asarray(idx)
        while idx.dtype == object and idx.size == 1:
            idx = np.asarray(idx.ravel()[0])
        idx = idx.ravel()
        if idx.size == 0 or not np.all(np.mod(idx, 1) == 0) or idx.min() < 0:
            raise ValueError(f"{path}: the index of layer {layer!r} must hold non-negative integers; got {idx[:5]}")
        out[layer] = idx.astype(np.int64)
    return out


def _read_parts(data, subject: str, dnn_dirs, features: str, read) -> tuple[Path, list[str], list]:
    """Training and test part of one subject: ``read(fmri, split, labels, extra_labels)`` gives each
    (``load_bdata`` or ``bdata_meta``); the ids checked against ``stimulus_name`` when present."""
    dirs = [dnn_dirs] if isinstance(dnn_dirs, str) else list(dnn_dirs)
    if not dirs:
        raise ValueError("dnn_dirs must name at least one network folder (the settings' 'dir')")
    data = _check_data(data)
    parts = []
    for split in ("train", "test"):
        paths = [bhscore_paths(data, subject, d, features) for d in dirs]
        labels = feature_labels(paths[0]["features"][split])
        for d, p in zip(dirs[1:], paths[1:]):
            other = feature_labels(p["features"][split])
            if other != labels:
                raise ValueError(f"feature trees {paths[0]['features'][split]} and {p['features'][split]} list "
                                 f"different images ({len(labels)} vs {len(other)}): '{LABEL_KEY}' would mean "
                                 f"different images for {dirs[0]!r} and {d!r}")
        fmri = paths[0]["fmri"][split]
        if not fmri.is_file():
            raise FileNotFoundError(f"fMRI file of subject {subject!r} not found: {fmri} (data/download_fmri.sh "
                                    f"writes fmri/{subject}_perceptionNaturalImage{PARTS[split]}_VC_v2.h5)")
        import h5py

        with h5py.File(fmri, "r") as f:
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["metadata"]["key"][()]] \
                if "metadata" in f else []
            has_name = NAME_KEY in keys and "vmap" in f and NAME_KEY in f["vmap"]
        part = read(fmri, split, labels, (NAME_KEY,) if has_name else ())
        if has_name:
            names = np.asarray(part.sample_info.pop(NAME_KEY)).astype(str)
            bad = names != np.asarray(part.stimulus_ids).astype(str)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{fmri}: '{LABEL_KEY}' and '{NAME_KEY}' disagree for {int(bad.sum())} sample(s), "
                                 f"e.g. sample {k}: index -> {part.stimulus_ids[k]!r} in {paths[0]['features'][split]}"
                                 f" but {NAME_KEY} {names[k]!r}: the feature tree does not hold the images of "
                                 "this fMRI file")
        parts.append(part)
    return data, dirs, parts


def load_bhscore_fmri(data, subject: str, dnn_dirs, rois=None, *, features: str = "features", nan: str = "warn",
                      dtype=np.float32) -> BrainData:
    """One subject's training and test fMRI from BHscore's ``data/`` folder, with feature-file ids.

    ``image_index`` values are turned into the feature file stems of ``features/ImageNetTraining/<dir>``
    (training file) and ``features/ImageNetTest/<dir>`` (test file). ``dnn_dirs``: the settings'
    ``dir`` of every network; all must list the same images (the mapping is the same for each).
    When the files also hold ``stimulus_name`` with a label map, it must agree with the ids.
    ``rois``: ROI names (``V1`` for ``ROI_V1``; default all of the file). ``features``: the feature
    folder whose file names ``image_index`` points into (``features`` or ``features_all``: the same images).
    """
    from .bdata import load_bdata, stack_splits

    def read(fmri, split, labels, extra):
        return load_bdata(fmri, roi=rois, label_key=LABEL_KEY, split=split, subject=subject, nan=nan, dtype=dtype,
                          index_labels=labels, extra_labels=extra)

    data, dirs, parts = _read_parts(data, subject, dnn_dirs, features, read)
    out = stack_splits(parts, dataset="bhscore-data")
    out.subject = subject
    out.provenance = {"dataset": "bhscore-data", "path": str(data), "features": features, "subject": subject,
                      "dnn_dirs": dirs,
                      "parts": [p.provenance for p in parts]}
    return out


def bhscore_fmri_meta(data, subject: str, dnn_dirs, rois=None, *, features: str = "features"):
    """:func:`load_bhscore_fmri` without the responses: a ``BrainMeta`` from the feature trees' file
    names and the fMRI files' metadata (:func:`brainlike.datasets.bdata.bdata_meta`)."""
    from .bdata import bdata_meta
    from .metadata import stack_meta

    def read(fmri, split, labels, extra):
        return bdata_meta(fmri, roi=rois, label_key=LABEL_KEY, split=split, subject=subject, index_labels=labels,
                          extra_labels=extra)

    _, _, parts = _read_parts(data, subject, dnn_dirs, features, read)
    out = stack_meta(parts)
    out.subject = subject
    return out
