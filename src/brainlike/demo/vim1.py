"""A miniature of the CRCNS vim-1 download (Kay et al. 2008), with planted voxel receptive fields.

vim-1 needs a CRCNS account, so tests and tutorials use a folder in the exact published format:

- ``EstimatedResponses.mat``: MATLAB v7.3 (HDF5), read with h5py/pytables as ``/dataTrnS1``
  (1750 images x voxels), ``/dataValS1`` (120 x voxels), ``/roiS1`` (one code per voxel: 1..7 =
  V1, V2, V3, V3A, V3B, V4, LatOcc; 0 = other), ``/voxIdxS1``, and the same for S2 (CRCNS
  ``crcns-vim-1-readme.pdf``; read this way by the ebrain vim-1 demo, ``tables.open_file(
  'EstimatedResponses.mat').get_node('/dataTrnS1')[:]`` then ``data_train[:, V1idx]``, and by
  lp3wv/crcns-vim1-lp3wv ``data/README.md``).
- ``Stimuli.mat``: a MATLAB v5 file (the same demo reads it with ``scipy.io.loadmat``) holding
  ``stimTrn`` (1750 x 128 x 128) and ``stimVal`` (120 x 128 x 128) grayscale images.

Here the counts are small (``n_train``, ``n_val``) and the images procedural. Each voxel responds
to the contrast energy inside a Gaussian receptive field (V1 small, V4 larger) plus noise, so a
model of local image structure predicts it and one of shuffled images does not.

    python -m brainlike.demo.vim1 FOLDER [--n-train 120 --n-val 30]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from brainlike._zscore import zscore

__all__ = ["write_vim1"]

ROI_CODES = {"V1": 1, "V2": 2, "V3": 3, "V4": 6}
RF_SIGMA = {"V1": 6.0, "V2": 9.0, "V3": 12.0, "V4": 18.0}


def _images(n: int, seed: int) -> np.ndarray:
    from brainlike.demo.images import generate_images

    imgs, _ = generate_images(n, size=128, seed=seed)
    gray = imgs.astype(np.float64).mean(axis=3) / 255.0
    return gray - 0.5  # floats around 0, as a MATLAB image array would hold them


def _energy(gray: np.ndarray) -> np.ndarray:
    """Local contrast energy: squared deviation from a 9-pixel box mean."""
    from scipy.ndimage import uniform_filter

    local = uniform_filter(gray, size=(1, 9, 9))
    return (gray - local) ** 2


def write_vim1(folder, *, n_train: int = 120, n_val: int = 30, n_voxels: int = 48, noise: float = 0.3,
               seed: int = 0) -> Path:
    """Write ``EstimatedResponses.mat`` and ``Stimuli.mat`` (subjects S1 and S2) into ``folder``."""
    import hdf5storage
    from scipy.io import savemat

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gray = _images(n_train + n_val, seed)
    energy = _energy(gray)
    yy, xx = np.mgrid[0:128, 0:128]
    data = {}
    for s in (1, 2):
        codes = np.tile(list(ROI_CODES.values()), n_voxels // len(ROI_CODES) + 1)[:n_voxels]
        codes[-2:] = 0  # voxels outside the ROIs, as in the release
        resp = np.empty((n_train + n_val, n_voxels))
        for v, code in enumerate(codes):
            name = next((k for k, c in ROI_CODES.items() if c == code), "V1")
            cy, cx = rng.uniform(32, 96, size=2)
            rf = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * RF_SIGMA[name] ** 2))
            drive = np.sqrt(np.tensordot(energy, rf / rf.sum(), axes=([1, 2], [0, 1])))
            drive = zscore(drive[:, None])[0][:, 0]
            resp[:, v] = drive + noise * rng.standard_normal(drive.size)
        resp = zscore(resp)[0]  # the release's responses are z-scored per voxel
        # hdf5storage writes MATLAB's column-major layout: a (voxels x images) MATLAB matrix reads back
        # through h5py as (images x voxels), the orientation of the release
        data[f"dataTrnS{s}"] = resp[:n_train].T.astype(np.float32)
        data[f"dataValS{s}"] = resp[n_train:].T.astype(np.float32)
        data[f"roiS{s}"] = codes.reshape(-1, 1).astype(np.float64)
        data[f"voxIdxS{s}"] = (np.arange(n_voxels) * 7 + 11 * s).reshape(-1, 1).astype(np.float64)
    hdf5storage.savemat(str(folder / "EstimatedResponses.mat"), data, format="7.3", matlab_compatible=True,
                        store_python_metadata=False, truncate_existing=True)
    savemat(folder / "Stimuli.mat", {"stimTrn": gray[:n_train].astype(np.float32),
                                     "stimVal": gray[n_train:].astype(np.float32)})
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brainlike.demo.vim1", description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("--n-train", type=int, default=120)
    p.add_argument("--n-val", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = write_vim1(a.folder, n_train=a.n_train, n_val=a.n_val, seed=a.seed)
    print(f"vim-1 miniature written to {out}: EstimatedResponses.mat, Stimuli.mat")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
