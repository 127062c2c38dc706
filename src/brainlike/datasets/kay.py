"""Kay et al. 2008 vim-1: CRCNS ``EstimatedResponses.mat`` / ``Stimuli.mat`` and ``kay_images.npz``.

``EstimatedResponses.mat`` is MATLAB v7.3 (HDF5): ``dataTrnS1`` (voxels x 1750 in MATLAB, so
(1750, n_voxels) through h5py), ``dataValS1`` (120 test images), ``roiS1`` (ROI code per voxel:
1..7 = V1, V2, V3, V3A, V3B, V4, LatOcc; 0 = other), ``voxIdxS1`` (voxel index in the volume),
and the same for S2. Training stimulus ids are ``"0"``..``"1749"`` (the ids of the
``kay2008_vim1_stimuli`` image set), test ids ``"test0"``..``"test119"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._braindata import BrainData
from ._fetch import file_sha256
from .bdata import open_hdf5

__all__ = ["KAY_ROIS", "load_kay_vim1", "load_kay_stimuli_mat", "load_kay_npz"]

KAY_ROIS = ("V1", "V2", "V3", "V3A", "V3B", "V4", "LatOcc")


def _ids(n_train: int, n_test: int) -> np.ndarray:
    return np.array([str(i) for i in range(n_train)] + [f"test{i}" for i in range(n_test)])


def _roi_masks(codes: np.ndarray, names=KAY_ROIS) -> dict[str, np.ndarray]:
    return {nm: codes == (k + 1) for k, nm in enumerate(names)}


def _select_codes(roi, names=KAY_ROIS) -> list[int] | None:
    if roi is None:
        return None
    sel = [roi] if isinstance(roi, str) else list(roi)
    for nm in sel:
        if nm not in names:
            raise ValueError(f"roi must be among {list(names)}; got {nm!r}")
    return [list(names).index(nm) + 1 for nm in sel]


def load_kay_vim1(path, subject=1, roi=None, *, stimuli=None, nan: str = "warn", dtype=np.float32) -> BrainData:
    """Estimated responses of one subject (1 or 2); only the ROI's voxel columns are read.

    ``stimuli``: the images shown, attached as ``.stimuli`` so that features can be computed: a path
    to CRCNS ``Stimuli.mat`` (read by :func:`load_kay_stimuli_mat`) or an ImageSet with the ids below.
    """
    p = Path(path)
    s = int(subject)
    if s not in (1, 2):
        raise ValueError(f"subject must be 1 or 2; got {subject!r}")
    with open_hdf5(p) as f:
        need = [f"dataTrnS{s}", f"dataValS{s}", f"roiS{s}"]
        missing = [k for k in need if k not in f]
        if missing:
            raise ValueError(f"{p} lacks {missing}; found {sorted(f)}")
        codes = np.asarray(f[f"roiS{s}"][()]).ravel().astype(int)
        n_vox = codes.size
        trn, val = f[f"dataTrnS{s}"], f[f"dataValS{s}"]

        def oriented(ds):  # voxels on the second axis
            if ds.ndim != 2 or n_vox not in ds.shape:
                raise ValueError(f"{ds.name} must be 2-D with one axis of {n_vox} voxels; got {ds.shape}")
            return ds.shape[1] == n_vox

        wanted = _select_codes(roi)
        vox = np.arange(n_vox) if wanted is None else np.flatnonzero(np.isin(codes, wanted))
        if vox.size == 0:
            raise ValueError(f"roi {roi!r} selects no voxel in {p}")
        lo, hi = int(vox[0]), int(vox[-1]) + 1

        def read(ds):
            if oriented(ds):
                blk = ds[:, lo:hi]
                return blk[:, vox - lo]
            blk = ds[lo:hi, :]
            return blk[vox - lo, :].T

        x_trn, x_val = read(trn), read(val)
        vox_idx = f[f"voxIdxS{s}"][()].ravel()[vox] if f"voxIdxS{s}" in f else None
    responses = np.concatenate([x_trn, x_val], axis=0)
    n_trn, n_val = x_trn.shape[0], x_val.shape[0]
    files = {p.name: {"path": str(p), "sha256": file_sha256(p)}}
    if stimuli is not None and not hasattr(stimuli, "subset"):
        sp = Path(stimuli)
        files[sp.name] = {"path": str(sp), "sha256": file_sha256(sp)}
        stimuli = load_kay_stimuli_mat(sp)
    if stimuli is not None and (len(stimuli) != n_trn + n_val):
        raise ValueError(f"stimuli: {len(stimuli)} images, but {p.name} has {n_trn} training + {n_val} validation "
                         "responses; give the Stimuli.mat of the same release")
    return BrainData(
        responses,
        _ids(n_trn, n_val),
        rois=_roi_masks(codes[vox]),
        split=np.array(["train"] * n_trn + ["test"] * n_val),
        subject=f"S{s}",
        provenance={"dataset": "kay2008_vim1", "files": files, "options": {"subject": s, "roi": roi}},
        stimuli=stimuli,
        voxel_info={} if vox_idx is None else {"vox_idx": np.asarray(vox_idx).astype(np.int64)},
        nan=nan,
        dtype=dtype,
    )


def _to_uint8(stack: np.ndarray) -> np.ndarray:
    stack = np.asarray(stack, dtype=np.float64)
    lo, hi = np.nanmin(stack), np.nanmax(stack)
    if hi <= lo:
        return np.zeros(stack.shape, dtype=np.uint8)
    return np.clip(np.round((stack - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def load_kay_stimuli_mat(path):
    """``Stimuli.mat`` (``stimTrn`` 1750x128x128, ``stimVal`` 120x128x128) as one ImageSet.

    Pixel values are rescaled jointly to 0..255 (the file stores floats); ids as in
    ``load_kay_vim1``.
    """
    from brainlike.stimuli import ImageSet

    p = Path(path)
    try:
        with open_hdf5(p) as f:  # v7.3: MATLAB (N,128,128) reads as (128,128,N)
            trn, val = (np.transpose(f[k][()], (2, 1, 0)) for k in ("stimTrn", "stimVal"))
    except ValueError:
        from scipy.io import loadmat

        m = loadmat(p)
        trn, val = m["stimTrn"], m["stimVal"]
    imgs = _to_uint8(np.concatenate([trn, val]))
    return ImageSet.from_array(imgs, ids=list(_ids(len(trn), len(val))), name="kay2008_vim1")


def load_kay_npz(path, roi=None, *, stimuli: bool = True, nan: str = "warn", dtype=np.float32) -> BrainData:
    """The Neuromatch ``kay_images.npz``: stimuli, stimuli_test, responses, responses_test, roi, roi_names."""
    from brainlike.stimuli import ImageSet

    p = Path(path)
    with np.load(p, allow_pickle=False) as z:
        need = ("responses", "responses_test", "roi", "roi_names")
        missing = [k for k in need if k not in z]
        if missing:
            raise ValueError(f"{p} lacks {missing}; found {sorted(z.files)}")
        codes = np.asarray(z["roi"]).astype(int)
        names = [str(x) for x in z["roi_names"]]
        rois = {nm: codes == k for k, nm in enumerate(names) if nm.lower() not in ("other", "")}
        x_trn, x_val = z["responses"], z["responses_test"]
        if x_trn.shape[1] != codes.size or x_val.shape[1] != codes.size:
            raise ValueError(
                f"responses {x_trn.shape} / responses_test {x_val.shape} must have {codes.size} voxel columns (len(roi))"
            )
        images = None
        if stimuli and "stimuli" in z:
            imgs = _to_uint8(np.concatenate([z["stimuli"], z["stimuli_test"]]))
            images = ImageSet.from_array(imgs, ids=list(_ids(len(x_trn), len(x_val))), name="kay_images")
        data = BrainData(
            np.concatenate([x_trn, x_val]),
            _ids(len(x_trn), len(x_val)),
            rois=rois,
            split=np.array(["train"] * len(x_trn) + ["test"] * len(x_val)),
            subject="S1",
            provenance={"dataset": "kay2008_vim1_npz", "files": {p.name: {"path": str(p), "sha256": file_sha256(p)}}},
            stimuli=images,
            nan=nan,
            dtype=dtype,
        )
    return data.select_roi(roi) if roi is not None else data
