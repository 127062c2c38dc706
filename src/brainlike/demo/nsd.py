"""A miniature of the Natural Scenes Dataset tree (Allen et al. 2022), with planted voxel receptive fields.

NSD needs a data-access agreement, so tests and tutorials use a folder in the published layout, with
the names and nesting of the NSD data manual and of St-Yves et al.'s ``nsd_gnet8x`` (``src/load_nsd.py``
reads the expdesign and the betas; its notebooks the stimuli and ROI files):

    nsddata/experiments/nsd/nsd_expdesign.mat                  masterordering (1 x 30000, 1-based columns of
                                                                subjectim), subjectim (8 x 10000, 1-based NSD ids),
                                                                sharedix (1 x 1000, the shared images)
    nsddata/ppdata/subjNN/func1pt8mm/roi/prf-visualrois.nii.gz 1..7 = V1v V1d V2v V2d V3v V3d hV4 (0/-1 other)
    nsddata/ppdata/subjNN/func1pt8mm/roi/nsdgeneral.nii.gz     1 inside the nsdgeneral mask
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5
                                                                'betas' int16 (trials, Z, Y, X), percent change x 300
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5               'imgBrick' uint8 (73000, 425, 425, 3)

The miniature keeps those names, dtypes and axis orders; only the sizes shrink (a small volume, one
session of a few hundred trials, a few hundred images of ``image_size`` pixels instead of 73,000 of 425;
the images are sparse scenes of small oriented patches, so that location matters).
Each voxel's beta is the contrast energy of the image inside a Gaussian receptive field (size by ROI)
plus trial noise, so an fwRF on any reasonable feature maps recovers the fields.

    python -m brainlike.demo.nsd FOLDER [--subjects 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from brainlike._zscore import zscore

__all__ = ["ROI_CODES", "write_nsd"]

ROI_CODES = {"V1": (1, 2), "V2": (3, 4), "V3": (5, 6), "hV4": (7,)}
RF_SIGMA = {"V1": 0.06, "V2": 0.09, "V3": 0.12, "hV4": 0.16}  # fraction of the image width
SHAPE = (8, 8, 6)  # X, Y, Z of the miniature volume


def _images(n: int, size: int, rng) -> np.ndarray:
    """Sparse scenes: a few small oriented textures (Gabor patches) at random places on grey, so that
    what drives a voxel depends on where its field is (uint8 RGB, grey content)."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    out = np.empty((n, size, size), dtype=np.float64)
    for i in range(n):
        img = np.zeros((size, size))
        for _ in range(rng.integers(2, 5)):
            cx, cy = rng.uniform(0.1, 0.9, size=2)
            width, theta, freq = rng.uniform(0.05, 0.12), rng.uniform(0, np.pi), rng.uniform(6, 16)
            env = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
            img += env * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
        out[i] = img
    gray = np.clip(0.5 + 0.45 * out / np.abs(out).max(), 0, 1)
    return np.repeat(np.round(gray * 255).astype(np.uint8)[..., None], 3, axis=3)


