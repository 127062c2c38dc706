"""FWRF fit time at NSD-like shapes vs a naive per-voxel loop, in one run.

    python benchmarks/bench_encoding.py                 # numpy on the CPU
    python benchmarks/bench_encoding.py --device cuda   # torch on the GPU, beside the CPU path
    python benchmarks/bench_encoding.py --quick         # small shapes (seconds)

Shapes: ~8,000 training images (10 % held out to choose field and penalty), feature maps of three
layers (64x16x16, 128x8x8, 256x4x4: 448 pooled features), a grid of a few hundred candidate fields,
9 penalties, 1,000 voxels. The naive loop (what a per-voxel implementation does: pool, z-score and
solve every penalty for every candidate, voxel by voxel) is timed on a few candidates of one voxel and
extrapolated. The FLOP bound is the work of the shared algorithm divided by this machine's measured
float32 GEMM rate.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _machine import gemm_gflops  # noqa: E402
from brainlike.encoding import FWRF, gaussian_fields, rf_grid  # noqa: E402


def naive_fit_one_voxel(maps, y, cand, lambdas, tr, ho):
    """Per-voxel reference loop: for every candidate pool, z-score, and solve each penalty."""
    best = (np.inf, -1, -1)
    for c, row in enumerate(cand):
        feats = [np.einsum("nchw,hw->nc", m, gaussian_fields(row[None], m.shape[2], dtype=np.float32)[0]) for m in maps]
        F = np.concatenate(feats, 1)
        mu, sd = F[tr].mean(0), F[tr].std(0) + 1e-6
        Z = (F - mu) / sd
        Xtr, Xho = Z[tr], Z[ho]
        ym = y[tr].mean()
        G = Xtr.T @ Xtr
        b = Xtr.T @ (y[tr] - ym)
        for li, lam in enumerate(lambdas):
            w = np.linalg.solve(G + lam * np.eye(G.shape[0], dtype=G.dtype), b)
            loss = float(((y[ho] - ym - Xho @ w) ** 2).sum())
            if loss < best[0]:
                best = (loss, c, li)
    return best


def flops(n, n_ho, layer_sizes, nf, k, nv, nl):
    """Work of the shared algorithm: pooling, Gram, eigh, X'Y, projections, holdout predictions."""
    n_tr = n - n_ho
    pool = 2.0 * n * sum(layer_sizes) * k
    gram = 2.0 * n_tr * nf * nf * k + 9.0 * nf**3 * k + 2.0 * n_ho * nf * nf * k
    per_voxel = (2.0 * n_tr * nf + 2.0 * nf * nf + nl * 2.0 * n_ho * nf) * k * nv
    return pool + gram, per_voxel


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=8000)
    ap.add_argument("--n-voxels", type=int, default=1000)
    ap.add_argument("--device", default="cpu", help="cpu (numpy) or cuda (torch on the GPU, compared with the CPU)")
    ap.add_argument("--quick", action="store_true", help="small shapes for a smoke run")
    ap.add_argument("--naive-candidates", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None, help="BLAS/torch threads (default: the library default)")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    n, nv = args.n_images, args.n_voxels
    layers = [(64, 16), (128, 8), (256, 4)]
    grid = dict(n_sizes=6, min_spacing=2.0)
    if args.quick:
        n, nv, layers, grid = 600, 100, [(16, 8), (32, 4)], dict(n_sizes=3, min_spacing=2.0)
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((n, c, h, h), dtype=np.float32) for c, h in layers]
    cand = rf_grid(**grid)
    lambdas = np.logspace(0, 6, 9)
    nf = sum(c for c, _ in layers)
    k = len(cand)
    Y = rng.standard_normal((n, nv), dtype=np.float32)
    rate = gemm_gflops(1536) * 1e9
    print(f"FWRF benchmark: {n} images ({int(np.ceil(0.1 * n))} held out), maps {[f'{c}x{h}x{h}' for c, h in layers]} "
          f"-> {nf} features, {k} candidate fields, {len(lambdas)} penalties, {nv} voxels; "
          f"float32 GEMM here: {rate / 1e9:.0f} GFLOP/s", flush=True)

    def run(nvox, backend="numpy", device=None):
        model = FWRF(cand, alphas=lambdas, holdout=0.1, backend=backend, device=device, candidate_batch_size=8,
                     voxel_batch_size=1024)
        t = time.perf_counter()
        model.fit(maps, Y[:, :nvox])
        if device and str(device).startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter() - t, model

    rows = []
    t_full, model = run(nv)
    tim = model.fit_timing_
    # the voxel-independent part is paid once; the per-voxel part scales with the voxel count
    per_1000 = tim["shared_s"] + tim["voxels_s"] * 1000 / nv
    fixed_fl, voxel_fl = flops(n, len(model.holdout_index_), [c * h * h for c, h in layers], nf, k, 1000, len(lambdas))
    bound = (fixed_fl + voxel_fl) / rate
    rows.append(("FWRF numpy (this library)", per_1000, bound))

    # naive per-voxel loop on a few candidates of one voxel, extrapolated to all candidates and 1,000 voxels
    nc = min(args.naive_candidates, k)
    sub = cand[np.linspace(0, k - 1, nc).astype(int)]
    t = time.perf_counter()
    naive_fit_one_voxel(maps, Y[:, 0], sub, lambdas, model.train_index_, model.holdout_index_)
    t_naive = (time.perf_counter() - t) / nc * k * 1000
    rows.append((f"naive per-voxel loop (timed: 1 voxel x {nc} candidates)", t_naive, bound))

    if args.device.startswith("cuda"):
        run(10, "torch", args.device)  # warm-up (CUDA context, kernels)
        t_full_g, model_g = run(nv, "torch", args.device)
        tg = model_g.fit_timing_
        per_1000_g = tg["shared_s"] + tg["voxels_s"] * 1000 / nv
        rows.append((f"FWRF torch {args.device}", per_1000_g, float("nan")))
        agree = np.mean(model_g.candidate_index_ == model.candidate_index_)
        print(f"GPU vs CPU: same field chosen for {100 * agree:.1f}% of voxels")

    print(f"\n{'method':58s} {'s / 1000 voxels':>16s} {'x FLOP bound':>13s} {'vs FWRF':>9s}")
    for name, secs, b in rows:
        print(f"{name:58s} {secs:16.1f} {secs / b:13.2f} {secs / rows[0][1]:9.1f}")
    print(f"\nFLOP bound: {bound:.1f} s per 1000 voxels ({fixed_fl / 1e12:.2f} TFLOP shared by all voxels + "
          f"{voxel_fl / 1e12:.2f} TFLOP per 1000 voxels at {rate / 1e9:.0f} GFLOP/s); measured: {t_full:.1f} s for {nv} voxels "
          f"({tim['shared_s']:.1f} s voxel-independent, {tim['voxels_s']:.1f} s per-voxel part)")
    maps_gb = sum(m.nbytes for m in maps) / 1e9
    print(f"peak RSS {peak_rss_gb():.2f} GB (feature maps alone {maps_gb:.2f} GB); the naive loop would need "
          f"{t_naive / 3600:.1f} h for 1000 voxels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
