"""A miniature of the Generic Object Decoding dataset (OpenNeuro ds001246) with planted signal.

:func:`write_horikawa_bids` writes, with nibabel, the folders and file names of the published
dataset (each name's source is given beside it below), small enough for tests and tutorials:

- raw runs and their events (OpenNeuro ds001246 1.2.1 file tree, as in its download URLs
  ``sub-01:ses-perceptionTraining01:func:...``)::

    sub-01/ses-perceptionTraining01/func/sub-01_ses-perceptionTraining01_task-perception_run-01_bold.nii.gz
    sub-01/ses-perceptionTraining01/func/sub-01_ses-perceptionTraining01_task-perception_run-01_events.tsv
    sub-01/ses-perceptionTest01/func/sub-01_ses-perceptionTest01_task-perception_run-01_bold.nii.gz

- the SPM-preprocessed runs (ds001246 1.2.1 ``derivatives:preproc-spm:output:sub-01:ses-perceptionTraining01:
  func:sub-01_ses-perceptionTraining01_task-perception_run-01_bold_preproc.nii.gz``)::

    derivatives/preproc-spm/output/sub-01/ses-*/func/*_bold_preproc.nii.gz

- ROI masks (ds001506 1.3.1 ``sourcedata:sub-01:anat:sub-01_mask_RH_HVC.nii.gz``; the ROI names
  V1, V2, V3, hV4, LOC, FFA, PPA, HVC of Horikawa & Kamitani 2017)::

    sourcedata/sub-01/anat/sub-01_mask_{LH,RH}_{V1,V2,V3,hV4,LOC,FFA,PPA,HVC}.nii.gz

- ``dataset_description.json`` (BIDS), and the DNN features of every image as a BHscore feature
  tree, one file per image and layer with the array ``feat`` (1 x n_units) (KamitaniLab/BHscore
  README, ``data/features/<image set>/<framework>/<network>/<layer>/<image>.mat``)::

    features/caffe/AlexNet/<layer>/<image id>.mat

``events.tsv`` has the columns onset, duration, trial_no, event_type, category_index,
stimulus_id, stimulus_name, response_time (``category_index``, ``stimulus_id`` and
``stimulus_name`` are the columns public scripts read from ds001246's events; the others
follow the project notes and are not verified against the dataset): one row per 9-s stimulus
block (``event_type`` 1), a one-back repetition block (2) and the initial rest (-1);
``stimulus_id`` is the ImageNet id as a float (``1518878.005958`` for ``n01518878_5958``, its
``stimulus_name``). TR is 3 s, runs start with 33 s of rest (Horikawa & Kamitani 2017).

The signal: each ROI's voxels are random mixtures of the units of one AlexNet layer, V1 ->
conv1 up to HVC -> fc8, plus noise. The preprocessed runs hold that signal aligned to the
masks; the raw runs are the same volumes moved by "head motion" (a shift of a few voxels that
changes from run to run and volume to volume) with a scanner baseline: test repetitions do not
line up in them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["write_horikawa_bids", "write_decodeddnn", "ALEXNET_LAYERS", "ROI_LAYER"]

ALEXNET_LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
# the layer each ROI's voxels read out (planted hierarchy)
ROI_LAYER = {"V1": "conv1", "V2": "conv2", "V3": "conv3", "hV4": "conv4", "LOC": "conv5", "FFA": "fc6",
             "PPA": "fc7", "HVC": "fc8"}
_ROI_Y = {"V1": (0, 2), "V2": (2, 4), "V3": (4, 6), "hV4": (6, 7), "LOC": (7, 8), "FFA": (8, 9), "PPA": (9, 10),
          "HVC": (10, 12)}
SHAPE = (8, 12, 6)  # x (LH: x < 4), y (ROIs), z (z = 0 and 5 outside every ROI)
TR = 3.0
REST_S = 33.0
BLOCK_S = 9.0


def _image_ids(n: int, offset: int) -> list[str]:
    from brainlike.datasets.bdata import float_label_to_id

    return [float_label_to_id(float(f"{1440000 + 3571 * (k + offset)}.{10 + 7 * (k + offset):06d}"))
            for k in range(n)]


def _nifti(path: Path, data: np.ndarray, tr: float | None = None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data.astype(np.float32 if data.ndim == 4 else np.int16), np.diag([3.0, 3.0, 3.0, 1.0]))
    if tr is not None:
        img.header.set_zooms((3.0, 3.0, 3.0, tr))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _masks() -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for hemi, xs in (("LH", slice(0, SHAPE[0] // 2)), ("RH", slice(SHAPE[0] // 2, SHAPE[0]))):
        for roi, (y0, y1) in _ROI_Y.items():
            m = np.zeros(SHAPE, dtype=bool)
            m[xs, y0:y1, 1:SHAPE[2] - 1] = True
            out[(hemi, roi)] = m
    return out


def write_horikawa_bids(root, *, subjects=("sub-01",), n_train: int = 80, n_test: int = 10, test_repeats: int = 4,
                        blocks_per_run: int = 20, n_units: int = 24, noise: float = 0.7, seed: int = 0,
                        features: bool = True) -> dict:
    """Write the miniature ds001246 under ``root`` (see the module docstring); return what was planted.

    ``n_train`` training images shown once, ``n_test`` test images shown ``test_repeats`` times,
    ``blocks_per_run`` stimulus blocks per run, ``n_units`` units per AlexNet layer, ``noise``
    the per-volume noise SD relative to a signal SD of 1. Returns {"train_ids", "test_ids",
    "features": {layer: (n_images, n_units)}, "ids", "files": [written paths]}.
    """
    if n_train % blocks_per_run or (n_test * test_repeats) % blocks_per_run:
        raise ValueError(f"n_train ({n_train}) and n_test * test_repeats ({n_test * test_repeats}) must be "
                         f"multiples of blocks_per_run ({blocks_per_run})")
    root = Path(root)
    rng = np.random.default_rng(seed)
    train_ids, test_ids = _image_ids(n_train, 0), _image_ids(n_test, n_train)
    ids = train_ids + test_ids
    feats = {layer: rng.standard_normal((len(ids), n_units)) for layer in ALEXNET_LAYERS}
    files = []
    (root).mkdir(parents=True, exist_ok=True)
    desc = {"Name": "Generic Object Decoding (miniature with planted signal)", "BIDSVersion": "1.0.2"}
    (root / "dataset_description.json").write_text(json.dumps(desc, indent=2))
    masks = _masks()
    for s_i, sub in enumerate(subjects):
        anat = root / "sourcedata" / sub / "anat"
        for (hemi, roi), m in masks.items():
            p = anat / f"{sub}_mask_{hemi}_{roi}.nii.gz"
            _nifti(p, m)
            files.append(p)
        # voxel weights: each voxel mixes the units of its ROI's layer
        weights = np.zeros(SHAPE + (n_units,))
        layer_of = np.full(SHAPE, "", dtype=object)
        for (hemi, roi), m in masks.items():
            weights[m] = rng.standard_normal((int(m.sum()), n_units)) / np.sqrt(n_units)
            layer_of[m] = ROI_LAYER[roi]
        patterns = np.zeros((len(ids),) + SHAPE)
        for layer in ALEXNET_LAYERS:
            sel = layer_of == layer
            patterns[:, sel] = feats[layer] @ weights[sel].T
        order_train = list(rng.permutation(train_ids))
        order_test = [i for _ in range(test_repeats) for i in rng.permutation(test_ids)]
        for ses, order in (("perceptionTraining01", order_train), ("perceptionTest01", order_test)):
            for r in range(len(order) // blocks_per_run):
                blocks = order[r * blocks_per_run:(r + 1) * blocks_per_run]
                files += _write_run(root, sub, ses, r + 1, blocks, patterns, ids, noise, rng)
    if features:
        for layer in ALEXNET_LAYERS:
            from scipy.io import savemat

            folder = root / "features" / "caffe" / "AlexNet" / layer
            folder.mkdir(parents=True, exist_ok=True)
            for i, f in zip(ids, feats[layer]):
                savemat(folder / f"{i}.mat", {"feat": f[None, :].astype(np.float32)})
    return {"train_ids": train_ids, "test_ids": test_ids, "ids": ids, "features": feats, "files": files}


def _write_run(root, sub, ses, run, blocks, patterns, ids, noise, rng) -> list[Path]:
    import pandas as pd

    from brainlike.datasets.bdata import id_to_float_label
    from brainlike.ids import align

    base = f"{sub}_ses-{ses}_task-perception_run-{run:02d}"
    # one one-back repetition block after the 3rd stimulus block (event_type 2, not a sample)
    seq = blocks[:3] + [blocks[2]] + blocks[3:]
    n_vol = int((REST_S + BLOCK_S * len(seq) + 6.0) / TR)
    t = np.arange(n_vol) * TR
    signal = np.zeros(SHAPE + (n_vol,))
    rows = [{"onset": 0.0, "duration": REST_S, "trial_no": 0, "event_type": -1, "category_index": np.nan,
             "stimulus_id": np.nan, "stimulus_name": "n/a", "response_time": np.nan}]
    pattern_rows = align(ids, seq, source="the demo's images", wanted="the run's blocks")
    for k, img in enumerate(seq):
        onset = REST_S + BLOCK_S * k
        vols = (t >= onset + 3.0) & (t < onset + BLOCK_S + 3.0)  # 3-s delay
        signal[..., vols] += patterns[pattern_rows[k]][..., None]
        rows.append({"onset": onset, "duration": BLOCK_S, "trial_no": k + 1, "event_type": 2 if k == 3 else 1,
                     "category_index": float(pattern_rows[k] + 1), "stimulus_id": id_to_float_label(img),
                     "stimulus_name": img,
                     "response_time": 1.2 if k == 3 else np.nan})
    drift = np.linspace(0, 2.0, n_vol)  # slow scanner drift (removed by detrending)
    pre = signal + noise * rng.standard_normal(signal.shape) + drift + 100.0
    # raw: the same volumes moved by head motion (run offset + per-volume jitter in x and y), baseline
    raw = np.empty_like(pre)
    offset = rng.integers(1, 4, size=2)
    for v in range(n_vol):
        shift = offset + rng.integers(-3, 4, size=2)
        raw[..., v] = np.roll(pre[..., v], tuple(int(k) for k in shift), axis=(0, 1))
    raw = raw * 8.0 + 600.0
    func = root / sub / f"ses-{ses}" / "func"
    deriv = root / "derivatives" / "preproc-spm" / "output" / sub / f"ses-{ses}" / "func"
    paths = [func / f"{base}_bold.nii.gz", func / f"{base}_events.tsv", deriv / f"{base}_bold_preproc.nii.gz"]
    _nifti(paths[0], raw, TR)
    pd.DataFrame(rows).to_csv(paths[1], sep="\t", index=False, na_rep="n/a", float_format="%.6f")
    _nifti(paths[2], pre, TR)
    return paths


def main(argv=None) -> int:
    """``python -m brainlike.demo.horikawa ROOT [--subjects sub-01 sub-02] [--decodeddnn DIR] [--seed 0]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m brainlike.demo.horikawa",
                                description="Write a miniature OpenNeuro ds001246 (raw runs, preproc-spm "
                                "derivatives, masks, events) with planted signal, and AlexNet-layer features; "
                                "optionally a miniature of the published decodedDNN zips.")
    p.add_argument("root", help="folder to create (e.g. ds001246)")
    p.add_argument("--subjects", nargs="+", default=["sub-01"], help="subject folders (default: sub-01)")
    p.add_argument("--decodeddnn", default=None, metavar="DIR",
                   help="also write the published decodability zips (AlexNet and VGG19) in miniature to DIR")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for folder in (args.root, args.decodeddnn):
        if folder is not None and Path(folder).exists() and any(Path(folder).iterdir()):
            p.error(f"{folder} must be a new or empty folder; it has files")
    info = write_horikawa_bids(args.root, subjects=tuple(args.subjects), seed=args.seed)
    print(f"{args.root}: {len(args.subjects)} subject(s), {len(info['train_ids'])} training and "
          f"{len(info['test_ids'])} test images, features in {Path(args.root) / 'features/caffe/AlexNet'}")
    if args.decodeddnn:
        planted = write_decodeddnn(args.decodeddnn, seed=args.seed)
        print(f"{args.decodeddnn}: decodedDNN zips of {len(planted)} layers (AlexNet, VGG19)")
    return 0