def _energy(gray: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    return (gray - uniform_filter(gray, size=(1, 7, 7))) ** 2


def write_nsd(folder, *, subjects=(1, 2), n_shared: int = 30, n_own: int = 90, shared_reps: int = 3,
              own_reps: int = 1, image_size: int = 96, noise: float = 0.5, seed: int = 0) -> dict:
    """Write the miniature tree under ``folder``; return the planted truth per subject
    (``{subject: {"rf": (n_vox, 3) (x, y, sigma) in image units, "roi": names, "ijk": voxel coords}}``)."""
    import h5py
    import nibabel as nib
    from scipy.io import savemat

    root = Path(folder)
    rng = np.random.default_rng(seed)
    n_subj_max = 8
    n_images = n_shared + n_own * len(subjects)
    imgs = _images(n_images, image_size, rng)
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True, exist_ok=True)
    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=imgs, chunks=(1, *imgs.shape[1:]))
    gray = imgs.astype(np.float64).mean(axis=3) / 255.0
    energy = _energy(gray)

    # expdesign: columns 1..n_shared of subjectim are the shared images (ids 1..n_shared, 1-based),
    # columns 1001.. the subject's own images; masterordering lists the columns trial by trial
    subjectim = np.zeros((n_subj_max, 10000), dtype=np.float64)
    shared = np.arange(1, n_shared + 1)
    subjectim[:, :n_shared] = shared
    order = np.concatenate([np.repeat(np.arange(1, n_shared + 1), shared_reps),
                            np.repeat(np.arange(1001, 1001 + n_own), own_reps)])
    order = rng.permutation(order)
    masterordering = np.ones(30000, dtype=np.float64)
    masterordering[:order.size] = order
    sharedix = np.zeros(1000, dtype=np.float64)
    sharedix[:n_shared] = shared
    sharedix[n_shared:] = 70000 + np.arange(1000 - n_shared)  # the rest of the shared-1000, never shown here
    for k, s in enumerate(subjects):
        subjectim[s - 1, 1000:1000 + n_own] = n_shared + k * n_own + np.arange(1, n_own + 1)
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True, exist_ok=True)
    savemat(exp / "nsd_expdesign.mat", {"masterordering": masterordering[None, :], "subjectim": subjectim,
                                        "sharedix": sharedix[None, :]})

    yy, xx = (np.mgrid[0:image_size, 0:image_size] + 0.5) / image_size
    truth = {}
    for s in subjects:
        sub = f"subj{s:02d}"
        vis = np.full(SHAPE, -1, dtype=np.int16)
        names, codes = [], []
        for i, (roi, cs) in enumerate(ROI_CODES.items()):
            for j, c in enumerate(cs):
                x0 = 2 * i
                vis[x0:x0 + 2, 4 * j:4 * j + 3, 1:4] = c  # a small block of voxels per ROI part
        mask = vis > 0
        ijk = np.argwhere(mask)
        for code in vis[mask]:
            roi = next(r for r, cs in ROI_CODES.items() if code in cs)
            names.append(roi)
            codes.append(code)
        n_vox = ijk.shape[0]
        rf = np.empty((n_vox, 3))
        drive = np.empty((n_images, n_vox))
        for v, roi in enumerate(names):
            cx, cy = rng.uniform(0.3, 0.7, size=2)
            sigma = RF_SIGMA[roi]
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
            d = np.sqrt(np.tensordot(energy, g / g.sum(), axes=([1, 2], [0, 1])))
            drive[:, v] = zscore(d[:, None], dtype=np.float64)[0][:, 0]
            rf[v] = (cx - 0.5, 0.5 - cy, sigma)  # fwRF units: x left->right, y bottom->top, image width 1
        trial_cols = order.astype(np.int64)
        image_of_trial = subjectim[s - 1, trial_cols - 1].astype(np.int64) - 1  # 0-based NSD ids
        betas = drive[image_of_trial] + noise * rng.standard_normal((trial_cols.size, n_vox))
        vol = np.zeros((trial_cols.size, *SHAPE[::-1]), dtype=np.int16)  # (trials, Z, Y, X)
        vol[:, ijk[:, 2], ijk[:, 1], ijk[:, 0]] = np.clip(np.round(betas * 300), -32768, 32767).astype(np.int16)
        bdir = root / "nsddata_betas" / "ppdata" / sub / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
        bdir.mkdir(parents=True, exist_ok=True)
        with h5py.File(bdir / "betas_session01.hdf5", "w") as f:
            f.create_dataset("betas", data=vol, chunks=(vol.shape[0], *SHAPE[::-1]))
        nc = np.zeros(SHAPE, dtype=np.float32)
        nc[mask] = 1.0 / noise  # signal sd 1 over noise sd: the ncsnr of a planted voxel
        nib.save(nib.Nifti1Image(nc, np.eye(4)), bdir / "ncsnr.nii.gz")
        roi_dir = root / "nsddata" / "ppdata" / sub / "func1pt8mm" / "roi"
        roi_dir.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vis, np.eye(4)), roi_dir / "prf-visualrois.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.int16), np.eye(4)), roi_dir / "nsdgeneral.nii.gz")
        truth[s] = {"rf": rf, "roi": names, "ijk": ijk}
    return truth


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brainlike.demo.nsd", description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--subjects", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    write_nsd(a.folder, subjects=tuple(a.subjects), seed=a.seed)
    print(f"NSD miniature written to {a.folder} (subjects {a.subjects})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
