"""BHscore's encoding recipe: ``StreamingSelectiveRidge`` vs FastL2LiR 0.11, one run (`make bench`).

The recipe (KamitaniLab/BHscore ``encoding/featenc_fastl2lir_train.py``): each voxel predicted from
the 500 units of a layer most correlated with it, FastL2LiR ridge, alpha 100, float32. Same
synthetic data for both: 1,200 training images x 5 repetitions (6,000 trials), 50 test images,
2,000 voxels, three fractions of VGG19 ``conv1_1``'s units (the peer needs the whole layer and its
(units+1)^2 Gram in memory, so only fractions can be compared). FastL2LiR is fed the trials as the
scripts feed it (features repeated per trial, z-scored as bdpy's ``ModelTraining`` does; the
preparation is not timed); brainlike reads each image's features once (``rows``).

Extrapolation to a whole VGG19 (BHscore's layers ``conv1_1_abs`` ... ``fc8``, 4.75 million units):
FastL2LiR's time is fitted on the three unit counts (a + b*units + c*units^2, non-negative: its
Gram grows with units^2); ours is measured again at two much larger unit counts of a computed
feature source that is never held whole (its computation counted in our time), fitted as
a + b*units, and both are summed over the layers' unit counts. Those two runs (fresh processes)
also give our peak memory (RSS above the inputs). The FLOP bound uses the float32 GEMM rate
measured in this run.

Usage: python benchmarks/bench_encoding_recipe.py [--small]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from _machine import gemm_gflops
from _memory import PeakRSS

SIZES = {
    "full": dict(n_img=1200, rep=5, n_test=50, t=2000, k=500, units=(2500, 5000, 10000), mem_units=(200_000, 800_000)),
    "small": dict(n_img=200, rep=5, n_test=20, t=150, k=50, units=(600, 1200, 2400), mem_units=(20_000, 80_000)),
}
ALPHA = 100.0
# BHscore settings.json, "VGG-19" layers; unit counts of VGG19 on 224 x 224 images (channels x height x width)
VGG19 = {"conv1_1_abs": 64 * 224 * 224, "pool1": 64 * 112 * 112, "pool2": 128 * 56 * 56, "pool3": 256 * 28 * 28,
         "pool4": 512 * 14 * 14, "pool5": 512 * 7 * 7, "fc6": 4096, "fc7": 4096, "fc8": 1000}


def make_data(cfg, p, seed=0):
    """Features (images x units), trial rows, voxel responses (trials x voxels), test truth."""
    rng = np.random.default_rng(seed)
    n_img, n_test, t = cfg["n_img"], cfg["n_test"], cfg["t"]
    feats = rng.standard_normal((n_img + n_test, p), dtype=np.float32)
    drivers = rng.integers(0, p, size=(t, 20))
    signal = feats[:, drivers].sum(axis=2) / np.float32(np.sqrt(20))
    rows = np.tile(np.arange(n_img), cfg["rep"])
    y = signal[rows] + 2 * rng.standard_normal((rows.size, t), dtype=np.float32)
    test = np.arange(n_img, n_img + n_test)
    y_test = signal[test] + rng.standard_normal((n_test, t), dtype=np.float32)
    return feats, rows, y, test, y_test


def zscore(feats, y, n_img):
    x = (feats - feats[:n_img].mean(0)) / feats[:n_img].std(0, ddof=1)
    return x.astype(np.float32), ((y - y.mean(0)) / y.std(0, ddof=1)).astype(np.float32)


def agreement(x, rows, y, sel_ours, chosen_peer, r_ours, r_peer, k):
    """Per voxel: do both select the same k units? For those that do, max |dr|; for the others, how
    far the swapped units' |correlation| (float64) lies from the k-th largest: a near-tie in float32
    (FastL2LiR and brainlike compute the correlations in different orders) or a real difference."""
    same = np.array([np.array_equal(np.sort(sel_ours[v]), np.flatnonzero(chosen_peer[:, v]))
                     for v in range(sel_ours.shape[0])])
    dr = np.abs(r_ours - r_peer)
    gap = 0.0
    for v in np.flatnonzero(~same):
        c = np.abs(pearson(x[rows].astype(np.float64), y[:, v:v + 1].astype(np.float64)))
        kth = np.sort(c)[-k]
        swapped = np.setxor1d(sel_ours[v], np.flatnonzero(chosen_peer[:, v]))
        gap = max(gap, float(np.abs(c[swapped] - kth).max()))
    return {"n_same": int(same.sum()), "dr_same": float(np.nanmax(dr[same])) if same.any() else 0.0,
            "dr_other": float(np.nanmax(dr[~same])) if (~same).any() else 0.0, "gap": gap}


def pearson(a, b):
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def run_ours(cfg, x, rows, y, test):
    from brainlike.linear import StreamingSelectiveRidge

    t0 = time.perf_counter()
    m = StreamingSelectiveRidge(alpha=ALPHA, n_feat=cfg["k"], chunk_size=4096).fit(x, y, rows=rows, test_rows=test)
    return time.perf_counter() - t0, m.test_predictions_, m.selected_


def run_fastl2lir(cfg, x, rows, y, test):
    import fastl2lir

    X = x[rows]  # the scripts' X_sort: features repeated per trial (not timed)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        m = fastl2lir.FastL2LiR().fit(X, y, alpha=ALPHA, n_feat=cfg["k"], dtype=np.float32)
        pred = m.predict(x[test], dtype=np.float32)
    return time.perf_counter() - t0, pred, np.asarray(m.W) != 0  # a unit's weight is 0 unless it was selected


class ComputedUnits:
    """A feature source computed on demand: column j is a fixed function of j (never held whole)."""

    def __init__(self, n, p):
        rng = np.random.default_rng(1)
        self.a, self.b, self.shape = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32) * 6, (n, p)

    def read(self, cols):
        cols = np.arange(self.shape[1])[cols] if isinstance(cols, slice) else np.asarray(cols)
        return np.sin(np.outer(self.a, cols.astype(np.float32) * np.float32(0.37)) + self.b[:, None])


def memory_row(size, p):
    """Child process: peak RSS above the inputs of one fit over ``p`` computed units."""
    from brainlike.linear import StreamingSelectiveRidge

    cfg = SIZES[size]
    n, t = cfg["n_img"], cfg["t"]
    src = ComputedUnits(n + cfg["n_test"], p)
    rows = np.tile(np.arange(n), cfg["rep"])
    y = np.random.default_rng(2).standard_normal((rows.size, t), dtype=np.float32)
    y[:, : t // 2] += src.read(np.arange(t // 2) * 7)[rows]
    warm_up()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        StreamingSelectiveRidge(alpha=ALPHA, n_feat=cfg["k"], chunk_size=4096).fit(src, y, rows=rows,
                                                                                  test_rows=np.arange(n, n + 20))
        spent = time.perf_counter() - t0
    return {"extra": mem.peak - mem.base, "time": spent}


def warm_up():
    """Compiled kernels and thread pools load once per process, outside the timings (both solve paths)."""
    from brainlike.linear import StreamingSelectiveRidge

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 30), dtype=np.float32)
    StreamingSelectiveRidge(n_feat=3).fit(x, x[:, :3] @ rng.random((3, 20), dtype=np.float32))  # shared Gram
    StreamingSelectiveRidge(n_feat=3).fit(x, rng.standard_normal((40, 2)))  # one Gram per target


def flops_ours(n_img, p, t, k, union):
    """Correlations (one GEMM), then the cheaper of one Gram of the selected units or one per voxel, Cholesky."""
    return 2 * n_img * p * t + min(n_img * union**2, t * n_img * k * k) + t * (k**3 / 3 + 2 * n_img * k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small shapes (a quick check, < 1 min)")
    ap.add_argument("--memory-row", nargs=2, metavar=("SIZE", "UNITS"))
    args = ap.parse_args(argv)
    if args.memory_row:
        print(json.dumps(memory_row(args.memory_row[0], int(args.memory_row[1]))))
        return 0
    size = "small" if args.small else "full"
    cfg = SIZES[size]
    n_img, t, k = cfg["n_img"], cfg["t"], cfg["k"]
    gf = gemm_gflops(2000)
    print(f"bench_encoding_recipe ({size}); float32 GEMM here now: {gf:.0f} GFLOP/s on {os.cpu_count()} cores "
          "(shared machine: compare within this run)")
    print(f"{n_img} images x {cfg['rep']} repetitions, {cfg['n_test']} test images, {t} voxels, n_feat={k}, "
          f"alpha={ALPHA:g}, float32")
    print(f"{'units':>8} {'ours s':>8} {'bound s':>8} {'FastL2LiR s':>12} {'ratio':>7}   agreement with FastL2LiR "
          "(voxels selecting the same units: max |dr|; the others: max |dr|, |corr| gap of the swapped units)")
    warm_up()
    ours_t, peer_t, ok = [], [], True
    for p in cfg["units"]:
        feats, rows, y, test, y_test = make_data(cfg, p)
        x, yz = zscore(feats, y, n_img)
        t_ours, pred, selected = run_ours(cfg, x, rows, yz, test)
        t_peer, pred_peer, chosen_peer = run_fastl2lir(cfg, x, rows, yz, test)
        ag = agreement(x, rows, yz, selected, chosen_peer, pearson(pred, y_test), pearson(pred_peer, y_test), k)
        # the same units must give the same accuracy; other units only where their correlations tie in float32
        ok &= ag["dr_same"] < 1e-4 and ag["gap"] < 1e-5 and ag["n_same"] >= 0.9 * t
        bound = flops_ours(n_img, p, t, k, np.unique(selected).size) / (gf * 1e9)
        ours_t.append(t_ours)
        peer_t.append(t_peer)
        print(f"{p:>8} {t_ours:>8.3g} {bound:>8.3g} {t_peer:>12.3g} {t_peer / t_ours:>6.1f}x   {ag['n_same']}/{t} same: "
              f"{ag['dr_same']:.1e}; others: {ag['dr_other']:.1e}, gap {ag['gap']:.1e}")
    print("\nours at larger unit counts (units computed on demand, never held whole; peak RSS above the inputs):")
    mem = []
    for p in cfg["mem_units"]:
        done = subprocess.run([sys.executable, __file__, "--memory-row", size, str(p)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"  {p:>9,} units: failed: {done.stderr.strip().splitlines()[-1:]}")
            return 1
        mem.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {p:>9,} units: {mem[-1]['time']:8.3g} s, peak {mem[-1]['extra'] / 2**20:6.0f} MiB (the layer "
              f"itself: {4 * (n_img + cfg['n_test']) * p / 2**20:,.0f} MiB in float32)")
    p_lo, p_hi = cfg["mem_units"]
    print(f"  {p_hi // p_lo}x the units -> {mem[1]['extra'] / max(mem[0]['extra'], 1):.2f}x the peak memory")
    from scipy.optimize import nnls

    u = np.asarray(cfg["units"], dtype=np.float64)
    c_peer = nnls(np.stack([np.ones_like(u), u, u * u], axis=1), np.asarray(peer_t))[0]
    slope = max((mem[1]["time"] - mem[0]["time"]) / (p_hi - p_lo), mem[1]["time"] / p_hi / 4)
    whole_ours = sum(mem[0]["time"] + slope * (n - p_lo) if n > p_lo else mem[0]["time"] for n in VGG19.values())
    whole_peer = sum(c_peer @ [1, n, n * n] for n in VGG19.values())
    bound = sum(flops_ours(n_img, n, t, k, min(n, t * k)) for n in VGG19.values()) / (gf * 1e9)
    n_trials = n_img * cfg["rep"]
    p1 = VGG19["conv1_1_abs"]
    print(f"\nwhole VGG19 ({sum(VGG19.values()):,} units in {len(VGG19)} layers), {t} voxels, one subject, "
          "extrapolated from the fits above:")
    print(f"  ours {whole_ours / 60:.1f} min (FLOP bound {bound / 60:.1f} min); FastL2LiR {whole_peer / 3600:.0f} h; "
          f"ratio {whole_peer / whole_ours:.0f}x (goal >= 10x: {'met' if whole_peer >= 10 * whole_ours else 'NOT met'})")
    print(f"  FastL2LiR on conv1_1 would hold X ({n_trials} x {p1:,}: {4 * n_trials * p1 / 1e9:.0f} GB) and its "
          f"Gram ({4 * (p1 + 1) ** 2 / 1e12:.0f} TB) in float32: it cannot run there")
    if not ok:
        print("FAILED: the same units gave accuracies 1e-4 apart, or units were swapped that do not tie "
              "(|corr| gap >= 1e-5), or fewer than 90 % of voxels selected the same units", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
