"""FWRF fit time with the seed's full field grid at NSD-like shapes, against its FLOP bound and the seed's loop.

    python benchmarks/bench_encoding.py                 # numpy on the CPU (about 12 GB of feature maps)
    python benchmarks/bench_encoding.py --device cuda   # the same with torch on the GPU, beside the CPU rows
    python benchmarks/bench_encoding.py --quick         # small maps, same grid (well under a minute)

The seed's settings (St-Yves et al. 2023, github.com/styvesg/nsd_gnet8x, the AlexNet fwRF of
``alexnet_fwrf_encoding_multisubjects.ipynb``):

- field grid: cell 32, ``model_space_pyramid(logspace(8)(0.03, 0.4), min_spacing=1., aperture=1.1)``
  (``src/rf_grid.py`` lines 51-57: per sigma a ceil(1.1 / sigma)^2 lattice spanning 1.1 apertures):
  2,680 fields. ``rf_grid(n_sizes=8, min_size=0.03, max_size=0.4, min_spacing=1.0, extent=1.1)``
  gives the same 2,680; ``rf_grid()``'s defaults (min_size 0.04, min_spacing 1.4: 875 fields) are
  the grid of St-Yves & Naselaris 2018, not this one.
- penalties: cell 35, ``np.logspace(3., 6., 9)`` (FWRF's default ``alphas`` is ``logspace(0, 6, 9)``).
- holdout: cell 35, ``holdout_frac = 0.1`` of the training trials (FWRF's default ``holdout=0.1``).
- layers: 227 x 227 images (cell 6, ``S%d_stimuli_227.h5py``) through AlexNet (``models/alexnet.py``):
  conv1 64x27x27, conv2 192x27x27, conv3 384x13x13, conv4 256x13x13, conv5 256x13x13 (cell 26's
  output): 1,152 pooled features. The seed also pools fc6-8 (512 units each after
  ``filter_dnn_feature_maps``, cell 28); this benchmark, like the issue, uses conv1-5.
- the per-field loop: ``learn_params_ridge_regression`` (``src/torch_fwrf.py`` lines 110-280):
  for each field (line 219) pool every image batch of 100 (line 223), z-score with the mean and
  std of all samples (+1e-6, lines 227-231), append a (penalised) bias column (line 233), then for
  every penalty invert (X'X + lambda I), recomputing X'X each time, and multiply by X' (lines
  158-161, ``_cofactor_fn``), then per block of 500 voxels form all penalties' weights and holdout
  losses with tensor products and keep the best (lines 163-168, 242-263). ``seed_per_field_fit``
  below is that algorithm on precomputed feature maps (the seed also re-runs AlexNet on every
  image for every field, line 223, which is not counted here).

Shapes: 9,000 images (10 % held out to choose field and penalty), 5,000 voxels, random float32
conv1-5 maps at those resolutions (the time does not depend on the values). Every candidate field
is independent work, so FWRF is timed on a random sample of the 2,680 fields (``--fields``,
default 48, 1.8 % of the grid) with every other dimension at full size and extrapolated linearly to
the full grid; the seed's loop likewise on ``--seed-fields`` fields (default 2).

The FLOP bound is the work of the minimal algorithm divided by this machine's float32 GEMM rate,
measured in the same run (``_machine.gemm_gflops``): per field pooling (2 n sum(C H W)),
z-scoring, the training Gram matrix (syrk: n_tr F (F + 1)), its factorisation (the cheaper of a
Cholesky factor per penalty with the holdout solve, L (F^3 / 3 + 2 F^2 n_ho), or one
eigendecomposition, 9 F^3, with the rotations of the holdout features and of X'Y, 2 F^2 (n_ho + V)),
X'Y (2 n_tr F V), the holdout predictions of every penalty (2 L n_ho F V) and their losses
(3 L n_ho V).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _machine import gemm_gflops, torch_gemm_gflops  # noqa: E402
from brainlike.encoding import FWRF, gaussian_fields, rf_grid  # noqa: E402

SEED_GRID = dict(n_sizes=8, min_size=0.03, max_size=0.4, min_spacing=1.0, extent=1.1)
SEED_LAMBDAS = np.logspace(3.0, 6.0, 9)
ALEXNET_CONV = [(64, 27), (192, 27), (384, 13), (256, 13), (256, 13)]  # (channels, side) of conv1-5 at 227 px
QUICK_CONV = [(8, 27), (16, 27), (24, 13), (16, 13), (16, 13)]


def seed_per_field_fit(maps, Y, cand, lambdas, holdout_size, device="cpu", sample_batch=100, voxel_batch=500):
    """The seed's per-field loop (algorithm of ``learn_params_ridge_regression``) on precomputed maps.

    Returns (best_loss, best_field, best_lambda) per voxel; the first n - holdout_size samples train.
    """
    import torch

    dev = torch.device(device)
    n, nv = Y.shape
    n_tr = n - holdout_size
    tm = [torch.as_tensor(m, device=dev) for m in maps]
    vtr = torch.as_tensor(Y[:n_tr], device=dev, dtype=torch.float32)
    vout = torch.as_tensor(Y[n_tr:], device=dev, dtype=torch.float32)
    nf = sum(m.shape[1] for m in maps)
    best_loss = np.full(nv, np.inf, dtype=np.float32)
    best_field = np.full(nv, -1)
    best_lam = np.full(nv, -1)
    weights = np.zeros((nv, nf + 1), dtype=np.float32)
    with torch.no_grad():
        for c, (x, y, s) in enumerate(cand):
            pfs = [torch.as_tensor(gaussian_fields([[x, y, s]], m.shape[2], dtype=np.float32)[0], device=dev) for m in maps]
            mst = np.zeros((n, nf), dtype=np.float32)
            for r0 in range(0, n, sample_batch):
                r = slice(r0, r0 + sample_batch)
                mst[r] = torch.cat([torch.tensordot(m[r], pf, dims=[[2, 3], [0, 1]]) for m, pf in zip(tm, pfs)], 1).cpu().numpy()
            mst -= mst.mean(0, keepdims=True)
            mst /= mst.std(0, keepdims=True) + 1e-6
            mst = np.concatenate([mst, np.ones((n, 1), dtype=np.float32)], 1)
            xtr = torch.as_tensor(mst[:n_tr], device=dev)
            xout = torch.as_tensor(mst[n_tr:], device=dev)
            eye = torch.eye(nf + 1, device=dev)
            cof = torch.stack([torch.linalg.inv(xtr.T @ xtr + eye * float(lam)) for lam in lambdas])
            cof = torch.tensordot(cof, xtr, dims=[[2], [1]])  # (n_lambdas, F + 1, n_tr)
            for v0 in range(0, nv, voxel_batch):
                rv = slice(v0, v0 + voxel_batch)
                beta = torch.tensordot(cof, vtr[:, rv], dims=[[2], [0]])  # (n_lambdas, F + 1, nvb)
                pred = torch.tensordot(xout, beta, dims=[[1], [1]])  # (n_ho, n_lambdas, nvb)
                loss = ((vout[:, None, rv] - pred) ** 2).sum(0)
                val, sel = torch.min(loss, dim=0)
                betas, val, sel = beta.cpu().numpy(), val.cpu().numpy(), sel.cpu().numpy()
                imp = val < best_loss[rv]
                if imp.any():
                    idx = np.arange(v0, v0 + val.size)[imp]
                    best_loss[idx], best_field[idx], best_lam[idx] = val[imp], c, sel[imp]
                    weights[idx] = betas[sel[imp], :, np.flatnonzero(imp)]
    return best_loss, best_field, best_lam


def flops_fwrf(n, n_ho, map_sizes, nf, nv, nl):
    """FLOPs per candidate field of the minimal algorithm (see the module docstring), by step."""
    n_tr = n - n_ho
    fac_chol = nl * (nf**3 / 3 + 2.0 * nf * nf * n_ho)
    fac_eigh = 9.0 * nf**3 + 2.0 * nf * nf * (n_ho + nv)
    return {
        "pool": 2.0 * n * sum(map_sizes) + 4.0 * n * nf,
        "gram": float(n_tr) * nf * (nf + 1),
        "factor": min(fac_chol, fac_eigh),
        "xty": 2.0 * n_tr * nf * nv,
        "predict": 2.0 * nl * n_ho * nf * nv + 3.0 * nl * n_ho * nv,
    }


def flops_seed(n, n_ho, map_sizes, nf, nv, nl):
    """FLOPs per candidate field of the seed's loop (bias column, Gram and inverse per penalty)."""
    n_tr, f = n - n_ho, nf + 1
    return (2.0 * n * sum(map_sizes) + nl * (2.0 * n_tr * f * f + 2.0 * f**3 + 2.0 * f * f * n_tr)
            + nl * 2.0 * f * nv * (n_tr + n_ho))


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def random_maps(n, layers, rng):
    """float32 maps (n, C, side, side) per layer, filled in chunks (bounded temporary memory)."""
    out = []
    for c, side in layers:
        m = np.empty((n, c, side, side), dtype=np.float32)
        for i in range(0, n, 500):
            m[i : i + 500] = rng.standard_normal((min(500, n - i), c, side, side), dtype=np.float32)
        out.append(m)
    return out


