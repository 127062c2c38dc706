"""Decoding a whole AlexNet-sized network from 5 ROIs through the pipeline's job path, vs FastL2LiR.

Shapes (BHscore's setting): 6000 training samples, 50 test images, 5 ROIs with 10,000 voxels in
all (V1 2500, V2 2500, V3 2000, V4 1500, HVC 1500), the 8 layers of the original (Caffe) AlexNet
that BHscore decodes: conv1 96x55x55, conv2 256x27x27, conv3 384x13x13, conv4 384x13x13,
conv5 256x13x13, fc6 4096, fc7 4096, fc8 1000 = 659,272 units (torchvision's AlexNet, with 64
conv1 and 192 conv2 channels, has 494,384). n_feat = 500 voxels per unit, alpha = 100. Random data.

A representative fraction, the same for both: ``--units`` units of every layer (fc8 included) from
every ROI, one job / one FastL2LiR fit per (ROI, layer) with ``--units`` targets. Each side's time is
split into a cost per ROI, per fit and per unit: both are also timed with 1 unit per (ROI, layer)
(40 fits), and the pipeline once more with its voxel cache off, so that the ROI's preparation (its
voxel Gram, built once per worker and ROI and kept for the ROI's other jobs) is told apart from the
per-job overhead; FastL2LiR rebuilds its Gram in every fit, which is its per-fit cost. The whole
network is then extrapolated as ROIs x (cost per ROI) + (fits at ``--chunk`` units per fit) x (cost
per fit) + (all units) x (cost per unit).
The pipeline side is ``run_experiment`` end to end on the synchronous scheduler: subject arrays
written to disk, the context pickled, every job reading its unit chunk from a feature source,
fitting SelectiveRidge, scoring Pearson r over the test images and writing its result file atomically; FastL2LiR (0.11, float64, as in BHscore) gets the same
z-scored arrays in memory and is timed on fit + predict + Pearson only.

Each side runs in its own process (clean peak RSS). A third process measures what integrity costs:
the rate of full-content hashing (xxh3-128) of given features, read in unit chunks, and of the
subject arrays, reported for every byte of the network's features and the brain data as a fraction
of the extrapolated whole-network run (goal: under 2 %). Usage: python benchmarks/bench_pipeline.py
[--units N] [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _memory import PeakRSS

LAYERS = {"conv1": 96 * 55 * 55, "conv2": 256 * 27 * 27, "conv3": 384 * 13 * 13, "conv4": 384 * 13 * 13,
          "conv5": 256 * 13 * 13, "fc6": 4096, "fc7": 4096, "fc8": 1000}
ROIS = {"V1": 2500, "V2": 2500, "V3": 2000, "V4": 1500, "HVC": 1500}
N_TRAIN, N_TEST, N_FEAT, ALPHA = 6000, 50, 500, 100.0
GFLOPS = 160.0  # measured float32 GEMM rate of this machine (peer-measurements.md)


class SyntheticLayer:
    """Feature source for the benchmark: deterministic random activations, generated on read."""

    def __init__(self, n_rows: int, n_units: int, seed: int):
        self.shape = (n_rows, n_units)
        self.seed = seed

    def read(self, units) -> np.ndarray:
        units = np.arange(self.shape[1])[units] if isinstance(units, slice) else np.asarray(units)
        out = np.empty((self.shape[0], units.size), dtype=np.float32)
        for j, u in enumerate(units):  # per-unit streams: any chunking reads the same values
            out[:, j] = np.random.default_rng([self.seed, int(u)]).standard_normal(self.shape[0], dtype=np.float32)
        return out


def sizes(small: bool):
    if small:
        return ({k: max(v // 20, 50) for k, v in LAYERS.items()}, {k: v // 10 for k, v in ROIS.items()},
                1000, 100)
    return LAYERS, ROIS, N_TRAIN, N_FEAT


def brain(n_train: int, rois: dict, seed=0):
    from brainlike.datasets import BrainData

    rng = np.random.default_rng(seed)
    n_vox = sum(rois.values())
    resp = rng.standard_normal((n_train + N_TEST, n_vox), dtype=np.float32)
    ids = np.array([f"s{i:05d}" for i in range(n_train + N_TEST)])
    split = np.array(["train"] * n_train + ["test"] * N_TEST)
    masks, start = {}, 0
    for r, n in rois.items():
        m = np.zeros(n_vox, dtype=bool)
        m[start:start + n] = True
        masks[r] = m
        start += n
    return BrainData(resp, ids, rois=masks, split=split, subject="bench")


def row(name: str, units: int, small: bool) -> dict:
    """Split a side's time into once per ROI + per fit + per unit (see the module docstring)."""
    n_rois = len(sizes(small)[1])
    if name == "pipeline":
        one = row_pipeline(1, small)  # each ROI's voxels prepared once, kept for its other jobs
        fresh = row_pipeline(1, small, cache_mb=0)  # ... and prepared again in every job
        per_roi = max(fresh["seconds"] - one["seconds"], 0.0) / (fresh["jobs"] - n_rois)
        per_fit = max(one["seconds"] - n_rois * per_roi, 0.0) / one["jobs"]
        full = row_pipeline(units, small)
    else:
        one = row_fastl2lir(1, small)
        per_roi, per_fit = 0.0, one["seconds"] / one["jobs"]  # it rebuilds its Gram in every fit
        full = row_fastl2lir(units, small)
    full["per_roi_s"], full["per_fit_s"] = per_roi, per_fit
    full["per_unit_s"] = max(full["seconds"] - n_rois * per_roi - per_fit * full["jobs"], 0.0) / full["units"]
    return full


