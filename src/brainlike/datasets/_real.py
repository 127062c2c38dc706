"""Loaders for the named datasets of the registry (called by ``registry.load`` with fetched paths)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._braindata import BrainData
from ._fetch import file_sha256

__all__ = ["Kriegeskorte92", "load_cowley", "load_kriegeskorte", "load_kay_stimuli", "load_bhscore_settings"]


def _pick(paths: dict[str, Path], suffix: str) -> Path:
    for rel, p in paths.items():
        if rel.endswith(suffix):
            return Path(p)
    raise KeyError(f"no fetched file ends with {suffix!r}; have {sorted(paths)}")


def _provenance(dataset: str, paths: dict[str, Path], **options) -> dict:
    return {
        "dataset": dataset,
        "files": {rel: {"path": str(p), "sha256": file_sha256(p)} for rel, p in paths.items()},
        "options": options,
    }


def _image_set_from_zip(path: Path, name: str):
    from brainlike.stimuli import ImageSet

    return ImageSet.from_zip(path, name=name)


def load_cowley(paths, session="190923", raw=False, stimuli=True, nan="warn", dtype=np.float32) -> BrainData:
    """Cowley et al. 2023 V4 session: responses (n_images, n_neurons), ROI ``V4``.

    The files store (n_neurons, n_images[, n_repeats]); image ``i+1`` (``image{i+1:04d}.jpg``)
    belongs to column ``i``. With ``raw=True`` each (image, repeat) with spike counts is one
    sample (repeats padded with NaN in the file are dropped), so ``average_repetitions()``
    gives back the repeat-averaged file.
    """
    session = str(session)
    avg_path = _pick(paths, f"responses_{session}.npy") if not raw else None
    if raw:
        arr = np.load(_pick(paths, f"responses_raw/responses_{session}.npy"))
        if arr.ndim != 3:
            raise ValueError(f"raw responses must be (n_neurons, n_images, n_repeats); got shape {arr.shape}")
        n_neurons, n_images, n_rep = arr.shape
        # (image, repeat, neuron) order: samples grouped by image.
        samples = np.transpose(arr, (1, 2, 0)).reshape(n_images * n_rep, n_neurons)
        present = ~np.isnan(samples).all(axis=1)
        img_index = np.repeat(np.arange(n_images), n_rep)[present]
        rep_index = np.tile(np.arange(n_rep), n_images)[present]
        responses = samples[present]
    else:
        arr = np.load(avg_path)
        if arr.ndim != 2:
            raise ValueError(f"repeat-averaged responses must be (n_neurons, n_images); got shape {arr.shape}")
        n_neurons, n_images = arr.shape
        responses = arr.T
        img_index = np.arange(n_images)
        rep_index = np.zeros(n_images, dtype=np.int64)
    file_ids = [f"image{i + 1:04d}" for i in range(n_images)]
    images = None
    if stimuli:
        images = _image_set_from_zip(_pick(paths, f"images_{session}.zip"), name=f"cowley2023_v4_{session}")
        if len(images) != n_images:
            raise ValueError(
                f"session {session}: the image zip holds {len(images)} images but the responses have {n_images}"
            )
        missing = [i for i in file_ids if i not in set(images.ids)]
        if missing:
            raise ValueError(f"session {session}: image ids {missing[:5]} are absent from the image zip")
    ids = np.asarray(file_ids)[img_index]
    return BrainData(
        responses,
        ids,
        rois={"V4": np.ones(n_neurons, dtype=bool)},
        repetition=rep_index,
        split=None,
        subject=f"{session}",
        provenance=_provenance("cowley2023_v4", paths, session=session, raw=raw),
        stimuli=images,
        dtype=dtype,
        nan=nan,
    )


@dataclass
class Kriegeskorte92:
    """The 92 images and their RDMs (all (n, 92, 92), in the images' order).

    ``rdms["hIT"]``: human IT, 4 subjects x 2 sessions (``rdm_labels["hIT"]`` names them);
    ``rdms["hIT_fig1"]`` and ``rdms["mIT"]``: the fig. 1 RDMs (human 316 voxels, monkey 674 neurons);
    ``rdms["models"]``/``["behaviour"]``: model and similarity-judgement RDMs.
    ``categories``: {label: bool (92,)} from ``categoryVectors``; ``category``: per-image name.
    """

    stimuli: object
    rdms: dict[str, np.ndarray]
    rdm_labels: dict[str, list[str]]
    categories: dict[str, np.ndarray]
    category: list[str]
    provenance: dict = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.stimuli.ids)


def _struct_str(x) -> str:
    return str(np.asarray(x).ravel()[0]) if np.asarray(x).size else ""


def _rdm_stack(struct) -> tuple[np.ndarray, list[str]]:
    from scipy.spatial.distance import squareform

    rdms, names = [], []
    for item in np.asarray(struct).ravel(order="F"):
        r = np.asarray(item["RDM"], dtype=np.float64)
        if r.ndim == 2 and r.shape[0] == 1:
            r = squareform(r.ravel(), checks=False)
        rdms.append(r)
        names.append(_struct_str(item["name"]))
    return np.stack(rdms), names


def load_kriegeskorte(paths) -> Kriegeskorte92:
    """Kriegeskorte et al. 2008 92-image set with human/monkey IT, model and behavioural RDMs."""
    from scipy.io import loadmat

    from brainlike.stimuli import ImageSet

    sup = loadmat(_pick(paths, "Kriegeskorte_Neuron2008_supplementalData.mat"))
    objs = sup["stimuli_92objs"].ravel()
    images = np.stack([np.asarray(o["image"], dtype=np.uint8) for o in objs])
    ids = [f"image{i + 1:02d}" for i in range(len(objs))]
    stim = ImageSet.from_array(images, ids=ids, name="kriegeskorte2008_92")
    labels = [_struct_str(x) for x in sup["categoryLabels"].ravel()]
    vectors = np.asarray(sup["categoryVectors"]).astype(bool)
    rdms: dict[str, np.ndarray] = {}
    rlabels: dict[str, list[str]] = {}
    fig1, fig1_names = _rdm_stack(sup["RDMs_mIT_hIT_fig1"])
    for r, nm in zip(fig1, fig1_names):
        key = "mIT" if nm.startswith("mIT") else "hIT_fig1"
        rdms[key] = r[None]
        rlabels[key] = [nm]
    brain = loadmat(_pick(paths, "92_brainRDMs.mat"))["RDMs"]  # (1, 4 subjects, 2 sessions)
    b = np.asarray(brain)
    items = [b[0, s, k] for s in range(b.shape[1]) for k in range(b.shape[2])]
    rdms["hIT"] = np.stack([np.asarray(it["RDM"], dtype=np.float64) for it in items])
    rlabels["hIT"] = [_struct_str(it["name"]) for it in items]
    for key, fname, var in (("models", "92_modelRDMs.mat", "Models"), ("behaviour", "92_behavRDMs.mat", "rdms_behav_92")):
        try:
            p = _pick(paths, fname)
        except KeyError:
            continue
        rdms[key], rlabels[key] = _rdm_stack(loadmat(p)[var])
    for key, r in rdms.items():
        if r.shape[1:] != (92, 92):
            raise ValueError(f"RDM {key!r} must be (n, 92, 92); got {r.shape}")
    return Kriegeskorte92(
        stimuli=stim,
        rdms=rdms,
        rdm_labels=rlabels,
        categories={lab: vectors[:, j].copy() for j, lab in enumerate(labels)},
        category=[_struct_str(o["category"]) for o in objs],
        provenance=_provenance("kriegeskorte2008_92", paths),
    )


def load_kay_stimuli(paths):
    """The 1750 vim-1 training images as an ImageSet (ids '0'..'1749')."""
    p = _pick(paths, "kay_train_stimuli_1750_jpg.zip")
    with zipfile.ZipFile(p) as zf:
        n = sum(1 for m in zf.namelist() if m.endswith(".jpg"))
    if n != 1750:
        raise ValueError(f"{p}: expected 1750 images, found {n}")
    return _image_set_from_zip(p, name="kay2008_vim1_stimuli")


def load_bhscore_settings(paths) -> dict:
    """BHscore's settings.json (through ``datasets.bhscore.read_settings`` when available)."""
    p = _pick(paths, "settings.json")
    try:
        from brainlike.datasets.bhscore import read_settings
    except ImportError:
        with open(p) as f:
            return json.load(f)
    return read_settings(p)


def load_bhscore_accuracy(paths, kind="decoding", dnns=None) -> dict:
    """The published accuracy tree ``tree[dnn][layer][subject][roi]`` (unzipped once, atomically)."""
    from .bhscore import ARCHIVE_DIRS, read_accuracy_tree, read_settings, unpack_accuracy

    settings = read_settings(_pick(paths, "settings.json"))
    final = unpack_accuracy(_pick(paths, f"{ARCHIVE_DIRS[kind]}.zip"), kind)
    return read_accuracy_tree(final, settings, dnns=dnns, kind=kind)


# --- registry wrappers for the file-format loaders --------------------------------------
def load_shen(paths, subject="sub-01", roi=None, **kw) -> BrainData:
    from .bdata import load_bdata

    parts = []
    for part, split in (("Training", "train"), ("Test", "test")):
        parts.append(load_bdata(_pick(paths, f"perceptionNaturalImage{part}_VC_v2.h5"), roi=roi, split=split,
                                subject=subject, **kw))
    from .bdata import stack_splits

    return stack_splits(parts, dataset="shen2019_deeprecon")


def load_god(paths, subject=1, roi=None, **kw) -> BrainData:
    from .bdata import load_bdata

    return load_bdata(_pick(paths, f"Subject{int(subject)}.h5"), roi=roi, subject=f"Subject{int(subject)}", **kw)


def meta_shen(paths, subject="sub-01", roi=None, **_):
    """``load_shen`` without the responses (datasets.metadata)."""
    from .bdata import bdata_meta
    from .metadata import stack_meta

    return stack_meta([bdata_meta(_pick(paths, f"perceptionNaturalImage{part}_VC_v2.h5"), roi=roi, split=split,
                                  subject=subject) for part, split in (("Training", "train"), ("Test", "test"))])


def meta_god(paths, subject=1, roi=None, **_):
    """``load_god`` without the responses (datasets.metadata)."""
    from .bdata import bdata_meta

    return bdata_meta(_pick(paths, f"Subject{int(subject)}.h5"), roi=roi, subject=f"Subject{int(subject)}")


def load_decodeddnn_zips(paths, net="AlexNet", layers=None, modes=("accuracy", "rank"), **kw):
    from .decodeddnn import load_decodability

    table_modes = [m for m in modes if m in ("accuracy", "rank")]
    if not table_modes:
        raise ValueError(f"modes: load() returns the accuracy/rank table, so modes must include 'accuracy' or "
                         f"'rank'; got {list(modes)} (read decoded/true features with "
                         "brainlike.datasets.read_decoded_features on the paths of fetch())")
    return load_decodability(list(paths.values()), net=net, layers=None if layers is None else list(layers),
                             modes=table_modes, **kw)


def load_kay_vim1_registry(paths, subject=1, stimuli=True, **kw) -> BrainData:
    """EstimatedResponses.mat with the images of Stimuli.mat attached (``stimuli=False``: responses only)."""
    from .kay import load_kay_vim1

    images = _pick(paths, "Stimuli.mat") if stimuli not in (False, "false", "False", "0", 0) else None
    return load_kay_vim1(_pick(paths, "EstimatedResponses.mat"), subject=subject, stimuli=images, **kw)


def load_kay_npz_registry(paths, **kw) -> BrainData:
    from .kay import load_kay_npz

    return load_kay_npz(_pick(paths, "kay_images.npz"), **kw)


def load_nsd_registry(paths, subject=1, sessions=(1,), space="func1pt8mm", betas_format="hdf5", roi="V1", **kw):
    from .nsd import load_nsd

    root = Path(_pick(paths, "nsd_expdesign.mat")).parents[3]
    return load_nsd(root, subject=subject, sessions=sessions, space=space, betas_format=betas_format, roi=roi, **kw)


def meta_nsd(paths, subject=1, sessions=(1,), space="func1pt8mm", betas_format="hdf5", roi="V1", **_):
    """``load_nsd_registry`` without the betas (datasets.metadata)."""
    from .nsd import nsd_meta

    root = Path(_pick(paths, "nsd_expdesign.mat")).parents[3]
    return nsd_meta(root, subject=subject, sessions=sessions, space=space, betas_format=betas_format, roi=roi)
