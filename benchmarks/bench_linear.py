"""Regression engine vs its peers, same synthetic data, same machine, one run (`make bench`).

1. Decoding at BHscore's shape: 6000 samples x 10,000 voxels -> 2,000 units, n_feat=500,
   alpha=100, float32: ``SelectiveRidge`` vs ``fastl2lir.FastL2LiR`` (0.11, its default float64,
   one chunk = one Gram, its most favourable setting). FastL2LiR is timed on a subset of units; its
   fixed part (the Gram) is counted as it is and its per-unit parts (correlations, per-unit loop),
   timed in the same run, are scaled to all units. The goal (>= 10x) is judged per 1,000 units,
   the measure FastL2LiR's cost is quoted in (a network is decoded in unit chunks: FastL2LiR
   rebuilds its Gram for each, brainlike builds it once per ROI); the ratio of one 2,000-unit fit
   is printed too, with the cap that the FLOP bound puts on it.
2. Encoding with per-target alpha: 6000 samples x 43,264 features -> 4,000 voxels, 5 folds x 10
   alphas: ``RidgeCV`` vs himalaya ``RidgeCV`` (svd) / ``KernelRidgeCV`` (eigenvalues), numpy
   backend, scored with R² like ours, and scikit-learn's ``RidgeCV`` both ways it can run: with
   ``cv=5`` (a grid search of ``Ridge`` fits, one alpha for all targets; one fit timed and scaled by
   the 51 fits) and with ``alpha_per_target=True`` (only with leave-one-out CV: another protocol,
   its alphas are not expected to be equal). The goal (>= 3x) is judged against the fastest 5-fold
   peer; a peer that is too slow is timed on the first targets only (its full time is at least
   that: the ratio is a lower bound) and stopped at a time limit (reported as "> limit").

Each row runs in its own process (clean peak-memory figure: peak RSS sampled every 20 ms, and the
part above the input data). Usage: python benchmarks/bench_linear.py [--small] [--only decoding|encoding]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import gemm_gflops
from _memory import PeakRSS

SIZES = {
    "full": dict(dec=(6000, 10000, 2000, 50, 500), enc=(6000, 43264, 4000, 200), fl_units=400,
                 peer_targets=dict(himalaya_ridgecv=4000, himalaya_kernelridgecv=4000, sklearn_ridgecv=4000,
                                  sklearn_ridgecv_kfold=4000),
                 limit=600, own_limit=1800),
    "small": dict(dec=(1000, 2000, 300, 50, 100), enc=(800, 4000, 400, 50), fl_units=60,
                  peer_targets=dict(himalaya_ridgecv=400, himalaya_kernelridgecv=400, sklearn_ridgecv=400,
                                  sklearn_ridgecv_kfold=400),
                  limit=120, own_limit=600),
}
ALPHA_DEC = 100.0
ALPHAS_ENC = np.logspace(0, 6, 10)


# ----------------------------------------------------------------------------- data


def decoding_data(n, p, t, n_test, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p), dtype=np.float32) + 2 * rng.random(p, dtype=np.float32)
    q = min(1000, p)
    Y = X[:, :q] @ (rng.standard_normal((q, t), dtype=np.float32) / np.float32(np.sqrt(q)))
    Y += 2 * rng.standard_normal(Y.shape, dtype=np.float32)
    return X[:n], Y[:n], X[n:]


def encoding_data(n, p, t, n_test, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p), dtype=np.float32)
    q = min(1000, p)
    gain = np.logspace(-1.5, 0.5, t).astype(np.float32)  # a spread of SNRs -> a spread of best alphas
    Y = X[:, :q] @ (rng.standard_normal((q, t), dtype=np.float32) / np.float32(np.sqrt(q))) * gain
    Y += rng.standard_normal(Y.shape, dtype=np.float32) + 1.0
    return X[:n], Y[:n], X[n:]


# ----------------------------------------------------------------------------- child rows


def quiet():
    return contextlib.redirect_stderr(io.StringIO())


def row_decode_ours(cfg, targets, out):
    from brainlike.linear import SelectiveRidge

    from brainlike._backend import NumpyBackend

    n, p, t, nt, k = cfg["dec"]
    X, Y, Xt = decoding_data(n, p, t, nt)
    t0 = time.perf_counter()  # the compiled gather kernel loads once per process (numba's cache)
    SelectiveRidge(alpha=ALPHA_DEC, n_feat=2).fit(X[:20, :8], Y[:20, :2])
    warm = time.perf_counter() - t0
    spent = {"gram": 0.0}
    gram = NumpyBackend.gram

    def timed_gram(self, a):
        t0 = time.perf_counter()
        try:
            return gram(self, a)
        finally:
            spent["gram"] += time.perf_counter() - t0

    NumpyBackend.gram = timed_gram  # only to split the time into Gram + per unit; same code path
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        m = SelectiveRidge(alpha=ALPHA_DEC, n_feat=k).fit(X, Y)
        fit = time.perf_counter() - t0
        pred = m.predict(Xt)
        dt = time.perf_counter() - t0
    gram_t = spent["gram"]
    # The per-unit cost, as when a network is decoded chunk by chunk from one ROI: the inputs are
    # prepared and their Gram built once (a 1-unit fit), then all units are fitted on them.
    est = SelectiveRidge(alpha=ALPHA_DEC, n_feat=k)
    inputs = est.prepare(X)
    est.fit(inputs, Y[:, :1])
    t0 = time.perf_counter()
    est.fit(inputs, Y)
    per_unit = (time.perf_counter() - t0) / t
    np.savez(out, pred=pred, selected=m.selected_)
    return dict(time=dt, peak=mem.peak, extra=mem.peak - mem.base, targets=t, gram=gram_t,
                fixed=fit - per_unit * t, per_unit=per_unit, warm=warm)


def row_decode_fastl2lir(cfg, targets, out):
    """Time FastL2LiR on a subset of units; extrapolate its per-unit loop, count the rest once.

    Its per-unit Python loop (timed inside the run by wrapping the loop's ``tqdm``) is scaled to all
    units; everything else — the Gram ``[X 1]^T [X 1] + alpha I`` (one per chunk; one chunk here)
    and the correlation matrix, whose GEMM does grow with the units — is counted as measured on the
    subset, so the extrapolated time (and the ratio) is a lower bound.
    """
    import fastl2lir.fastl2lir as fl

    n, p, t, nt, k = cfg["dec"]
    u = cfg["fl_units"]
    X, Y, Xt = decoding_data(n, p, t, nt)
    spent = {"loop": 0.0}
    def timed_tqdm(iterable, *a, **kw):
        t0 = time.perf_counter()
        yield from iterable
        spent["loop"] += time.perf_counter() - t0

    fl.tqdm = timed_tqdm
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = fl.FastL2LiR().fit(X, Y[:, :u], alpha=ALPHA_DEC, n_feat=k)
        fit = time.perf_counter() - t0
        pred = m.predict(Xt)
    selected = np.sort(np.argsort(-np.abs(m.W), axis=0)[:k].T, axis=1)
    np.savez(out, pred=pred, selected=selected)
    fixed = fit - spent["loop"]
    per_unit = spent["loop"] / u
    return dict(time=fixed + per_unit * t, measured=fit, units=u, per_unit=per_unit, fixed=fixed, peak=mem.peak, extra=mem.peak - mem.base, targets=t,
                extrapolated=True)


def row_encode_ours(cfg, targets, out, cv=5):
    from brainlike.linear import RidgeCV

    n, p, t, nt = cfg["enc"]
    X, Y, Xt = encoding_data(n, p, t, nt)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        m = RidgeCV(alphas=ALPHAS_ENC, cv=cv).fit(X, Y)
        pred = m.predict(Xt)
        dt = time.perf_counter() - t0
    np.savez(out, pred=pred, alphas=m.best_alphas_)
    return dict(time=dt, peak=mem.peak, extra=mem.peak - mem.base, targets=t)


def row_encode_ours_loo(cfg, targets, out):
    return row_encode_ours(cfg, targets, out, cv=None)


def _encode_peer(cfg, targets, out, make):
    n, p, t, nt = cfg["enc"]
    X, Y, Xt = encoding_data(n, p, t, nt)
    Y = np.ascontiguousarray(Y[:, :targets])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = make().fit(X, Y)
            pred = np.asarray(m.predict(Xt))
        dt = time.perf_counter() - t0
    best = getattr(m, "best_alphas_", getattr(m, "alpha_", None))
    if best is None:  # himalaya's KernelRidgeCV keeps only the dual weights
        np.savez(out, pred=pred)
    else:
        np.savez(out, pred=pred, alphas=np.broadcast_to(np.asarray(best, dtype=np.float64), (targets,)))
    return dict(time=dt, peak=mem.peak, extra=mem.peak - mem.base, targets=targets)


def row_encode_himalaya_ridgecv(cfg, targets, out):
    import himalaya.backend
    import himalaya.ridge
    from himalaya.scoring import r2_score

    himalaya.backend.set_backend("numpy", on_error="raise")
    return _encode_peer(cfg, targets, out, lambda: himalaya.ridge.RidgeCV(
        alphas=ALPHAS_ENC, cv=5, fit_intercept=True, solver_params=dict(score_func=r2_score)))


def row_encode_himalaya_kernelridgecv(cfg, targets, out):
    import himalaya.backend
    import himalaya.kernel_ridge
    from himalaya.scoring import r2_score

    himalaya.backend.set_backend("numpy", on_error="raise")
    return _encode_peer(cfg, targets, out, lambda: himalaya.kernel_ridge.KernelRidgeCV(
        alphas=ALPHAS_ENC, cv=5, fit_intercept=True, solver_params=dict(score_func=r2_score)))


def row_encode_sklearn_ridgecv(cfg, targets, out):
    from sklearn.linear_model import RidgeCV

    return _encode_peer(cfg, targets, out, lambda: RidgeCV(alphas=ALPHAS_ENC, alpha_per_target=True))


def row_encode_sklearn_ridgecv_kfold(cfg, targets, out):
    """scikit-learn's ``RidgeCV(cv=5)``: a grid search refitting ``Ridge`` for each of the 10 alphas on
    each of the 5 folds (one alpha shared by all targets; per-target alphas need leave-one-out), then
    once on all samples. The 51 fits cost the same (the kernel of the fold dominates): one fit is
    timed and scaled by 51 (a lower bound: the final fit has more samples)."""
    from sklearn.linear_model import Ridge

    n, p, t, nt = cfg["enc"]
    X, Y, Xt = encoding_data(n, p, t, nt)
    Y = np.ascontiguousarray(Y[:, :targets])
    n_tr = n * 4 // 5
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        m = Ridge(alpha=float(ALPHAS_ENC[4])).fit(X[:n_tr], Y[:n_tr])
        m.score(X[n_tr:], Y[n_tr:])
        one = time.perf_counter() - t0
        pred = m.predict(Xt)
    np.savez(out, one_fit_pred=pred)
    fits = 5 * ALPHAS_ENC.size + 1
    return dict(time=one * fits, measured=one, fits=fits, peak=mem.peak, extra=mem.peak - mem.base, targets=targets,
                extrapolated=True)


ROWS = {
    "decoding": [("SelectiveRidge (brainlike)", "decode_ours", None),
                 ("FastL2LiR 0.11", "decode_fastl2lir", None)],
    "encoding": [("RidgeCV (brainlike)", "encode_ours", None),
                 ("himalaya RidgeCV", "encode_himalaya_ridgecv", "himalaya_ridgecv"),
                 ("himalaya KernelRidgeCV", "encode_himalaya_kernelridgecv", "himalaya_kernelridgecv"),
                 ("sklearn RidgeCV(cv=5)", "encode_sklearn_ridgecv_kfold", "sklearn_ridgecv_kfold"),
                 ("RidgeCV(cv=None) (brainlike LOO)", "encode_ours_loo", None),
                 ("sklearn RidgeCV (LOO)", "encode_sklearn_ridgecv", "sklearn_ridgecv")],
}


# ----------------------------------------------------------------------------- parent


def flops_decoding(n, p, t, k):
    return n * p * p + 2 * n * p * t + t * (k**3 / 3 + 4 * k * k)


def flops_encoding(n, p, t, n_alphas=10, folds=5):
    ntr, nte = n * (folds - 1) // folds, n // folds
    eig = 4.0  # ~4 n^3 for a symmetric eigendecomposition with eigenvectors (divide and conquer)
    per_fold = eig * ntr**3 + 2 * nte * ntr * ntr + 2 * ntr * ntr * t + n_alphas * 2 * nte * ntr * t
    return n * n * p + folds * per_fold + eig * n**3 + 4 * n * n * t


def run_row(name, size, targets, limit, tmp):
    out = Path(tmp) / f"{name}.npz"
    cmd = [sys.executable, __file__, "--row", name, "--size", size, "--out", str(out)]
    if targets:
        cmd += ["--targets", str(targets)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return dict(timeout=limit, time=time.perf_counter() - t0)
    if done.returncode != 0:
        return dict(error=done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"rc {done.returncode}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    info["arrays"] = dict(np.load(out))
    return info


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small shapes (a quick check, ~1 min)")
    ap.add_argument("--only", choices=["decoding", "encoding"])
    ap.add_argument("--row")
    ap.add_argument("--size", default="full")
    ap.add_argument("--targets", type=int)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.row:  # child
        info = globals()[f"row_{args.row}"](SIZES[args.size], args.targets, args.out)
        print(json.dumps(info))
        return 0

    size = "small" if args.small else "full"
    cfg = SIZES[size]
    gf = gemm_gflops(3000)
    print(f"bench_linear ({size}); float32 GEMM here now: {gf:.0f} GFLOP/s on {os.cpu_count()} cores "
          "(shared machine: figures vary, compare within this run)")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("decoding", "encoding"):
            if args.only and part != args.only:
                continue
            if part == "decoding":
                n, p, t, nt, k = cfg["dec"]
                bound = flops_decoding(n, p, t, k) / (gf * 1e9)
                print(f"\n[decoding] {n} x {p} voxels -> {t} units, n_feat={k}, alpha={ALPHA_DEC:g}, float32; "
                      f"FLOP bound {bound:.1f} s")
            else:
                n, p, t, nt = cfg["enc"]
                bound = flops_encoding(n, p, t) / (gf * 1e9)
                print(f"\n[encoding] {n} x {p} features -> {t} voxels, 5 folds x {ALPHAS_ENC.size} alphas, float32; "
                      f"FLOP bound {bound:.1f} s")
            print(f"{'method':28s} {'targets':>8s} {'time (s)':>12s} {'ratio':>8s} {'vs bound':>9s} "
                  f"{'peak RSS':>9s} {'above data':>10s}  agreement with brainlike")
            ours = ours_loo = fl = None
            same_protocol = {}  # label -> (ratio, is a lower bound) for peers run with the same CV protocol
            for label, row, key in ROWS[part]:
                targets = cfg["peer_targets"].get(key) if key else None
                info = run_row(row, size, targets, cfg["limit"] if key else cfg["own_limit"], tmp)
                if "error" in info:
                    print(f"{label:28s} failed: {info['error']}")
                    failed = failed or ours is None
                    continue
                if ours is None and "timeout" in info:
                    print(f"{label:28s} stopped at the time limit ({info['timeout']} s): no comparison possible")
                    failed = True
                    break
                if ours is not None and "brainlike" in label:  # brainlike's leave-one-out: reference of LOO peers
                    ours_loo = info
                    print(f"{label:28s} {info['targets']:8d} {info['time']:12.1f} {'1.0':>8s} {'':9s} "
                          f"{info['peak'] / 2**30:8.2f}G {info['extra'] / 2**30:9.2f}G  (reference of the LOO rows)")
                    continue
                if ours is None:
                    ours = info
                    print(f"{label:28s} {info['targets']:8d} {info['time']:12.1f} {'1.0':>8s} "
                          f"{info['time'] / bound:8.1f}x {info['peak'] / 2**30:8.2f}G {info['extra'] / 2**30:9.2f}G")
                    if "per_unit" in info:
                        print(f"{'':28s}   = {info['fixed']:.1f} s once (Gram {info['gram']:.1f} s, centring, checks) + "
                              f"{1000 * info['per_unit']:.2f} ms per unit (correlations, selection, gather, Cholesky; "
                              f"a fit of all {t} units on prepared inputs whose Gram is built); not counted: "
                              f"{info['warm']:.2f} s once per process to load the compiled kernel")
                    continue
                ref = ours_loo if ("LOO" in label and ours_loo is not None) else ours
                if "timeout" in info:
                    print(f"{label:28s} {targets:8d} {'> ' + str(info['timeout']):>12s} "
                          f"{'>= %.1f' % (info['timeout'] / ref['time']):>8s}   (stopped at the time limit)")
                    if "LOO" not in label:
                        same_protocol[label] = (info["timeout"] / ref["time"], True)
                    continue
                partial = info["targets"] < ref["targets"]
                ratio = info["time"] / ref["time"]
                tstr = f"{info['time']:.1f}" + ("*" if info.get("extrapolated") else "")
                rstr = (">= " if partial else "") + f"{ratio:.1f}"
                if "LOO" not in label:
                    same_protocol[label] = (ratio, partial)
                a, b = ref["arrays"], info["arrays"]
                u = b["pred"].shape[1] if "pred" in b else info["targets"]
                agree = f"pred rel. err {rel(a['pred'][:, :u], b['pred']):.1e}" if "pred" in b else "-"
                if "selected" in b:
                    same = np.all(a["selected"][:u] == b["selected"], axis=1)
                    agree += f" ({rel(a['pred'][:, :u][:, same], b['pred'][:, same]):.1e} where the same voxels are " \
                             f"selected: {same.mean():.1%} of units; the others differ by near-tied voxels)"
                if "alphas" in b:
                    agree += f", same alpha for {np.mean(np.isclose(a['alphas'][:u], b['alphas'], rtol=1e-3)):.1%} targets"
                print(f"{label:28s} {info['targets']:8d} {tstr:>12s} {rstr:>8s} {'':9s} "
                      f"{info['peak'] / 2**30:8.2f}G {info['extra'] / 2**30:9.2f}G  {agree}")
                if "per_unit" in info and "per_unit" in ours:
                    fl = info
                    per_1000 = [1000 * d["per_unit"] for d in (info, ours)]  # ms per unit = s per 1000 units
                    print(f"{'':28s}   per unit: {per_1000[0]:.1f} ms (its loop only) vs {per_1000[1]:.2f} ms "
                          f"(x{per_1000[0] / per_1000[1]:.1f}); whole AlexNet (650k units, 1000-unit chunks, one "
                          f"Gram per chunk for FastL2LiR, one in all for brainlike): "
                          f"{(650 * info['fixed'] + 650 * per_1000[0]) / 3600:.1f} h vs "
                          f"{(ours['fixed'] + 650 * per_1000[1]) / 3600:.2f} h")
                if info.get("extrapolated") and "fits" in info:
                    print(f"{'':28s} * one Ridge fit (4/5 of the samples, alpha {ALPHAS_ENC[4]:.3g}) + score measured: "
                          f"{info['measured']:.1f} s, x {info['fits']} fits of the grid search; its single alpha is "
                          "not comparable to per-target alphas (agreement with scikit-learn: tests/test_linear.py)")
                elif info.get("extrapolated"):
                    print(f"{'':28s} * fit measured on {info['units']} units: {info['measured']:.1f} s = "
                          f"{info['fixed']:.1f} s counted once (Gram, correlations) + {1000 * info['per_unit']:.1f} "
                          f"ms per unit in its loop, scaled to {info['targets']} units (a lower bound); "
                          f"memory for {info['units']} units")
            if part == "decoding" and same_protocol and fl is not None:
                label, (ratio, _) = min(same_protocol.items(), key=lambda kv: kv[1][0])
                fl_time = fl["time"]
                print(f"{'':28s} {t} units in one fit: {label} / brainlike = {ratio:.1f}; no implementation of "
                      f"this algorithm can exceed {fl_time / bound:.1f} here ({fl_time:.1f} s / FLOP bound "
                      f"{bound:.1f} s, of which the {p}-voxel Gram is {n * p * p / (gf * 1e9):.1f} s)")
                # The measure: per 1,000 units at this shape. FastL2LiR decodes a network in
                # chunks and rebuilds its Gram for each (its fixed part here, measured with fewer
                # units: a lower bound); brainlike builds it once per ROI (SelectiveRidge.prepare).
                fl_1000 = fl["fixed"] + 1000 * fl["per_unit"]
                ours_1000 = 1000 * ours["per_unit"]
                r1000 = fl_1000 / ours_1000
                print(f"{'':28s} per 1,000 units: {label} {fl_1000:.1f} s (a 1,000-unit fit: its Gram and "
                      f"correlations + loop) vs brainlike {ours_1000:.2f} s (Gram built once per ROI): ratio "
                      f"{r1000:.1f} (goal >= 10: {'met' if r1000 >= 10 else 'not met'})")
            elif part == "encoding" and same_protocol:
                label, (ratio, lower) = min(same_protocol.items(), key=lambda kv: kv[1][0])
                print(f"{'':28s} fastest peer with the same protocol: {label}, ratio {'>= ' if lower else ''}"
                      f"{ratio:.1f} (goal >= 3: {'met' if ratio >= 3 else 'not met'})")
    print("\nratio = peer time / brainlike time; '>=': the peer was timed on fewer targets than brainlike. "
          "vs bound = time / (FLOPs / GEMM rate measured above).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