def row_pipeline(units: int, small: bool, cache_mb: int = 2048) -> dict:
    from brainlike.features import FeatureSet
    from brainlike.pipeline import run_experiment

    layers, rois, n_train, n_feat = sizes(small)
    data = brain(n_train, rois)
    feats = FeatureSet({name: SyntheticLayer(n_train + N_TEST, n, seed=k) for k, (name, n) in enumerate(layers.items())},
                       ids=data.stimulus_ids)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"name": "bench", "out": tmp, "analyses": ["decoding"], "rois": list(rois),
               "dnns": {"alexnet": {"model": "synthetic", "layers": list(layers)}},
               "decoding": {"alpha": ALPHA, "n_feat": n_feat, "units_per_layer": units, "chunk_size": units,
                            "voxel_cache_mb": cache_mb},
               "scores": {"n_boot": 0, "n_perm": 0}, "execution": {"scheduler": "synchronous"}, "report": False}
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            res = run_experiment(cfg, brain=data, features={"alexnet": feats}, progress=False)
            total = time.perf_counter() - t0
    n_units = sum(min(units, n) for n in layers.values()) * len(rois)
    return {"seconds": res.summary["seconds"], "total_seconds": total, "units": n_units,
            "jobs": res.summary["n_jobs"], "peak_mb": (mem.peak - mem.base) / 2**20}


