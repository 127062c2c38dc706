"""The Horikawa et al. 2019 decodability files ("decodedDNN", figshare 6269321): read and write.

Layout of the published files (KamitaniLab/brain-decoding-datasets ``bdds/decodeddnn.py``,
``DecodedDNN.__get_filepath`` at version 1.0.1, commit 0aff84f; the figshare zips
``decodedDNN-<mode>-<net>-<layer>.zip`` hold the same tree under ``decodedDNN/``)::

    accuracy/<net>/<layer>/accuracy-<net>-<layer>-<subject>.mat                  ('accuracy', per unit)
    rank/<net>/<layer>/rank-<net>-<layer>-<subject>.mat                          ('rank', 1 = best)
    decoded/<net>/<layer>/<subject>/decoded-<net>-<layer>-<subject>-<image>.mat  ('feat')
    true/<net>/<layer>/true-<net>-<layer>-<image>.mat                            ('feat')

with subjects ``S1``..``S5`` and ``Averaged`` (accuracy, rank). The earlier names of the same
module (commit 2ae4114: ``<layer>_accuracy_<subject>.mat``, ``<layer>_rank_<subject>.mat``,
``decoded/.../<subject>/<layer>_<image>.mat``, subject ``Average``) are read too. The published
decoders were trained on VC; brainlike writes one such tree per ROI, under ``<roi>/`` when a
table holds several ROIs (any folder directly above the mode folder other than ``decodedDNN``
is read back as the ROI).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["load_decodability", "read_decoded_features", "write_unit_values", "write_features",
           "MODES", "AVERAGED"]

MODES = ("accuracy", "rank", "decoded", "true")
AVERAGED = "Averaged"  # bdds 1.0.1 subject name of the subject average
_TOP = "decodedDNN"  # top folder inside the figshare zips (bdds: src.split('/decodedDNN/'))


# --- names ------------------------------------------------------------------------------------
def unit_values_path(mode: str, net: str, layer: str, subject: str) -> str:
    """Relative path of an accuracy or rank file (bdds 1.0.1 names)."""
    if mode not in ("accuracy", "rank"):
        raise ValueError(f"mode must be 'accuracy' or 'rank'; got {mode!r}")
    return f"{mode}/{net}/{layer}/{mode}-{net}-{layer}-{subject}.mat"


def feature_path(net: str, layer: str, image: str, subject: str | None = None) -> str:
    """Relative path of a decoded (``subject`` given) or true (``subject`` None) feature file."""
    if subject is None:
        return f"true/{net}/{layer}/true-{net}-{layer}-{image}.mat"
    return f"decoded/{net}/{layer}/{subject}/decoded-{net}-{layer}-{subject}-{image}.mat"


_UNIT = [re.compile(r"^(accuracy|rank)/([^/]+)/([^/]+)/\1-\2-\3-([^/]+)\.mat$"),  # bdds 1.0.1
         re.compile(r"^(accuracy|rank)/([^/]+)/([^/]+)/\3_\1_([^/]+)\.mat$")]  # bdds 2ae4114


def _parse_unit(rel: str):
    for pat in _UNIT:
        m = pat.match(rel)
        if m:
            return m.group(1), m.group(2), m.group(3), m.group(4)
    return None


# --- reading ----------------------------------------------------------------------------------
def _read_mat(data: bytes | Path, keys=("accuracy", "rank", "feat"), name: str = "") -> np.ndarray:
    from scipy.io import loadmat

    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        m = loadmat(io.BytesIO(raw))
        for k in keys:
            if k in m:
                return np.asarray(m[k])
    except (NotImplementedError, ValueError):  # MATLAB v7.3 = HDF5
        import h5py

        try:
            with h5py.File(io.BytesIO(raw), "r") as f:
                for k in keys:
                    if k in f:
                        return np.asarray(f[k][()]).T  # MATLAB order (bdds: transpose(2, 1, 0))
        except OSError as err:
            raise ValueError(f"{name}: not a MATLAB .mat file ({err})") from None
    raise ValueError(f"{name}: no variable among {list(keys)} in the .mat file")


def _members(sources) -> dict[tuple[str | None, str], object]:
    """{(roi folder or None, path from the mode folder on): Path or (zip path, member)}."""
    out: dict = {}
    if isinstance(sources, (str, Path)):
        sources = [sources]
    for src in sources:
        src = Path(src)
        if src.is_dir():
            items = [(p.relative_to(src).as_posix(), p) for p in src.rglob("*.mat")]
        elif src.is_file() and zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                items = [(n, (src, n)) for n in z.namelist() if n.endswith(".mat")]
        else:
            raise ValueError(f"sources must be folders or zip files of the decodedDNN layout; got {src}")
        for rel, handle in items:
            parts = rel.split("/")
            i = next((k for k, p in enumerate(parts) if p in MODES), None)
            if i is None:
                continue
            # the zips' top folder (and bdds' data store "decodeddnn") is not a ROI
            roi = parts[i - 1] if i > 0 and parts[i - 1].lower() != _TOP.lower() else None
            out[(roi, "/".join(parts[i:]))] = handle
    return out


def _read(member) -> np.ndarray:
    if isinstance(member, Path):
        return _read_mat(member, name=str(member))
    zpath, name = member
    with zipfile.ZipFile(zpath) as z:
        return _read_mat(z.read(name), name=f"{zpath}:{name}")


def load_decodability(sources, *, net=None, layers=None, modes=("accuracy", "rank"), subjects=None,
                      rois=None, default_roi: str = "VC"):
    """Per-unit accuracy / rank values as one tidy table.

    ``sources``: folder(s) and/or zip file(s) in the layout of the module docstring (as
    published, or as written by :func:`brainlike.scores.export_decodability`). Returns a pandas
    DataFrame with columns net, roi, layer, subject, unit and one column per mode (NaN where a
    mode's file is missing). Files without a ROI folder get ``default_roi`` (the published
    decoders used VC).
    """
    import pandas as pd

    bad = [m for m in modes if m not in ("accuracy", "rank")]
    if bad or not modes:
        raise ValueError(f"modes must be drawn from ['accuracy', 'rank']; got {list(modes)}")
    rows: dict = {}
    for (roi, rel), m in sorted(_members(sources).items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        hit = _parse_unit(rel)
        if not hit:
            continue
        mode, n, ly, subj = hit
        roi = roi or default_roi
        if (mode not in modes or (net and n != net) or (layers and ly not in layers)
                or (subjects and subj not in subjects) or (rois and roi not in rois)):
            continue
        rows.setdefault((n, roi, ly, subj), {})[mode] = _read(m).ravel().astype(np.float64)
    if not rows:
        raise ValueError(f"no {list(modes)} files for net={net!r} layers={layers!r} subjects={subjects!r} "
                         f"in {sources}")
    frames = []
    for (n, roi, ly, subj), d in rows.items():
        sizes = {k: v.size for k, v in d.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"{n}/{ly}/{subj}: modes hold different numbers of units {sizes}")
        size = next(iter(sizes.values()))
        frame = {"net": n, "roi": roi, "layer": ly, "subject": subj, "unit": np.arange(size)}
        for mode in modes:
            frame[mode] = d.get(mode, np.full(size, np.nan))
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def read_decoded_features(sources, net: str, layer: str, subject: str | None = None, roi: str | None = None):
    """(image ids, (n_images, n_units) float32): decoded features of ``subject``, or the true
    features when ``subject`` is None; images in sorted id order. ``roi``: the ROI folder of a
    brainlike export with several ROIs (None: files without a ROI folder)."""
    e = re.escape
    if subject is None:
        pats = [re.compile(rf"^true/{e(net)}/{e(layer)}/true-{e(net)}-{e(layer)}-(.+)\.mat$")]
    else:
        pats = [re.compile(rf"^decoded/{e(net)}/{e(layer)}/{e(subject)}/"
                           rf"decoded-{e(net)}-{e(layer)}-{e(subject)}-(.+)\.mat$"),
                re.compile(rf"^decoded/{e(net)}/{e(layer)}/{e(subject)}/{e(layer)}_(.+)\.mat$")]
    found = {}
    for (r, rel), m in _members(sources).items():
        if r != roi:
            continue
        for pat in pats:
            hit = pat.match(rel)
            if hit:
                found[hit.group(1)] = m
                break
    if not found:
        what = "true" if subject is None else f"decoded ({subject})"
        raise ValueError(f"no {what} features for {net}/{layer}{'' if roi is None else ' in ROI ' + roi} "
                         f"in {sources}")
    ids = sorted(found)
    return ids, np.stack([_read(found[i]).ravel() for i in ids]).astype(np.float32)


# --- writing ----------------------------------------------------------------------------------
def _savemat(path: Path, mdict: dict) -> Path:
    from scipy import io as sio

    from brainlike._io import atomic_write

    atomic_write(path, lambda tmp: sio.savemat(tmp, mdict))
    return path


def write_unit_values(out_dir, mode: str, net: str, layer: str, subject: str, values) -> Path:
    """Write one accuracy or rank file (1 x n_units, float64) at its published path under ``out_dir``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return _savemat(Path(out_dir) / unit_values_path(mode, net, layer, subject), {mode: values[None, :]})


def write_features(out_dir, net: str, layer: str, ids, features, subject: str | None = None) -> list[Path]:
    """Write decoded (``subject`` given) or true features, one file per image (``feat``, 1 x n_units)."""
    feats = np.asarray(features, dtype=np.float32)
    ids = [str(i) for i in ids]
    if feats.ndim != 2 or feats.shape[0] != len(ids):
        raise ValueError(f"features must be (n_images, n_units) with one row per id ({len(ids)}); "
                         f"got shape {feats.shape}")
    from brainlike._validate import check_relpath

    for label, name in (("net", net), ("layer", layer), ("subject", subject)):
        if name is not None:
            check_relpath(name, label, subfolders=False)
    for i in ids:  # each id names one file: no '/', '..', absolute path or drive letter
        check_relpath(i, "image id", subfolders=False)
    return [_savemat(Path(out_dir) / feature_path(net, layer, i, subject), {"feat": f[None, :]})
            for i, f in zip(ids, feats)]
