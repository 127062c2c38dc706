"""BHscore (Nonaka et al. 2021) files: ``settings.json`` and the published accuracy trees.

The published decoding and encoding accuracies (figshare) are trees of MAT files (HDF5-based,
written with hdf5storage), one per DNN, layer, subject and ROI::

    <root>/<dnn dir>/<layer>/<subject>/<roi>/accuracy.mat      # variable "accuracy"

where ``<dnn dir>`` (e.g. ``caffe/AlexNet``) and the ordered layers come from
``settings.json``. The unzipped archives hold ``decoding_accuracy/ImageNetTest/...`` and
``encoding_accuracy/ImageNetTest/...``; :func:`find_tree_root` finds the level that starts
the tree. Decoding files hold one accuracy per DNN unit (1000 random units per layer),
encoding files one per voxel (1000 random voxels per subject and ROI).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._io import atomic_write

SETTINGS_URL = "https://raw.githubusercontent.com/KamitaniLab/BHscore/860859587ebb2e97b2af23e49b8cc5e51cec99a1/settings.json"
ACCURACY_URLS = {
    # as in KamitaniLab/BHscore data/download_decoding_accuracy.sh and download_encoding_accuracy.sh
    "decoding": "https://ndownloader.figshare.com/files/24132263",
    "encoding": "https://figshare.com/ndownloader/files/32116400",
}
ARCHIVE_DIRS = {"decoding": "decoding_accuracy", "encoding": "encoding_accuracy"}
FIGSHARE_ARTICLE = "https://figshare.com/articles/dataset/The_Brain_Hierarchy_Score/12401168"

__all__ = [
    "SETTINGS_URL",
    "ACCURACY_URLS",
    "read_settings",
    "read_accuracy_file",
    "read_accuracy_tree",
    "write_accuracy_tree",
    "write_accuracy_file",
    "find_tree_root",
    "decoding_arrays",
    "encoding_arrays",
    "tree_to_table",
    "download_accuracy",
    "unpack_accuracy",
]


def read_settings(path) -> dict:
    """Read and check a BHscore ``settings.json``.

    Returns ``{"subjects": [...], "rois": [...], "dnns": {name: {"dir": str, "layers": [...]}}}``
    with the DNN order of the file. Errors name the bad key.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"settings file not found: {p}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a JSON object with keys subjects, rois, dnns; got {type(raw).__name__}")
    for key in ("subjects", "rois", "dnns"):
        if key not in raw:
            raise ValueError(f"{p}: missing key {key!r} (expected subjects, rois, dnns)")
    for key in ("subjects", "rois"):
        v = raw[key]
        if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
            raise ValueError(f"{p}: {key!r} must be a non-empty list of strings; got {v!r}")
    if not (isinstance(raw["dnns"], dict) and raw["dnns"]):
        raise ValueError(f"{p}: 'dnns' must be a non-empty object {{name: {{dir, layers}}}}")
    dnns = {}
    for name, d in raw["dnns"].items():
        if not isinstance(d, dict) or "dir" not in d or "layers" not in d:
            raise ValueError(f"{p}: dnns[{name!r}] must have keys 'dir' and 'layers'; got {d!r}")
        layers = d["layers"]
        if not (isinstance(layers, list) and len(layers) >= 2 and all(isinstance(x, str) for x in layers)):
            raise ValueError(f"{p}: dnns[{name!r}]['layers'] must list at least 2 layer names; got {layers!r}")
        if not isinstance(d["dir"], str) or not d["dir"]:
            raise ValueError(f"{p}: dnns[{name!r}]['dir'] must be a non-empty string; got {d['dir']!r}")
        dnns[name] = {"dir": d["dir"], "layers": list(layers)}
    return {"subjects": list(raw["subjects"]), "rois": list(raw["rois"]), "dnns": dnns}