def row_hashing(small: bool) -> dict:
    """Full-content hashing, as the pipeline keys its results: given features through
    ``ContentHasher.handle`` (unit chunks read through ``.read``, as for a feature store) and the
    subject arrays through ``hash_arrays``, on a realistic block of each (rate in bytes/s)."""
    from brainlike._hash import ContentHasher, hash_arrays
    from brainlike.features import LayerFeatures

    layers, rois, n_train, _ = sizes(small)
    n_rows = n_train + N_TEST
    rng = np.random.default_rng(0)
    n_units = max(1, (16 << 20 if small else 512 << 20) // (4 * n_rows))
    block = LayerFeatures(rng.standard_normal((n_rows, n_units), dtype=np.float32), range(n_rows), (n_units,))
    subject = brain(n_train, rois).responses
    ContentHasher().handle(block)  # warm-up (page faults, first import)
    t0 = time.perf_counter()
    ContentHasher().handle(block)
    feat_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hash_arrays(subject)
    subj_s = time.perf_counter() - t0
    return {"feature_bytes": 4 * n_rows * n_units, "feature_seconds": feat_s,
            "subject_bytes": int(subject.nbytes), "subject_seconds": subj_s}


def row_fastl2lir(units: int, small: bool) -> dict:
    import fastl2lir

    from brainlike._zscore import zscore

    layers, rois, n_train, n_feat = sizes(small)
    data = brain(n_train, rois)
    x = data.responses
    n_units, seconds = 0, 0.0
    with PeakRSS() as mem:
        for k, (name, n) in enumerate(layers.items()):
            layer = SyntheticLayer(n_train + N_TEST, n, seed=k)
            sel = np.sort(np.random.default_rng(k).choice(n, size=min(units, n), replace=False))
            y = layer.read(sel)
            ytr, yte = zscore(y[:n_train], y[n_train:], ddof=1, dtype=np.float64)
            for r, mask in data.rois.items():
                xtr, xte = zscore(x[:n_train, mask], x[n_train:, mask], ddof=1, dtype=np.float64)
                t0 = time.perf_counter()
                model = fastl2lir.FastL2LiR()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(xtr, ytr, alpha=ALPHA, n_feat=min(n_feat, xtr.shape[1]), chunk_size=ytr.shape[1])
                    pred = model.predict(xte)
                pc = pred - pred.mean(0)
                tc = yte - yte.mean(0)
                _ = (pc * tc).sum(0) / np.sqrt((pc * pc).sum(0) * (tc * tc).sum(0))
                seconds += time.perf_counter() - t0
                n_units += ytr.shape[1]
                del model
    return {"seconds": seconds, "total_seconds": seconds, "units": n_units, "jobs": len(layers) * len(rois),
            "peak_mb": (mem.peak - mem.base) / 2**20}


def flop_bound(units: int, small: bool) -> float:
    """Seconds at GFLOPS for the fraction: per-unit voxel correlations + Cholesky of n_feat^2, each
    ROI's Gram once, and the test predictions."""
    layers, rois, n_train, n_feat = sizes(small)
    flops = sum(gram_flops(n_train, v) for v in rois.values())  # each ROI's Gram, once
    for n in layers.values():
        k = min(units, n)
        for v in rois.values():
            f = min(n_feat, v)
            flops += k * (2.0 * n_train * v + f**3 / 3 + 2.0 * f * f + 2.0 * N_TEST * f)
    return flops / (GFLOPS * 1e9)


def gram_flops(n_train: int, v: int) -> float:
    return float(n_train) * v * v  # symmetric: half of a GEMM's 2 n v^2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100, help="units per layer and ROI in the measured fraction")
    ap.add_argument("--chunk", type=int, default=1000, help="units per fit (job) in the extrapolated full run")
    ap.add_argument("--small", action="store_true", help="tiny shapes (smoke test)")
    ap.add_argument("--row", choices=["pipeline", "fastl2lir", "hashing"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.row == "hashing":
        print("RESULT " + json.dumps(row_hashing(args.small)))
        return 0
    if args.row:
        print("RESULT " + json.dumps(row(args.row, args.units, args.small)))
        return 0
    layers, rois, n_train, n_feat = sizes(args.small)
    total_units = sum(layers.values()) * len(rois)
    print(f"AlexNet-sized decoding: {sum(layers.values()):,} units x {len(rois)} ROIs ({sum(rois.values()):,} "
          f"voxels), {n_train} training samples, {N_TEST} test images, n_feat={n_feat}, alpha={ALPHA:g}")
    print(f"measured fraction: {args.units} units per layer and ROI, one fit per (ROI, layer)")
    rows = {}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for name in ("pipeline", "fastl2lir", "hashing"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--row", name, "--units", str(args.units)]
        if args.small:
            cmd.append("--small")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode != 0 or not line:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows[name] = json.loads(line[0][7:])
    bound = flop_bound(args.units, args.small)
    frac_units = rows["pipeline"]["units"]
    scale = total_units / frac_units
    n_fits = len(rois) * sum(-(-n // args.chunk) for n in layers.values())
    print(f"\nfraction: {frac_units:,} of {total_units:,} unit-ROI fits ({100 / scale:.2f} %); full run extrapolated "
          f"at {args.chunk} units per fit ({n_fits:,} fits)")
    print(f"{'':28s}{'fraction (s)':>13s}{'per ROI (s)':>12s}{'per fit (s)':>12s}{'ms/unit':>9s}"
          f"{'all units (h)':>15s}{'ratio':>7s}{'peak MB':>9s}")
    full = {}
    for name in ("pipeline", "fastl2lir"):
        r = rows[name]
        full[name] = len(rois) * r["per_roi_s"] + n_fits * r["per_fit_s"] + total_units * r["per_unit_s"]
    for name, label in (("pipeline", "brainlike pipeline (jobs)"), ("fastl2lir", "FastL2LiR 0.11 (fit only)")):
        r = rows[name]
        print(f"{label:28s}{r['seconds']:13.1f}{r['per_roi_s']:12.2f}{r['per_fit_s']:12.2f}"
              f"{1000 * r['per_unit_s']:9.2f}{full[name] / 3600:15.2f}{full['fastl2lir'] / full[name]:7.2f}"
              f"{r['peak_mb']:9.0f}")
    layers_all = sum(layers.values())
    gram = sum(gram_flops(n_train, v) for v in rois.values()) / len(rois)
    per_unit_flops = np.mean([2.0 * n_train * v + min(n_feat, v) ** 3 / 3 + 2.0 * min(n_feat, v) ** 2
                              for v in rois.values()])
    full_bound = (len(rois) * gram + total_units * per_unit_flops) / (GFLOPS * 1e9)
    print(f"{'FLOP bound @160 GFLOP/s':28s}{bound:13.1f}{gram / GFLOPS / 1e9:12.2f}{0:12.2f}"
          f"{1000 * per_unit_flops / GFLOPS / 1e9:9.2f}{full_bound / 3600:15.2f}")
    print("per ROI: once per worker (brainlike keeps each ROI's voxel Gram across its jobs); per fit: every "
          "job / FastL2LiR fit (FastL2LiR rebuilds its float64 Gram in every fit)")
    p = rows["pipeline"]
    print(f"\npipeline end to end (prepare + jobs + tables + scores): {p['total_seconds']:.1f} s for {p['jobs']} jobs "
          f"({layers_all:,} units per ROI in the network); ratio = FastL2LiR time / time (higher is better)")
    # integrity: the result keys hash every byte of the given features and of the subject arrays
    h = rows["hashing"]
    feat_bytes = 4.0 * (n_train + N_TEST) * layers_all
    subj_bytes = float(h["subject_bytes"])
    feat_rate, subj_rate = h["feature_bytes"] / h["feature_seconds"], subj_bytes / h["subject_seconds"]
    hash_s = feat_bytes / feat_rate + subj_bytes / subj_rate
    print(f"\nfull-content hashing (xxh3-128): features {feat_bytes / 1e9:.2f} GB at {feat_rate / 1e9:.2f} GB/s "
          f"(unit chunks via .read), subject arrays {subj_bytes / 1e9:.2f} GB at {subj_rate / 1e9:.2f} GB/s: "
          f"{hash_s:.1f} s = {100 * hash_s / full['pipeline']:.3f} % of the whole-network pipeline run "
          f"({full['pipeline'] / 3600:.2f} h extrapolated; goal < 2 %). Memory-bound floor: "
          f"{(feat_bytes + subj_bytes) / 24e9:.1f} s at the ~24 GB/s copy rate.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
