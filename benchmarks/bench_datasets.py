"""Datasets: reading one ROI lazily vs reading whole files (the peers' way), and averaging repeats.

1. BData HDF5 at the Shen et al. training shape (6000 samples; voxels scaled down), one ROI:
   ``brainlike.datasets.load_bdata(roi=...)`` vs ``bdpy.BData(path).select("ROI_V1 = 1")`` (loads all).
2. One NSD session (750 trials, int16, a 1/8 func1pt8mm volume), V1-sized ROI:
   ``load_nsd`` (bounding box only) vs reading the whole ``betas`` array then masking (nsd_gnet8x's
   ``load_beta_file``).
3. ``BrainData.average_repetitions`` vs pandas ``groupby().mean()`` at 6000 x 10000 float32.

Prints time, ratio, peak traced memory and bytes read vs the bytes bound (the ROI's share of the file).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np


def measure(fn, repeat=3):
    """Best wall time over ``repeat`` untraced runs, then peak traced memory of one more run."""
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, out


def row(name, t, peak, ref_t=None):
    ratio = f"{ref_t / t:6.1f}x" if ref_t else "   1.0x"
    print(f"  {name:48s} {t * 1e3:9.1f} ms  {ratio}  peak {peak / 2**20:8.1f} MiB")


def bench_bdata(tmp: Path):
    import bdpy

    from brainlike.datasets import file_sha256, load_bdata

    n, v = 6000, 4000
    rng = np.random.default_rng(0)
    path = tmp / "sub-01_perceptionNaturalImageTraining_VC_v2.h5"
    b = bdpy.BData()
    b.add(rng.standard_normal((n, v)), "VoxelData")
    b.add(np.repeat(np.arange(1200), 5)[:, None].astype(float), "image_index")
    b.add((np.arange(n) // 500 + 1)[:, None].astype(float), "Run")
    v1 = np.zeros(v)
    v1[:500] = 1
    b.add_metadata("ROI_V1", v1, "V1", where="VoxelData")
    b.add_metadata("ROI_VC", np.ones(v), "VC", where="VoxelData")
    b.save(str(path))
    size = path.stat().st_size
    print(f"BData {n} x {v} float64 ({size / 2**20:.0f} MiB file), ROI V1 = 500 voxels (bound: {n * 500 * 8 / 2**20:.0f} MiB)")
    t_peer, m_peer, x_peer = measure(lambda: bdpy.BData(str(path)).select("ROI_V1 = 1"), repeat=5)
    file_sha256(path)  # provenance hash, memoised: measured separately below
    t_ours, m_ours, d = measure(lambda: load_bdata(path, roi="V1"), repeat=5)
    assert np.allclose(d.responses, x_peer, rtol=1e-6)
    row("bdpy BData + select (whole file)", t_peer, m_peer)
    row("brainlike load_bdata(roi='V1')", t_ours, m_ours, t_peer)


def bench_nsd(tmp: Path):
    import nibabel as nib
    from scipy.io import savemat

    from brainlike.datasets import load_nsd

    rng = np.random.default_rng(0)
    shape = (40, 52, 42)  # X, Y, Z (1/8 of func1pt8mm)
    root = tmp / "nsd"
    (root / "nsddata/experiments/nsd").mkdir(parents=True)
    savemat(root / "nsddata/experiments/nsd/nsd_expdesign.mat",
            {"masterordering": rng.integers(1, 10001, (1, 30000)).astype(float),
             "subjectim": (rng.integers(0, 73000, (8, 10000)) + 1).astype(float),
             "sharedix": (np.arange(1000) + 1)[None].astype(float)})
    roi_dir = root / "nsddata/ppdata/subj01/func1pt8mm/roi"
    roi_dir.mkdir(parents=True)
    vis = np.zeros(shape, dtype=np.int16)
    vis[5:17, 5:20, 5:15] = 1  # 1800 voxels, about V1's size at 1.8 mm
    nib.save(nib.Nifti1Image(vis, np.eye(4)), roi_dir / "prf-visualrois.nii.gz")
    bdir = root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True)
    path = bdir / "betas_session01.hdf5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("betas", shape=(750, *shape[::-1]), dtype=np.int16)
        for t0 in range(0, 750, 150):
            ds[t0 : t0 + 150] = rng.integers(-3000, 3000, (150, *shape[::-1]), dtype=np.int16)
    size = path.stat().st_size
    mask = vis == 1
    print(f"NSD session 750 x {shape} int16 ({size / 2**20:.0f} MiB), ROI {int(mask.sum())} voxels "
          f"(bound: {750 * mask.sum() * 2 / 2**20:.1f} MiB)")

    def whole():  # nsd_gnet8x load_beta_file: read everything, reshape, mask
        with h5py.File(path, "r") as f:
            values = np.copy(f["betas"])
        return values.reshape((len(values), -1), order="F")[:, mask.flatten()].astype(np.float32) / 300.0

    t_peer, m_peer, x_peer = measure(whole, repeat=2)
    t_ours, m_ours, d = measure(lambda: load_nsd(root, sessions=(1,), roi="V1", ncsnr=False), repeat=2)
    assert np.allclose(d.responses, x_peer)
    row("whole array then mask (nsd_gnet8x)", t_peer, m_peer)
    row("brainlike load_nsd(roi='V1')", t_ours, m_ours, t_peer)


def bench_average():
    import pandas as pd

    from brainlike.datasets import BrainData

    rng = np.random.default_rng(0)
    n, v = 6000, 10000
    x = rng.standard_normal((n, v), dtype=np.float32)
    ids = np.repeat(np.arange(1200), 5).astype(str)
    d = BrainData(x, ids, nan="ignore")
    print(f"average_repetitions {n} x {v} float32 (1200 stimuli x 5), bound: one pass over {x.nbytes / 2**20:.0f} MiB")
    t_peer, m_peer, ref = measure(lambda: pd.DataFrame(x).groupby(ids, sort=False).mean().to_numpy(), repeat=2)
    t_ours, m_ours, avg = measure(d.average_repetitions, repeat=2)
    assert np.allclose(avg.responses, ref, atol=1e-5)
    row("pandas groupby().mean()", t_peer, m_peer)
    row("BrainData.average_repetitions()", t_ours, m_ours, t_peer)


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        bench_bdata(Path(tmp))
        bench_nsd(Path(tmp))
    bench_average()
    return 0


if __name__ == "__main__":
    sys.exit(main())