def time_fwrf(maps, Y, cand, lambdas, backend="numpy", device=None):
    model = FWRF(cand, alphas=lambdas, holdout=0.1, backend=backend, device=device, candidate_batch_size=8)
    t = time.perf_counter()
    model.fit(maps, Y)
    return time.perf_counter() - t, model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=9000)
    ap.add_argument("--n-voxels", type=int, default=5000)
    ap.add_argument("--fields", type=int, default=48, help="random sample of the grid timed for FWRF")
    ap.add_argument("--seed-fields", type=int, default=2, help="fields timed for the seed's loop")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (adds torch on the GPU for both methods)")
    ap.add_argument("--quick", action="store_true", help="600 images, 300 voxels, thin maps: a smoke run")
    ap.add_argument("--threads", type=int, default=None, help="BLAS/torch threads (default: the library default)")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    n, nv, layers, n_fields = args.n_images, args.n_voxels, ALEXNET_CONV, args.fields
    if args.quick:
        n, nv, layers, n_fields = 600, 300, QUICK_CONV, 16
    for name, v in (("--n-images", n), ("--n-voxels", nv), ("--fields", n_fields), ("--seed-fields", args.seed_fields)):
        if v < 1:
            raise SystemExit(f"{name} must be a positive integer; got {v}")
    grid = rf_grid(**SEED_GRID)
    k = len(grid)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(k, min(n_fields, k), replace=False))
    seed_sample = np.sort(rng.choice(k, min(args.seed_fields, k), replace=False))
    rate = gemm_gflops(1536) * 1e9
    t0 = time.perf_counter()
    maps = random_maps(n, layers, rng)
    Y = rng.standard_normal((n, nv), dtype=np.float32)
    nf = sum(c for c, _ in layers)
    n_ho = int(math.ceil(0.1 * n))
    sizes = [c * s * s for c, s in layers]
    print(f"FWRF benchmark: {n} images ({n_ho} held out), conv1-5 maps {[f'{c}x{s}x{s}' for c, s in layers]} "
          f"-> {nf} features, the seed's {k} fields, {len(SEED_LAMBDAS)} penalties, {nv} voxels; "
          f"float32 GEMM here: {rate / 1e9:.0f} GFLOP/s; maps made in {time.perf_counter() - t0:.0f} s", flush=True)
    fl = flops_fwrf(n, n_ho, sizes, nf, nv, len(SEED_LAMBDAS))
    bound = sum(fl.values()) * k / rate

    rows = []
    t_fw, model = time_fwrf(maps, Y, grid[sample], SEED_LAMBDAS)
    full = t_fw * k / len(sample)
    rows.append((f"FWRF numpy ({len(sample)} random fields timed)", full, bound))
    tim = model.fit_timing_

    t = time.perf_counter()
    seed_per_field_fit(maps, Y, grid[seed_sample], SEED_LAMBDAS, n_ho)
    seed_full = (time.perf_counter() - t) * k / len(seed_sample)
    rows.append((f"seed per-field loop, torch cpu ({len(seed_sample)} fields timed)", seed_full, bound))
    seed_fl = flops_seed(n, n_ho, sizes, nf, nv, len(SEED_LAMBDAS)) * k

    if args.device.startswith("cuda"):
        dev = args.device
        grate = torch_gemm_gflops(dev) * 1e9
        gmaps = [torch.as_tensor(m, device=dev) for m in maps]
        time_fwrf([m[:64] for m in gmaps], Y[:64, :10], grid[sample[:2]], SEED_LAMBDAS, "torch", dev)  # warm-up
        tg, _ = time_fwrf(gmaps, Y, grid[sample], SEED_LAMBDAS, "torch", dev)
        torch.cuda.synchronize()
        rows.append((f"FWRF torch {dev} ({len(sample)} fields timed)", tg * k / len(sample), sum(fl.values()) * k / grate))
        del gmaps
        t = time.perf_counter()
        seed_per_field_fit(maps, Y, grid[seed_sample], SEED_LAMBDAS, n_ho, device=dev)
        torch.cuda.synchronize()
        rows.append((f"seed per-field loop, torch {dev}", (time.perf_counter() - t) * k / len(seed_sample),
                     sum(fl.values()) * k / grate))
        print(f"GPU float32 GEMM: {grate / 1e9:.0f} GFLOP/s")

    print(f"\nfull grid ({k} fields), {nv} voxels, extrapolated linearly from the timed fields")
    print(f"{'method':52s} {'s (full grid)':>14s} {'h':>7s} {'x FLOP bound':>13s} {'vs FWRF':>8s}")
    for name, secs, b in rows:
        print(f"{name:52s} {secs:14.0f} {secs / 3600:7.2f} {secs / b:13.2f} {secs / rows[0][1]:8.1f}")
    goal = "met" if full / bound <= 1.5 else "NOT met"
    print(f"\nFWRF / FLOP bound = {full / bound:.2f} (goal <= 1.5: {goal}); seed loop / FWRF = {seed_full / full:.1f}")
    print(f"FLOP bound {bound:.0f} s = {sum(fl.values()) * k / 1e12:.0f} TFLOP at {rate / 1e9:.0f} GFLOP/s; per field: "
          + ", ".join(f"{key} {v / 1e9:.3g}" for key, v in fl.items()) + " GFLOP"
          f"; the seed's loop does {seed_fl / (sum(fl.values()) * k):.1f}x the FLOPs")
    print(f"FWRF timed part: {t_fw:.1f} s ({tim['shared_s']:.1f} s pooling/Gram/factorisation, {tim['voxels_s']:.1f} s "
          f"per-voxel part); peak RSS {peak_rss_gb():.1f} GB (maps alone {sum(m.nbytes for m in maps) / 1e9:.1f} GB)")
    return {"fwrf_s": full, "seed_s": seed_full, "bound_s": bound, "n_fields": k, "rows": rows}


if __name__ == "__main__":
    main()
    sys.exit(0)
