"""BHscore's feature layout: ``features/<image set>/<framework>/<network>/<layer>/<image id>.mat``.

Each file holds ``feat``, shape 1 x n_units (float32). BHscore's PyTorch script writes it with
``scipy.io.savemat`` (MATLAB v5); its Caffe script writes MATLAB v7.3 (HDF5) through
bdpy/hdf5storage and keeps the blob shape (1, C, H, W). Both are read here, as bdpy reads
them (flattened in C order). Layer names with ``/`` are stored with ``:`` as BHscore does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainlike._io import atomic_write
from brainlike._validate import check_inside, check_relpath

from ._store import FeatureSet, LayerFeatures


def _layer_dir(name: str) -> str:
    return name.replace("/", ":")


def _atomic_savemat(path: Path, feat: np.ndarray, fmt: str) -> None:
    def write(tmp):
        if fmt == "v5":
            from scipy.io import savemat

            with open(tmp, "wb") as fh:
                savemat(fh, {"feat": feat})
        else:
            import hdf5storage

            # truncate: the temporary file exists (empty); recreating it writes the MATLAB 7.3 header
            hdf5storage.savemat(str(tmp), {"feat": feat}, format="7.3", oned_as="column",
                                store_python_metadata=True, truncate_existing=True)

    atomic_write(path, write, suffix=".mat")


def export_bhscore(features, root, image_set: str, framework: str, network: str, layers=None,
                   format: str = "v5", rows_per_read: int = 32) -> Path:
    """Write ``features`` (a FeatureSet or {layer: LayerFeatures}) in BHscore's one-file-per-image layout.

    Returns the network folder ``root/image_set/framework/network``. ``format`` is "v5"
    (scipy.io.savemat, as BHscore's PyTorch script) or "v7.3" (HDF5, as its Caffe script).
    Files are written whole (tmp + rename); ``rows_per_read`` images are read from the store at a time.
    """
    if rows_per_read < 1:
        raise ValueError(f"rows_per_read must be >= 1; got {rows_per_read}")
    if format not in ("v5", "v7.3"):
        raise ValueError(f"format must be one of ['v5', 'v7.3']; got {format!r}")
    for label, val in (("image_set", image_set), ("framework", framework), ("network", network)):
        if not isinstance(val, str):
            raise ValueError(f"{label} must be a non-empty folder name; got {val!r}")
        check_relpath(val, label, subfolders=False)
    names = list(features) if layers is None else list(layers)
    out = Path(root) / image_set / framework / network
    # every name that becomes a file is checked before anything is written: an image id is one file
    # name in its layer folder (no '/', '..', absolute path or drive letter: no write outside ``root``)
    for name in names:
        check_relpath(_layer_dir(name), "layer folder name", subfolders=False)
        for sid in features[name].ids:
            check_relpath(sid, f"image id of layer {name!r}", subfolders=False)
    for name in names:
        lf = features[name]
        d = out / _layer_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        check_inside(d, root, "layer folder")
        n = len(lf.ids)
        for start in range(0, n, rows_per_read):  # a block of rows per read: each chunk is read once
            block = np.asarray(lf.read(slice(None), np.arange(start, min(n, start + rows_per_read))), np.float32)
            for k, row in enumerate(block):
                _atomic_savemat(d / f"{lf.ids[start + k]}.mat", row.reshape(1, -1), format)
    return out


def _load_feat(path: Path) -> np.ndarray:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return np.asarray(loadmat(str(path), variable_names=["feat"])["feat"])
    except KeyError:
        raise ValueError(f"{path} holds no variable 'feat'") from None
    except (NotImplementedError, ValueError, MatReadError, IndexError, TypeError, OSError, EOFError):
        # MATLAB v7.3 (HDF5), as BHscore's Caffe script writes; garbage and truncated files end below, named
        import hdf5storage

        try:
            return np.asarray(hdf5storage.loadmat(str(path), variable_names=["feat"])["feat"])
        except KeyError:
            raise ValueError(f"{path} holds no variable 'feat'") from None
        except Exception as err:  # noqa: BLE001 - h5py raises OSError/ValueError/TypeError on garbage
            raise ValueError(f"cannot read {path} as a MATLAB v5 or v7.3 file: {err}") from err


def import_bhscore(root, image_set: str | None = None, framework: str | None = None, network: str | None = None,
                   layers=None, ids=None, feature_index=None) -> FeatureSet:
    """Read BHscore-layout features into an in-memory ``FeatureSet`` (ids natural-sorted or as given).

    ``root`` is the ``features`` folder (with ``image_set/framework/network`` below it) or, when those
    are None, the network folder itself, or a list of network folders (BHscore keeps training and
    test images in two trees, ``features/ImageNetTraining/<dir>`` and ``features/ImageNetTest/<dir>``):
    each id is read from the one folder that holds it. Every layer must hold the same image ids.
    ``feature_index``: a bdpy ``feature_index`` file (``index_random1000.mat``): only those units
    of each layer, after C-order flattening, as bdpy's ``Features`` selects them.
    """
    from ..stimuli import natural_key

    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    if not roots:
        raise ValueError("root must name at least one feature folder")
    bases = []
    for r in roots:
        base = Path(r)
        if image_set is not None:
            base = base / image_set / (framework or "") / (network or "")
        if not base.is_dir():
            raise FileNotFoundError(f"BHscore feature folder not found: {base}")
        bases.append(base)
    avail = sorted((p.name for p in bases[0].iterdir() if p.is_dir()), key=natural_key)
    if not avail:
        raise ValueError(f"no layer folders under {bases[0]}")
    for b in bases[1:]:
        other = sorted((p.name for p in b.iterdir() if p.is_dir()), key=natural_key)
        if other != avail:
            raise ValueError(f"feature folders {bases[0]} and {b} hold different layers: {avail} vs {other}")
    if layers is None:
        chosen = avail
    else:
        chosen = [_layer_dir(n) for n in ([layers] if isinstance(layers, str) else layers)]
        unknown = [c for c in chosen if c not in avail]
        if unknown:
            raise ValueError(f"layers {unknown} not found under {bases[0]}; available: {avail}")
    index = None
    if feature_index is not None:
        from ..datasets.bhscore_data import read_feature_index

        index = read_feature_index(feature_index, chosen)
    where = " and ".join(str(b) for b in bases)
    out = {}
    ref_ids = None
    for lname in chosen:
        files = {}
        for b in bases:
            for p in (b / lname).glob("*.mat"):
                if p.stem in files:
                    raise ValueError(f"image {p.stem!r} of layer {lname!r} is in two feature folders: "
                                     f"{files[p.stem]} and {p}")
                files[p.stem] = p
        if not files:
            raise ValueError(f"layer folder {lname!r} holds no .mat files in {where}")
        layer_ids = sorted(files, key=natural_key) if ids is None else [str(i) for i in ids]
        missing = [i for i in layer_ids if i not in files]
        if missing:
            raise ValueError(f"layer {lname!r}: no file for ids {missing[:5]} ({len(missing)} in all) in {where}")
        if ref_ids is None:
            ref_ids = layer_ids
        elif set(layer_ids) != set(ref_ids):
            from ..ids import same_ids

            same_ids(ref_ids, layer_ids, name_a=f"layer {chosen[0]!r}", name_b=f"layer {lname!r}")
        # each stimulus id paired with its file by brainlike.ids.align (never by position)
        from ..ids import align

        stems = list(files)
        order = align(stems, ref_ids, source=f"feature files of layer {lname!r} in {where}", wanted="stimulus ids")
        rows, unit_shape = [], None
        for sid, k in zip(ref_ids, order):
            f = _load_feat(files[stems[k]])
            if f.ndim < 2 or f.shape[0] != 1:
                raise ValueError(f"{files[sid]}: feat must have shape (1, ...); got {f.shape}")
            shape = tuple(f.shape[1:])
            if unit_shape is None:
                unit_shape = shape
            elif shape != unit_shape:
                raise ValueError(f"{files[sid]}: feat shape {f.shape} differs from the layer's (1, {unit_shape})")
            rows.append(f.reshape(-1).astype(np.float32))
        arr = np.stack(rows)
        if index is not None:
            sel = index[lname]
            if sel.max() >= arr.shape[1]:
                raise ValueError(f"{feature_index}: the index of layer {lname!r} goes up to {int(sel.max())}, but the "
                                 f"layer has {arr.shape[1]} units")
            arr, unit_shape = np.ascontiguousarray(arr[:, sel]), (sel.size,)
        name = lname.replace(":", "/")
        out[name] = LayerFeatures(arr, ref_ids, unit_shape, name=name)
    return FeatureSet(out, ref_ids, path=str(bases[0]) if len(bases) == 1 else where)