def read_accuracy_file(path) -> np.ndarray:
    """The ``accuracy`` variable of one ``accuracy.mat`` as a flat float64 array.

    MAT v7.3 (HDF5) files are read with h5py directly (MATLAB's column-major order undone, so
    the values come in the order of ``hdf5storage.loadmat(...)['accuracy'].flatten()``); older
    MAT files with scipy.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"accuracy file not found: {p}")
    if h5py.is_hdf5(p):
        with h5py.File(p, "r") as f:
            if "accuracy" not in f:
                raise ValueError(f"{p}: no variable 'accuracy' (found {sorted(f.keys())})")
            arr = np.asarray(f["accuracy"][()], dtype=np.float64)
        return (arr.T if arr.ndim >= 2 else arr).ravel()
    from scipy import io as sio

    d = sio.loadmat(str(p), variable_names=["accuracy"])
    if "accuracy" not in d:
        raise ValueError(f"{p}: no variable 'accuracy' (found {sorted(k for k in d if not k.startswith('__'))})")
    return np.asarray(d["accuracy"], dtype=np.float64).ravel()


def find_tree_root(root, settings: dict, kind: str | None = None) -> Path:
    """The folder under which ``<dnn dir>/<layer>/...`` starts.

    Accepts the tree root itself, its parent ``.../ImageNetTest``'s parent, or the folder that
    holds the unzipped ``decoding_accuracy``/``encoding_accuracy`` archives (``kind`` picks one).
    """
    root = Path(root)
    first = next(iter(settings["dnns"].values()))
    candidates = [root, root / "ImageNetTest"]
    if kind is not None:
        candidates += [root / ARCHIVE_DIRS[kind] / "ImageNetTest", root / ARCHIVE_DIRS[kind]]
    for c in candidates:
        if (c / first["dir"]).is_dir():
            return c
    raise FileNotFoundError(
        f"no accuracy tree under {root}: expected {root}/<dnn dir>/<layer>/<subject>/<roi>/accuracy.mat "
        f"(e.g. {first['dir']}/{first['layers'][0]}/...)"
        + (f", or {root}/{ARCHIVE_DIRS[kind]}/ImageNetTest/..." if kind else "")
    )


def read_accuracy_tree(root, settings: dict, dnns=None, kind: str | None = None) -> dict:
    """Read the accuracy tree into ``tree[dnn][layer][subject][roi] -> 1-D array``.

    ``settings`` is a dict from :func:`read_settings` (or a path to one); ``dnns`` restricts
    to some networks (default: all of the settings, in their order). Every file must exist:
    a missing one is reported with its path before anything is computed.
    """
    if not isinstance(settings, dict):
        settings = read_settings(settings)
    names = list(settings["dnns"]) if dnns is None else list(dnns)
    unknown = [n for n in names if n not in settings["dnns"]]
    if unknown:
        raise ValueError(f"dnns must be among the settings' networks {list(settings['dnns'])}; got {unknown}")
    base = find_tree_root(root, settings, kind)
    paths = {}
    for name in names:
        d = settings["dnns"][name]
        for layer in d["layers"]:
            for sub in settings["subjects"]:
                for roi in settings["rois"]:
                    paths[name, layer, sub, roi] = base / d["dir"] / layer / sub / roi / "accuracy.mat"
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} accuracy file(s) missing under {base}, e.g. {missing[:3]}")
    tree: dict = {}
    for (name, layer, sub, roi), p in paths.items():
        tree.setdefault(name, {}).setdefault(layer, {}).setdefault(sub, {})[roi] = read_accuracy_file(p)
    return tree


def write_accuracy_file(path, accuracy, *, dtype=np.float32, python_metadata: bool = True) -> Path:
    """Write one ``accuracy.mat`` as BHscore's scripts do (atomically).

    ``decoding/feature_decoding_predict.py`` l.229-230 and ``encoding/featenc_fastl2lir_predict.py``
    l.222-223 call bdpy's ``save_array(file, accuracy, key='accuracy', dtype=np.float32)``, i.e.
    ``hdf5storage.savemat(..., format='7.3', oned_as='column', store_python_metadata=True)``
    (``bdpy/dataform/sparse.py`` ``save_array``), with ``accuracy`` of shape ``(1,) + unit shape``.
    """
    import hdf5storage

    arr = np.asarray(accuracy).astype(dtype)
    mdict = {"accuracy": arr}
    # truncate: the temporary file exists (empty); recreating it writes the MATLAB 7.3 header
    return atomic_write(Path(path), lambda tmp: hdf5storage.savemat(
        tmp, mdict, format="7.3", oned_as="column", store_python_metadata=python_metadata, truncate_existing=True),
        suffix=".mat")


def write_accuracy_tree(root, settings: dict, tree: dict) -> list[Path]:
    """Write ``tree[dnn][layer][subject][roi]`` arrays as ``accuracy.mat`` files (hdf5storage).

    Same layout and format as the published trees (useful for fixtures and for exporting
    results to code that reads BHscore's files). Each file is written to a temporary name then
    renamed. Returns the paths written.
    """
    if not isinstance(settings, dict):
        settings = read_settings(settings)
    out = []
    for name, layers in tree.items():
        d = settings["dnns"][name]["dir"]
        for layer, subs in layers.items():
            for sub, rois in subs.items():
                for roi, acc in rois.items():
                    p = Path(root) / d / layer / sub / roi / "accuracy.mat"
                    write_accuracy_file(p, np.asarray(acc, dtype=np.float64)[None, :], dtype=np.float64,
                                        python_metadata=False)
                    out.append(p)
    return out


def decoding_arrays(tree: dict, settings: dict, dnn: str) -> list[np.ndarray]:
    """Per layer (settings order) an array (n_rois, n_units pooled over subjects) for ``bh_score``."""
    d = settings["dnns"][dnn]
    out = []
    for layer in d["layers"]:
        rows = []
        for roi in settings["rois"]:
            rows.append(np.hstack([tree[dnn][layer][sub][roi] for sub in settings["subjects"]]))
        sizes = {r.size for r in rows}
        if len(sizes) != 1:
            raise ValueError(f"{dnn}/{layer}: ROIs hold different numbers of units {sorted(sizes)}")
        out.append(np.vstack(rows))
    return out


def encoding_arrays(tree: dict, settings: dict, dnn: str, per_subject: bool = False) -> list:
    """Per ROI (settings order) an array (n_layers, n_voxels pooled over subjects).

    With ``per_subject`` each item is instead a list of per-subject arrays, for
    :func:`brainlike.scores.bh_score_encoding` to subsample voxels per subject.
    """
    layers = settings["dnns"][dnn]["layers"]
    out = []
    for roi in settings["rois"]:
        subs = [np.vstack([tree[dnn][layer][sub][roi] for layer in layers]) for sub in settings["subjects"]]
        out.append(subs if per_subject else np.hstack(subs))
    return out


def tree_to_table(tree: dict, settings: dict, kind: str = "decoding") -> pd.DataFrame:
    """Tidy results table (columns of ``<out>/results/<kind>_accuracy.parquet``) from a tree."""
    index_col = "unit" if kind == "decoding" else "voxel"
    keys, sizes, accs = [], [], []
    for name, layers in tree.items():
        order = settings["dnns"][name]["layers"]
        for layer, subs in layers.items():
            for sub, rois in subs.items():
                for roi, acc in rois.items():
                    keys.append((name, sub, roi, layer, order.index(layer)))
                    sizes.append(acc.size)
                    accs.append(np.asarray(acc, dtype=np.float64).ravel())
    sizes = np.asarray(sizes)
    cols = list(zip(*keys)) if keys else [[]] * 5
    out = {}
    for c, v in zip(["dnn", "subject", "roi", "layer", "layer_index"], cols):
        if c == "layer_index":
            out[c] = np.repeat(np.asarray(v, dtype=np.int64), sizes)
        else:  # categorical: millions of rows stay small in memory and in Parquet
            cats = list(dict.fromkeys(v))
            codes = np.repeat(np.asarray([cats.index(x) for x in v] if len(cats) < 64 else
                                         pd.Index(cats).get_indexer(list(v)), dtype=np.int32), sizes)
            out[c] = pd.Categorical.from_codes(codes, categories=cats)
    out[index_col] = np.concatenate([np.arange(n) for n in sizes]) if keys else np.array([], dtype=np.int64)
    out["accuracy"] = np.concatenate(accs) if keys else np.array([])
    return pd.DataFrame(out)


def download_accuracy(kind: str, dest=None, *, progress: bool = True) -> Path:
    """The published accuracy archive of ``kind``, unzipped; returns the folder of the tree.

    The zip comes through the dataset registry (``bhscore_accuracy``), like every other file: the
    offline mirror, the data home, or a resumable download whose SHA-256 is recorded and checked
    from then on. It is unpacked once into ``dest`` (default: ``<data home>/bhscore``);
    the unpacked tree remembers which zip it came from and is unpacked again when that changes.
    """
    from ._fetch import DataNotAvailableError
    from .registry import fetch

    if kind not in ACCURACY_URLS:
        raise ValueError(f"kind must be one of {sorted(ACCURACY_URLS)}; got {kind!r}")
    try:
        paths = fetch("bhscore_accuracy", kind=kind, progress=progress)
    except DataNotAvailableError as err:
        raise DataNotAvailableError(
            f"could not download the {kind} accuracies ({err}). Download them by hand ({FIGSHARE_ARTICLE}), "
            "unzip into a folder and pass it with --accuracy-root (accuracy_root=...)"
        ) from err
    return unpack_accuracy(paths[f"bhscore/{ARCHIVE_DIRS[kind]}.zip"], kind, dest)


def unpack_accuracy(zpath, kind: str, dest=None) -> Path:
    """Unzip a published accuracy archive into ``dest/<decoding|encoding>_accuracy`` (atomically).

    ``dest`` None: ``<data home>/bhscore`` (beside a downloaded zip; the offline mirror is never written).
    A tree unpacked earlier from the same zip (by checksum) is reused.
    """
    from ._fetch import data_home, file_sha256

    zpath = Path(zpath)
    if dest is None:
        dest = data_home() / "bhscore"
    final = Path(dest) / ARCHIVE_DIRS[kind]
    digest = file_sha256(zpath)
    marker = final / ".brainlike-source.json"
    if final.is_dir():
        try:
            if json.loads(marker.read_text()).get("sha256") == digest:
                return final
        except (OSError, ValueError, AttributeError):
            pass
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".unzip-"))
    try:
        try:
            with zipfile.ZipFile(zpath) as zf:
                zf.extractall(tmp / "x")
        except zipfile.BadZipFile as err:
            raise ValueError(f"{zpath}: not a readable zip archive ({err}); delete it and fetch again") from err
        inner = tmp / "x" / ARCHIVE_DIRS[kind]
        root = inner if inner.is_dir() else tmp / "x"
        (root / ".brainlike-source.json").write_text(json.dumps({"zip": zpath.name, "sha256": digest}))
        if final.is_dir():  # from another zip: replaced whole
            os.replace(final, tmp / "old")
        os.replace(root, final)  # a killed unpacking never leaves a half tree under the final name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