# --- the published decodability files (Horikawa et al. 2019, figshare) ---------------------------
# layers and test images of KamitaniLab/brain-decoding-datasets bdds/decodeddnn.py 1.0.1 (__nets,
# first of its 50 __images)
DECODEDDNN_LAYERS = {
    "AlexNet": ALEXNET_LAYERS,
    "VGG19": ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv4_1",
              "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4", "fc6", "fc7", "fc8"],
}
DECODEDDNN_IMAGES = ["n01443537_22563", "n01621127_19020", "n01677366_18182", "n01846331_17038", "n01858441_11077",
                     "n01943899_24131", "n01976957_13223", "n02071294_46212", "n02128385_20264", "n02139199_10398"]


def write_decodeddnn(root, *, nets=("AlexNet", "VGG19"), n_units: int = 8, n_images: int = 10, seed: int = 0,
                     zips: bool = True) -> dict:
    """Write a miniature of the published decodability files under ``root``.

    The figshare zips ``decodedDNN-<mode>-<net>-<layer>.zip`` (each holding
    ``decodedDNN/<mode>/<net>/<layer>/...`` with the names of :mod:`brainlike.datasets.decodeddnn`),
    or the unzipped tree with ``zips=False``. Subjects S1..S5 decode each unit with a planted
    quality shared across subjects; accuracies are the Pearson r of the decoded and true features,
    ranks their order (1 = best), ``Averaged`` the subjects' mean. Returns {(net, layer): unit
    quality}.
    """
    import io
    import zipfile

    from scipy.io import savemat

    from brainlike.datasets.decodeddnn import AVERAGED, feature_path, unit_values_path
    from brainlike.scores.decodability import rank_units, unit_accuracy

    if not 3 <= n_images <= len(DECODEDDNN_IMAGES):
        raise ValueError(f"n_images must be in 3..{len(DECODEDDNN_IMAGES)}; got {n_images}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = DECODEDDNN_IMAGES[:n_images]
    subjects = ["S1", "S2", "S3", "S4", "S5"]
    planted = {}
    for net in nets:
        for layer in DECODEDDNN_LAYERS[net]:
            quality = rng.uniform(0.0, 1.0, n_units)  # signal weight of each unit, shared by the subjects
            true = rng.standard_normal((n_images, n_units)).astype(np.float32)
            files: dict[str, dict[str, np.ndarray]] = {m: {} for m in ("accuracy", "rank", "decoded", "true")}
            accs = []
            for s in subjects:
                dec = (quality * true + rng.standard_normal(true.shape)).astype(np.float32)
                acc = unit_accuracy(true, dec)
                accs.append(acc)
                files["accuracy"][unit_values_path("accuracy", net, layer, s)] = acc
                files["rank"][unit_values_path("rank", net, layer, s)] = rank_units(acc).astype(np.float64)
                for i, img in enumerate(images):
                    files["decoded"][feature_path(net, layer, img, s)] = dec[i]
            avg = np.mean(accs, axis=0)
            files["accuracy"][unit_values_path("accuracy", net, layer, AVERAGED)] = avg
            files["rank"][unit_values_path("rank", net, layer, AVERAGED)] = rank_units(avg).astype(np.float64)
            for i, img in enumerate(images):
                files["true"][feature_path(net, layer, img)] = true[i]
            for mode, members in files.items():
                key = "feat" if mode in ("decoded", "true") else mode
                if zips:
                    with zipfile.ZipFile(root / f"decodedDNN-{mode}-{net}-{layer}.zip", "w") as z:
                        for rel, v in members.items():
                            buf = io.BytesIO()
                            savemat(buf, {key: np.asarray(v)[None, :]})
                            z.writestr(f"decodedDNN/{rel}", buf.getvalue())
                else:
                    for rel, v in members.items():
                        (root / rel).parent.mkdir(parents=True, exist_ok=True)
                        savemat(root / rel, {key: np.asarray(v)[None, :]})
            planted[(net, layer)] = quality
    return planted


if __name__ == "__main__":
    raise SystemExit(main())
