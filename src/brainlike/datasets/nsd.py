"""Natural Scenes Dataset (Allen et al. 2022): single-trial betas read lazily per session and ROI.

Expected layout under ``root`` (as on the NSD AWS bucket)::

    nsddata/experiments/nsd/nsd_expdesign.mat                       masterordering, subjectim, sharedix (1-based)
    nsddata/ppdata/subjXX/<space>/roi/prf-visualrois.nii.gz          1..7 = V1v V1d V2v V2d V3v V3d hV4
    nsddata/ppdata/subjXX/<space>/roi/nsdgeneral.nii.gz              1 = nsdgeneral
    nsddata_betas/ppdata/subjXX/<space>/betas_fithrf_GLMdenoise_RR/betas_sessionNN.hdf5 | .nii.gz
    nsddata_betas/ppdata/subjXX/<space>/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz

Betas are int16 scaled by 300 (divided here). In the HDF5 files ``betas`` is (750, Z, Y, X)
(MATLAB order reversed); NIfTI volumes are (X, Y, Z, 750). Only the bounding box of the ROI is
read from each session file. Stimulus ids are the 0-based NSD ids ("0".."72999", the ids of
``ImageSet.from_hdf5(nsd_stimuli.hdf5, "imgBrick")``); trials on the shared-1000 images form
the "test" split (the validation set of St-Yves et al. 2022), the others "train".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._braindata import BrainData
from .bdata import open_hdf5

__all__ = ["load_nsd", "nsd_trial_images", "NSD_VISUAL_ROIS", "TRIALS_PER_SESSION"]

TRIALS_PER_SESSION = 750
NSD_VISUAL_ROIS = {
    "V1v": [1], "V1d": [2], "V2v": [3], "V2d": [4], "V3v": [5], "V3d": [6], "hV4": [7],
    "V1": [1, 2], "V2": [3, 4], "V3": [5, 6], "V4": [7],
}


def _open_h5(path):
    """Open a betas file (a hook so that tests can count what is read)."""
    return open_hdf5(path)


def nsd_trial_images(expdesign, subject: int) -> tuple[np.ndarray, np.ndarray]:
    """(0-based NSD image id per trial, 0-based shared-1000 ids) for ``subject`` (1..8)."""
    from scipy.io import loadmat

    m = loadmat(expdesign) if not isinstance(expdesign, dict) else expdesign
    order = np.asarray(m["masterordering"]).ravel().astype(np.int64)  # 1-based into subjectim columns
    subjectim = np.asarray(m["subjectim"]).astype(np.int64)  # (8, 10000), 1-based NSD ids
    shared = np.asarray(m["sharedix"]).ravel().astype(np.int64) - 1
    if not 1 <= subject <= subjectim.shape[0]:
        raise ValueError(f"subject must be in 1..{subjectim.shape[0]}; got {subject}")
    return subjectim[subject - 1, order - 1] - 1, shared


def _roi_volumes(roi_dir: Path, names) -> dict[str, np.ndarray]:
    import nibabel as nib

    out = {}
    files = {}
    for nm in names:
        if nm in NSD_VISUAL_ROIS:
            f, codes = roi_dir / "prf-visualrois.nii.gz", NSD_VISUAL_ROIS[nm]
        elif nm == "nsdgeneral":
            f, codes = roi_dir / "nsdgeneral.nii.gz", [1]
        else:
            raise ValueError(f"roi must be among {list(NSD_VISUAL_ROIS) + ['nsdgeneral']}; got {nm!r}")
        if f not in files:
            if not f.is_file():
                raise FileNotFoundError(f"ROI file {f} not found")
            files[f] = np.asarray(nib.load(f).dataobj)
        out[nm] = np.isin(files[f], codes)
    return out


def load_nsd(
    root,
    subject: int = 1,
    sessions=(1,),
    roi="V1",
    *,
    space: str = "func1pt8mm",
    betas_format: str = "hdf5",
    ncsnr: bool = True,
    stimuli: bool = False,
    nan: str = "warn",
    dtype=np.float32,
) -> BrainData:
    """Single-trial betas of ``subject`` for ``sessions`` (1-based) in the voxels of ``roi``."""
    import nibabel as nib

    root = Path(root)
    s = int(subject)
    sub = f"subj{s:02d}"
    names = [roi] if isinstance(roi, str) else list(roi)
    if not names:
        raise ValueError("roi must name at least one ROI")
    if betas_format not in ("hdf5", "nifti"):
        raise ValueError(f"betas_format must be 'hdf5' or 'nifti'; got {betas_format!r}")
    roi_dir = root / "nsddata" / "ppdata" / sub / space / "roi"
    masks = _roi_volumes(roi_dir, names)
    union = np.logical_or.reduce(list(masks.values()))
    if not union.any():
        raise ValueError(f"roi {names} selects no voxel for {sub} in {space}")
    coords = np.argwhere(union)  # (n_vox, 3) x, y, z in C order of the volume
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    rel = coords - lo
    beta_dir = root / "nsddata_betas" / "ppdata" / sub / space / "betas_fithrf_GLMdenoise_RR"
    images, shared = nsd_trial_images(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat", s)
    blocks, trial_idx, sess_of = [], [], []
    files = {}
    for k in sessions:
        k = int(k)
        if betas_format == "hdf5":
            f = beta_dir / f"betas_session{k:02d}.hdf5"
            with _open_h5(f) as h:
                ds = h["betas"]
                if ds.ndim != 4 or tuple(ds.shape[1:]) != tuple(union.shape[::-1]):
                    raise ValueError(
                        f"mask shape {union.shape} (X, Y, Z) does not match the betas of {f}: "
                        f"{tuple(ds.shape)} (trials, Z, Y, X) expected (n, {', '.join(map(str, union.shape[::-1]))})"
                    )
                box = ds[:, lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]]
                vals = box[:, rel[:, 2], rel[:, 1], rel[:, 0]]
        else:
            f = beta_dir / f"betas_session{k:02d}.nii.gz"
            if not f.is_file():
                raise FileNotFoundError(f"betas file {f} not found")
            img = nib.load(f)
            if img.ndim != 4 or tuple(img.shape[:3]) != union.shape:
                raise ValueError(
                    f"mask shape {union.shape} does not match the betas of {f}: {img.shape} (X, Y, Z, trials)"
                )
            box = np.asarray(img.dataobj[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2], :])
            vals = box[rel[:, 0], rel[:, 1], rel[:, 2], :].T
        n = vals.shape[0]
        start = (k - 1) * TRIALS_PER_SESSION
        if start + n > images.size:
            raise ValueError(f"session {k} has {n} trials, beyond the {images.size} trials of nsd_expdesign")
        blocks.append(vals.astype(dtype) / np.dtype(dtype).type(300))
        trial_idx.append(np.arange(start, start + n))
        sess_of.append(np.full(n, k))
        files[f.name] = str(f)
    trials = np.concatenate(trial_idx)
    ids = images[trials]
    voxel_info = {"ijk": coords.astype(np.int64)}
    nc_file = beta_dir / "ncsnr.nii.gz"
    if ncsnr and nc_file.is_file():
        nc = nib.load(nc_file)
        if tuple(nc.shape[:3]) != union.shape:
            raise ValueError(f"mask shape {union.shape} does not match ncsnr {nc_file}: {nc.shape}")
        voxel_info["ncsnr"] = np.asarray(nc.dataobj)[tuple(coords.T)].astype(np.float32)
    stim = None
    if stimuli:
        from brainlike.stimuli import ImageSet

        stim_file = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
        stim = ImageSet.from_hdf5(stim_file, "imgBrick", name="nsd_stimuli").subset(
            [str(i) for i in dict.fromkeys(ids.tolist())]
        )
    return BrainData(
        np.concatenate(blocks, axis=0),
        ids.astype(str),
        rois={nm: m[tuple(coords.T)] for nm, m in masks.items()},
        split=np.where(np.isin(ids, shared), "test", "train"),
        subject=sub,
        provenance={"dataset": "nsd", "files": files,
                    "options": {"subject": s, "sessions": [int(k) for k in sessions], "roi": names, "space": space}},
        stimuli=stim,
        nan=nan,
        dtype=dtype,
        voxel_info=voxel_info,
        sample_info={"trial": trials, "session": np.concatenate(sess_of)},
    )


def nsd_meta(root, subject: int = 1, sessions=(1,), roi="V1", *, space: str = "func1pt8mm",
             betas_format: str = "hdf5", ncsnr: bool = True, **_):
    """:func:`load_nsd` without the betas: a ``BrainMeta`` from ``nsd_expdesign.mat``, the ROI
    volumes, and the betas and ncsnr files' shapes (HDF5 dataset shape / NIfTI header)."""
    import nibabel as nib

    from .metadata import BrainMeta

    root = Path(root)
    s = int(subject)
    sub = f"subj{s:02d}"
    names = [roi] if isinstance(roi, str) else list(roi)
    if not names:
        raise ValueError("roi must name at least one ROI")
    if betas_format not in ("hdf5", "nifti"):
        raise ValueError(f"betas_format must be 'hdf5' or 'nifti'; got {betas_format!r}")
    masks = _roi_volumes(root / "nsddata" / "ppdata" / sub / space / "roi", names)
    union = np.logical_or.reduce(list(masks.values()))
    if not union.any():
        raise ValueError(f"roi {names} selects no voxel for {sub} in {space}")
    coords = np.argwhere(union)
    beta_dir = root / "nsddata_betas" / "ppdata" / sub / space / "betas_fithrf_GLMdenoise_RR"
    images, shared = nsd_trial_images(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat", s)
    trial_idx = []
    for k in sessions:
        k = int(k)
        if betas_format == "hdf5":
            f = beta_dir / f"betas_session{k:02d}.hdf5"
            with _open_h5(f) as h:
                shape = tuple(h["betas"].shape)
            if len(shape) != 4 or shape[1:] != tuple(union.shape[::-1]):
                raise ValueError(
                    f"mask shape {union.shape} (X, Y, Z) does not match the betas of {f}: "
                    f"{shape} (trials, Z, Y, X) expected (n, {', '.join(map(str, union.shape[::-1]))})")
            n = shape[0]
        else:
            f = beta_dir / f"betas_session{k:02d}.nii.gz"
            if not f.is_file():
                raise FileNotFoundError(f"betas file {f} not found")
            img = nib.load(f)
            if img.ndim != 4 or tuple(img.shape[:3]) != union.shape:
                raise ValueError(
                    f"mask shape {union.shape} does not match the betas of {f}: {img.shape} (X, Y, Z, trials)")
            n = img.shape[3]
        start = (k - 1) * TRIALS_PER_SESSION
        if start + n > images.size:
            raise ValueError(f"session {k} has {n} trials, beyond the {images.size} trials of nsd_expdesign")
        trial_idx.append(np.arange(start, start + n))
    nc_file = beta_dir / "ncsnr.nii.gz"
    if ncsnr and nc_file.is_file() and tuple(nib.load(nc_file).shape[:3]) != union.shape:
        raise ValueError(f"mask shape {union.shape} does not match ncsnr {nc_file}: {nib.load(nc_file).shape}")
    ids = images[np.concatenate(trial_idx)]
    return BrainMeta(ids.astype(str), {nm: m[tuple(coords.T)] for nm, m in masks.items()},
                     split=np.where(np.isin(ids, shared), "test", "train"), subject=sub,
                     n_voxels=int(coords.shape[0]), source=str(root))
