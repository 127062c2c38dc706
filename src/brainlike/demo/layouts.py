"""Miniature copies of published data layouts, with planted signal, for tutorials and tests.

``python -m brainlike.demo.layouts bhscore DIR`` writes a miniature of a KamitaniLab/BHscore checkout:
``DIR/settings.json`` and ``DIR/data/`` with the fMRI files and both feature trees, names and nesting
as BHscore's scripts read them (each name below cites its source). The visual cortex is simulated
with a planted hierarchy: ROI k (V1, V2, V3, V4, HVC) carries the latent factors that drive the
layers of group k (conv1_abs -> V1, conv2/conv3 -> V2, ..., fc8 -> HVC), so a BH score near 1
is expected, and near 0 for a layer-shuffled control.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["bhscore_layout", "write_bdata", "main"]

# BHscore settings.json: dnns.AlexNet = {dir: caffe/AlexNet, layers: [conv1_abs, ..., fc8]}
BH_DIR = "caffe/AlexNet"
BH_LAYERS = ["conv1_abs", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
BH_ROIS = ["V1", "V2", "V3", "V4", "HVC"]  # settings.json "rois"; selectors ROI_<name> = 1 (feature_decoding_train.py l.53-59)
BH_SUBJECTS = ["sub-01", "sub-02", "sub-03"]  # settings.json "subjects"; data/download_fmri.sh l.5-10
# which ROI's latent factors drive each layer (a monotone hierarchy)
BH_LAYER_ROI = [0, 1, 1, 2, 2, 3, 3, 4]
# unit shapes: Caffe blobs (1, C, H, W) for conv layers, (1, n) for fc layers, as BHscore's Caffe
# features are stored (feature_extraction/extract_features_caffe.py saves the blob with bdpy save_array)
BH_SHAPES = {"conv1_abs": (8, 3, 3), "conv2": (8, 3, 3), "conv3": (6, 3, 3), "conv4": (6, 3, 3), "conv5": (6, 3, 3),
             "fc6": (48,), "fc7": (48,), "fc8": (40,)}


def write_bdata(path, columns: list[tuple[str, np.ndarray]], roi_masks: dict[str, np.ndarray],
                vmaps: dict[str, dict] | None = None) -> Path:
    """Write a BData HDF5 file: ``columns`` [(metadata key, (n_samples, k) array)] in order, ROI
    masks over the ``VoxelData`` columns, label maps. With bdpy installed it writes the file
    (``BData.add``, ``add_metadata(where='VoxelData')``, ``add_vmap``, ``save``); otherwise the same
    layout with h5py (``/dataset``, ``/metadata/{key,description,value}``, ``/vmap/<key>/<value>``,
    as ``bdpy/bdata/bdata.py`` ``__save_h5`` writes it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import bdpy
    except ImportError:
        bdpy = None
    if bdpy is not None:
        bd = bdpy.BData()
        for key, arr in columns:
            bd.add(np.asarray(arr, dtype=np.float64), key)
        for name, mask in roi_masks.items():
            bd.add_metadata(f"ROI_{name}", np.where(mask, 1.0, np.nan), f"1 = ROI {name}", where="VoxelData")
        for key, vm in (vmaps or {}).items():
            bd.add_vmap(key, dict(vm))
        bd.save(str(path))
        return path
    import h5py

    data = np.hstack([np.asarray(a, dtype=np.float64).reshape(len(a), -1) for _, a in columns])
    keys, desc, values, start = [], [], [], 0
    for key, arr in columns:
        k = np.asarray(arr).reshape(len(arr), -1).shape[1]
        row = np.full(data.shape[1], np.nan)
        row[start:start + k] = 1
        keys.append(key), desc.append(f"1 = {key}"), values.append(row)
        start += k
    vox = values[keys.index("VoxelData")] == 1
    for name, mask in roi_masks.items():
        row = np.full(data.shape[1], np.nan)
        row[np.flatnonzero(vox)[np.asarray(mask, dtype=bool)]] = 1
        keys.append(f"ROI_{name}"), desc.append(f"1 = ROI {name}"), values.append(row)
    with h5py.File(path, "w") as f:
        f.create_dataset("/dataset", data=data)
        f.create_dataset("/metadata/key", data=[k.encode() for k in keys])
        f.create_dataset("/metadata/description", data=[d.encode() for d in desc])
        f.create_dataset("/metadata/value", data=np.vstack(values))
        f.create_group("/vmap")
        for key, vm in (vmaps or {}).items():
            for v, label in vm.items():
                f.create_dataset(f"/vmap/{key}/{v}", data=str(label).encode())
    return path


def _save_feat(path: Path, feat: np.ndarray) -> None:
    """One feature file as bdpy ``save_array(file, feat, key='feat', dtype=np.float32)`` writes it
    (``bdpy/dataform/sparse.py``: hdf5storage MATLAB 7.3, oned_as='column', python metadata)."""
    import hdf5storage

    path.parent.mkdir(parents=True, exist_ok=True)
    hdf5storage.savemat(str(path), {"feat": np.asarray(feat, dtype=np.float32)}, format="7.3", oned_as="column",
                        store_python_metadata=True)


def _image_names(rng, n: int, taken: set) -> list[str]:
    """ImageNet-style stems (``n01518878_10042``); several share a synset so that Python's sorted
    order (``_10042`` before ``_5958``) differs from natural order."""
    out = []
    while len(out) < n:
        syn = f"n{int(rng.integers(1_000_000, 15_000_000)):08d}"
        for num in rng.choice(np.array([int(rng.integers(100, 999)), int(rng.integers(1000, 9999)),
                                        int(rng.integers(10000, 99999))]), size=int(rng.integers(1, 4)), replace=False):
            name = f"{syn}_{int(num)}"
            if name not in taken and len(out) < n:
                taken.add(name)
                out.append(name)
    return out


def _float_label(name: str) -> float:
    syn, num = name[1:].split("_")
    return float(f"{int(syn)}.{int(num):06d}")


def bhscore_layout(root, *, subjects=None, n_train: int = 100, n_test: int = 50, train_reps: int = 2,
                   test_reps: int = 3, voxels_per_roi: int = 60, noise: float = 2.0, feature_index: bool = False,
                   features_all: bool = False, seed: int = 0) -> dict:
    """Write a miniature KamitaniLab/BHscore checkout under ``root``; return its paths.

    ``root/settings.json`` (the repository's ``settings.json``, with one network) and ``root/data/``:

    - ``data/fmri/<subject>_perceptionNaturalImage{Training,Test}_VC_v2.h5`` (``data/download_fmri.sh``
      l.5-10): BData with ``VoxelData``, ``ROI_V1`` ... ``ROI_HVC`` and ``ROI_VC`` over the voxels
      (``feature_decoding_train.py`` l.53-59), ``image_index`` (l.51; 1-based index into the sorted
      feature stems, bdpy ``features.py`` l.255), ``stimulus_name`` (float label with a vmap to the
      stem; ``encoding/bhscore_caffe_AlexNet_allunits.yaml`` 'label key'), ``Run`` and ``DataType``;
      ``train_reps`` / ``test_reps`` presentations of each image;
    - ``data/features/ImageNetTraining/caffe/AlexNet/<layer>/<image>.mat`` and
      ``data/features/ImageNetTest/caffe/AlexNet/<layer>/<image>.mat`` (``feature_decoding_train.py``
      l.70, ``feature_decoding_predict.py`` l.57; README "features/" tree): ``feat`` of shape
      ``(1,) + unit shape``;
    - with ``feature_index``, ``data/features/ImageNetTraining/caffe/AlexNet/index_random1000.mat``
      (``feature_decoding_train.py`` l.75, ``featenc_fastl2lir_predict.py`` l.40): about 3/4 of each
      layer's units, bdpy's ``feature_index`` format;
    - with ``features_all``, both of BHscore's feature folders as published: ``data/features_all/...``
      with every unit (``data/download_features_all.sh``; read by the encoding scripts,
      ``encoding/bhscore_caffe_AlexNet_allunits.yaml`` 'training feature dir' / 'test feature dir') and
      ``data/features/...`` with a random 3/4 of each layer's units, flattened to ``(1, k)`` (the
      published ``features/`` hold 1000 random units per layer, read whole by
      ``feature_decoding_train.py`` l.106 ``Features(...)`` without an index). The subset is returned
      as ``"decoding_units"`` ({layer: indices into the flattened layer}).
    """
    if features_all and feature_index:
        raise ValueError("features_all: the features/ folder then holds the unit subset itself; "
                         "feature_index=True would subset it again")
    root = Path(root)
    subjects = list(BH_SUBJECTS if subjects is None else subjects)
    rng = np.random.default_rng(seed)
    data = root / "data"
    taken: set = set()
    names = {"train": _image_names(rng, n_train, taken), "test": _image_names(rng, n_test, taken)}
    n_lat = 6
    latents = {s: rng.standard_normal((len(names[s]), len(BH_ROIS), n_lat)) for s in names}
    # features: layer l reads the latents of ROI BH_LAYER_ROI[l] through its own mixing, plus unit noise
    mixing = {layer: rng.standard_normal((n_lat, int(np.prod(BH_SHAPES[layer])))) / np.sqrt(n_lat) for layer in BH_LAYERS}
    sub_rng = np.random.default_rng(seed + 1)  # its own draws: the rest of the miniature is the same either way
    subset = {layer: np.sort(sub_rng.choice(int(np.prod(BH_SHAPES[layer])), size=int(np.prod(BH_SHAPES[layer])) * 3 // 4,
                                            replace=False)) for layer in BH_LAYERS} if features_all else {}
    for split, part in (("train", "ImageNetTraining"), ("test", "ImageNetTest")):
        for li, layer in enumerate(BH_LAYERS):
            z = latents[split][:, BH_LAYER_ROI[li]]
            feats = z @ mixing[layer] + 0.3 * rng.standard_normal((z.shape[0], mixing[layer].shape[1]))
            for name, row in zip(names[split], feats):
                full = row.reshape((1, *BH_SHAPES[layer]))
                if features_all:
                    _save_feat(data / "features_all" / part / BH_DIR / layer / f"{name}.mat", full)
                    _save_feat(data / "features" / part / BH_DIR / layer / f"{name}.mat",
                               full.reshape(-1)[subset[layer]][None])
                else:
                    _save_feat(data / "features" / part / BH_DIR / layer / f"{name}.mat", full)
    if feature_index:
        import hdf5storage

        index = {layer: np.sort(rng.choice(int(np.prod(BH_SHAPES[layer])), size=int(np.prod(BH_SHAPES[layer])) * 3 // 4,
                                           replace=False)).astype(np.int64) for layer in BH_LAYERS}
        hdf5storage.savemat(str(data / "features" / "ImageNetTraining" / BH_DIR / "index_random1000.mat"),
                            {"index": index}, format="7.3", oned_as="row", store_python_metadata=True)
    sorted_names = {s: sorted(names[s]) for s in names}  # bdpy Features: labels sorted, index = position + 1
    n_vox = voxels_per_roi * len(BH_ROIS)
    for sub in subjects:
        loadings = [rng.standard_normal((n_lat, voxels_per_roi)) / np.sqrt(n_lat) for _ in BH_ROIS]
        for split, part, reps, datatype in (("train", "Training", train_reps, 1), ("test", "Test", test_reps, 2)):
            n_img = len(names[split])
            order = np.concatenate([rng.permutation(n_img) for _ in range(reps)])  # one run per repetition
            runs = np.repeat(np.arange(1, reps + 1), n_img)
            signal = np.hstack([latents[split][order, r] @ loadings[r] for r in range(len(BH_ROIS))])
            voxels = 2.0 + signal + noise * rng.standard_normal((order.size, n_vox))
            stems = [names[split][i] for i in order]
            image_index = np.array([sorted_names[split].index(s) + 1 for s in stems], dtype=np.float64)
            labels = np.array([_float_label(s) for s in stems])
            masks = {roi: np.repeat(np.arange(len(BH_ROIS)) == k, voxels_per_roi) for k, roi in enumerate(BH_ROIS)}
            masks["VC"] = np.ones(n_vox, dtype=bool)
            write_bdata(data / "fmri" / f"{sub}_perceptionNaturalImage{part}_VC_v2.h5",
                        [("VoxelData", voxels), ("Run", runs), ("DataType", np.full(order.size, datatype)),
                         ("stimulus_name", labels), ("image_index", image_index)],
                        masks, vmaps={"stimulus_name": {float(_float_label(s)): s for s in names[split]}})
    settings = {"subjects": subjects, "rois": list(BH_ROIS), "dnns": {"AlexNet": {"dir": BH_DIR, "layers": BH_LAYERS}}}
    (root / "settings.json").write_text(json.dumps(settings, indent=4) + "\n")
    return {"root": root, "settings": root / "settings.json", "data": data, "subjects": subjects,
            "images": names, "dir": BH_DIR, "layers": list(BH_LAYERS), "rois": list(BH_ROIS),
            "decoding_units": subset}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brainlike.demo.layouts",
                                description="Write a miniature copy of a published data layout, with planted signal.")
    p.add_argument("layout", choices=["bhscore"], help="bhscore: a KamitaniLab/BHscore checkout (settings.json, data/)")
    p.add_argument("dir", help="folder to write (created)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-index", action="store_true", help="also write index_random1000.mat (unit subsets)")
    p.add_argument("--features-all", action="store_true",
                   help="write features_all/ (every unit, read by encoding) and a unit subset in features/ (decoding)")
    args = p.parse_args(argv)
    info = bhscore_layout(args.dir, seed=args.seed, feature_index=args.feature_index, features_all=args.features_all)
    print(f"BHscore miniature: {info['settings']} and {info['data']} ({len(info['subjects'])} subjects, "
          f"{len(info['images']['train'])} training and {len(info['images']['test'])} test images, "
          f"{len(info['layers'])} layers of {info['dir']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
