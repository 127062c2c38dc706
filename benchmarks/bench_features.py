"""Feature extraction against its two bounds, what integrity costs, and the codec.

Peers, measured in this run on this machine:
- the bare forward pass: the same model on the same images (read from the zip, same
  preprocessing and batch size) under ``torch.no_grad()``, no hooks, no copies, no store;
- the synced write of the store's bytes: files of the sizes extraction wrote (random bytes, so
  nothing below compresses them), each written and fsynced, as the store's chunk files are;
  the same for the uncompressed size of the features.
Bound = the larger of the bare forward pass and the synced write of the stored bytes: a writer
overlapping the forward pass perfectly takes that long. Goal: extraction within 1.25x the bound.

Integrity: the xxh3-128 checksums of every chunk written (timed on the stored bytes, in memory),
the check on open (size of every chunk file) and ``features.verify`` (every checksum, reading
the store back), each as a fraction of the extraction time. Goal: under 5 %.

Codec: ratio and single-thread encode/decode speed of candidate lossless codecs on the
activations of the first images (the store uses Blosc-LZ4 without shuffle); each is checked to
decode bitwise equal.

Data: the 1,750 Kay et al. (2008) vim-1 training images (``kay2008_vim1_stimuli`` in
``BRAINLIKE_DATA_MIRROR``). Models: AlexNet (random weights; conv1..fc8 as in BHscore) and
EfficientNet-Lite0 (pretrained; block0..block15). Each case runs in its own process.

Usage: python benchmarks/bench_features.py [--n 1750] [--batch-size 32] [--small]
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


def _mirror() -> Path:
    env = os.environ.get("BRAINLIKE_DATA_MIRROR")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def _zip_path() -> Path:
    return _mirror() / "kay2008_vim1_stimuli" / "kay_train_stimuli_1750_jpg.zip"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _load(case: str, n: int):
    import torch

    from brainlike import models
    from brainlike.stimuli import ImageSet

    name, pretrained, layers = CASES[case]
    torch.manual_seed(0)
    model = models.load(name, pretrained=pretrained)
    images = ImageSet.from_zip(_zip_path())
    if n < len(images):
        images = images.subset(images.ids[:n])
    return model, images, layers


def synced_write(folder: Path, sizes: list[int]) -> float:
    """Seconds to write files of ``sizes`` (random bytes), each fsynced, as the store writes its chunks."""
    import numpy as np

    block = np.random.default_rng(0).integers(0, 256, max(sizes, default=0), dtype=np.uint8).tobytes()
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, size in enumerate(sizes):
        fd = os.open(folder / str(i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, block[:size])
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - t0
    shutil.rmtree(folder, ignore_errors=True)
    return seconds


def worker_bare(case: str, n: int, batch_size: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, images, _ = _load(case, n)
    c0, t0 = _cpu_seconds(), time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            idx = range(start, min(len(images), start + batch_size))
            model.module(model.preprocess(np.stack([images.load(i) for i in idx])))
    out = {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - c0, "n": len(images)}
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.module(model.preprocess(images.array([0])))
    out["gflop_per_image"] = fc.get_total_flops() / 1e9
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def worker_extract(case: str, n: int, batch_size: int, tmp: str) -> dict:
    from brainlike import models
    from brainlike._hash import hash_buffer
    from brainlike.features import FeatureSet, extract, verify

    model, images, layers = _load(case, n)
    root = Path(tempfile.mkdtemp(prefix="bench-features-", dir=tmp))
    store = root / "store"
    models.layers(model)  # trace once, as any caller listing layers would
    try:
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fs = extract(model, images, layers, store=store, batch_size=batch_size, progress=False)
        out = {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - c0, "n": len(images)}
        out["peak_rss_mb"] = _peak_rss_mb()
        chunks = sorted(store.glob("L*/c/*/*"))
        sizes = [f.stat().st_size for f in chunks]
        out["units"] = int(sum(lf.n_units for lf in fs.values()))
        out["raw_bytes"] = int(sum(lf.n_units * len(lf) * lf.dtype.itemsize for lf in fs.values()))
        out["stored_bytes"] = int(sum(sizes))
        hash_s = 0.0
        for f in chunks:  # the checksums extraction computed, timed alone on the same bytes
            data = f.read_bytes()
            t = time.perf_counter()
            hash_buffer(data)
            hash_s += time.perf_counter() - t
        out["checksum_seconds"] = hash_s
        t = time.perf_counter()
        FeatureSet.open(store, verify=False)
        out["open_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        state = verify(store)
        out["verify_seconds"] = time.perf_counter() - t
        assert state.ok, state.problems
        t = time.perf_counter()
        for lf in fs.values():  # read back lazily (each chunk checked as read), one unit chunk at a time
            for _sl, _block in lf.iter_units(8192):
                pass
        out["read_seconds"] = time.perf_counter() - t
        del fs
        shutil.rmtree(store, ignore_errors=True)
        out["write_stored_seconds"] = synced_write(root / "peer", sizes)
        raw_sizes = [s * out["raw_bytes"] // max(1, out["stored_bytes"]) for s in sizes]  # same files, raw size
        out["write_raw_seconds"] = synced_write(root / "peer-raw", raw_sizes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def worker_codecs(case: str, n: int, batch_size: int) -> list:
    import numcodecs
    import numpy as np
    from numcodecs import Blosc, Zstd

    from brainlike.features import extract

    numcodecs.blosc.set_nthreads(1)
    model, images, layers = _load(case, n)
    fs = extract(model, images, layers, batch_size=batch_size, progress=False)
    codecs = {
        "blosc-lz4 (store)": Blosc("lz4", 1, Blosc.NOSHUFFLE),
        "blosc-lz4 shuffle": Blosc("lz4", 1, Blosc.SHUFFLE),
        "blosc-lz4 bitshuffle": Blosc("lz4", 1, Blosc.BITSHUFFLE),
        "blosc-zstd1 shuffle": Blosc("zstd", 1, Blosc.SHUFFLE),
        "zstd1": Zstd(1),
    }
    rows = {k: [0, 0.0, 0.0] for k in codecs}
    raw = zeros = 0
    for name in layers:
        a = np.ascontiguousarray(np.asarray(fs[name]))
        raw += a.nbytes
        zeros += int((a == 0).sum())
        step = max(1, (4 << 20) // (4 * a.shape[0]))
        for k, codec in codecs.items():
            for s in range(0, a.shape[1], step):
                chunk = np.ascontiguousarray(a[:, s:s + step])
                t0 = time.perf_counter()
                enc = codec.encode(chunk)
                t1 = time.perf_counter()
                dec = np.frombuffer(codec.decode(enc), dtype=chunk.dtype)
                t2 = time.perf_counter()
                if not np.array_equal(dec, chunk.ravel()):
                    raise AssertionError(f"{k} is not lossless on {case} {name}")
                rows[k][0] += len(enc)
                rows[k][1] += t1 - t0
                rows[k][2] += t2 - t1
    return [{"codec": k, "ratio": raw / b, "enc_mb_s": raw / te / 1e6, "dec_mb_s": raw / td / 1e6,
             "zero_fraction": zeros / (raw / 4), "raw_mb": raw / 1e6} for k, (b, te, td) in rows.items()]


def run_case(case: str, mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", case, mode, "--n", str(args.n), "--batch-size", str(args.batch_size),
           "--tmp", args.tmp, "--codec-n", str(args.codec_n)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case}/{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1750)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--small", action="store_true", help="64 images (a quick check that the benchmark runs)")
    ap.add_argument("--codec-n", type=int, default=32, help="images whose activations the codec table uses")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="folder for the stores (on the disk to measure)")
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"))
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args(argv)
    if args.small:
        args.n, args.codec_n = min(args.n, 64), min(args.codec_n, 8)
    if args.worker:
        case, mode = args.worker
        if mode == "bare":
            out = worker_bare(case, args.n, args.batch_size)
        elif mode == "extract":
            out = worker_extract(case, args.n, args.batch_size, args.tmp)
        else:
            out = worker_codecs(case, args.codec_n, args.batch_size)
        print(json.dumps(out))
        return 0
    if not _zip_path().is_file():
        print(f"skipped: {_zip_path()} not found (set BRAINLIKE_DATA_MIRROR)")
        return 0
    import torch

    print(f"feature extraction, {args.n} vim-1 images, batch {args.batch_size}, {torch.get_num_threads()} torch "
          f"threads, {os.cpu_count()} cores, stores in {args.tmp}")
    head = (f"{'model':19s} {'bare s':>7s} {'write s':>8s} {'bound s':>8s} {'extract s':>9s} {'/bare':>6s} "
            f"{'/bound':>7s} {'raw GB':>7s} {'stored GB':>9s} {'raw write s':>11s} {'CPU /bare':>9s} {'RSS MB':>7s}")
    print(head)
    print("-" * len(head))
    ok = True
    results = {}
    for case in args.cases:
        bare = run_case(case, "bare", args)
        ext = run_case(case, "extract", args)
        results[case] = (bare, ext)
        bound = max(bare["seconds"], ext["write_stored_seconds"])
        ok &= ext["seconds"] <= 1.25 * bound
        print(f"{case:19s} {bare['seconds']:7.1f} {ext['write_stored_seconds']:8.1f} {bound:8.1f} "
              f"{ext['seconds']:9.1f} {ext['seconds'] / bare['seconds']:6.2f} {ext['seconds'] / bound:7.2f} "
              f"{ext['raw_bytes'] / 1e9:7.2f} {ext['stored_bytes'] / 1e9:9.2f} {ext['write_raw_seconds']:11.1f} "
              f"{ext['cpu_seconds'] / bare['cpu_seconds']:9.2f} {ext['peak_rss_mb']:7.0f}")
    print("bound = max(bare forward, synced write of the stored bytes); raw write = the synced write of the "
          "uncompressed features (the bound without the codec); goal: extract <= 1.25 x bound")
    print("\nintegrity, as a fraction of the extraction time (goal: each < 5 %)")
    print(f"{'model':19s} {'checksums on write':>19s} {'check on open':>14s} {'verify (every checksum)':>24s} "
          f"{'read back s':>12s}")
    for case, (_bare, ext) in results.items():
        fr = {k: 100 * ext[k] / ext["seconds"] for k in ("checksum_seconds", "open_seconds", "verify_seconds")}
        ok &= max(fr.values()) < 5
        print(f"{case:19s} {fr['checksum_seconds']:18.2f}% {fr['open_seconds']:13.2f}% "
              f"{fr['verify_seconds']:23.2f}% {ext['read_seconds']:12.1f}")
    print(f"\ncodecs on the activations of the first {args.codec_n} images (one thread; all bitwise lossless)")
    print(f"{'model':19s} {'codec':22s} {'ratio':>6s} {'encode MB/s':>12s} {'decode MB/s':>12s}")
    for case in args.cases:
        rows = run_case(case, "codecs", args)
        print(f"{case:19s} (raw {rows[0]['raw_mb']:.0f} MB, {100 * rows[0]['zero_fraction']:.0f} % zeros)")
        for r in rows:
            print(f"{'':19s} {r['codec']:22s} {r['ratio']:6.2f} {r['enc_mb_s']:12.0f} {r['dec_mb_s']:12.0f}")
    print("\ngoals met" if ok else "\ngoal NOT met for at least one figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
