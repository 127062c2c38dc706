"""fwRF, GNet and plain ridge on the macaque V4 data of Cowley et al. (2023), session by session.

Each recording session acts as a subject. Accuracy is the out-of-fold Pearson r per neuron
(k-fold over images): FWRF on EfficientNet-Lite0 feature maps of several blocks, a GNet trained
jointly on all sessions (shared trunk on the frozen EfficientNet-Lite0 stem + first blocks,
session-specific readouts), and ridge on the flattened features of each block (the best block
reported, as a linear baseline).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._zscore import train_stats
from brainlike.folds import kfold
from brainlike.encoding.fwrf import FWRF, column_score, rf_grid
from brainlike.encoding.gnet import GNet, cross_validate_gnet, efficientnet_prefilter

DEFAULT_BLOCKS = ("block2", "block4", "block7", "block10", "block14")


def _log(progress, msg):
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _ridge_oof(X, Y, folds, alphas):
    from sklearn.linear_model import RidgeCV

    pred = np.zeros_like(Y, dtype=np.float64)
    for test in folds:
        train = np.setdiff1d(np.arange(len(Y)), test)
        st = train_stats(X[train], what="features", level=logging.DEBUG)
        model = RidgeCV(alphas=alphas, alpha_per_target=True).fit(st.apply(X[train]), Y[train])
        pred[test] = model.predict(st.apply(X[test]))
    return column_score(Y, pred, "pearson")


def cowley_v4_comparison(
    sessions=("190923", "201025", "210225"),
    *,
    n_images: int | None = None,
    n_folds: int = 5,
    blocks=DEFAULT_BLOCKS,
    candidates=None,
    lambdas=np.logspace(0, 6, 9),
    ridge_alphas=np.logspace(0, 7, 8),
    gnet_params: dict | None = None,
    prefilter_blocks: int = 5,
    pretrained: bool = True,
    image_size: int = 112,
    run=("fwrf", "gnet", "ridge"),
    seed: int = 0,
    out_dir=None,
    progress: bool = True,
):
    """Cross-validated accuracy per neuron and per session for FWRF, GNet8j and ridge.

    Images are shown to the network at ``image_size`` (112 = the recorded images' own size).
    Returns ``(summary, per_neuron)``: ``summary`` one row per (session, model) with mean and
    median r (ridge: the best block by mean r, named in ``detail``); ``per_neuron`` a tidy table.
    With ``out_dir`` both tables (CSV) and a comparison figure are written there.
    """
    from brainlike import datasets, features, models

    unknown = set(run) - {"fwrf", "gnet", "ridge"}
    if unknown:
        raise ValueError(f"run must name models among ['fwrf', 'gnet', 'ridge']; got {sorted(unknown)}")
    cand = rf_grid(n_sizes=6, min_spacing=2.0) if candidates is None else candidates
    data = {}
    for s in sessions:
        bd = datasets.load("cowley2023_v4", session=s)
        n = bd.n_samples if n_images is None else min(n_images, bd.n_samples)
        stim = bd.stimuli.subset(list(bd.stimulus_ids[:n]))  # the image of each response row, by id
        data[s] = (np.asarray(bd.responses[:n], dtype=np.float32), stim)
        _log(progress, f"[cowley] session {s}: {n} images x {bd.n_voxels} neurons")
    rows = []
    per_neuron = []
    net = None
    if "fwrf" in run or "ridge" in run:
        base = models.load("efficientnet_lite0", pretrained=pretrained)
        pre = base.preprocess
        if image_size is not None and tuple(pre.size) != (image_size, image_size):
            pre = type(pre)(image_size, mean=pre.mean, std=pre.std, interpolation=pre.interpolation)
        net = models.wrap(base.module, pre, f"efficientnet_lite0@{image_size}", aliases=base.aliases,
                          pretrained=pretrained, input_size=image_size)

    def record(session, model, r, detail=""):
        per_neuron.append(pd.DataFrame({"session": session, "model": model, "neuron": np.arange(r.size), "r": r}))
        rows.append({"session": session, "model": model, "detail": detail, "n_neurons": r.size,
                     "mean_r": float(np.nanmean(r)), "median_r": float(np.nanmedian(r))})

    if "fwrf" in run or "ridge" in run:
        for s, (Y, stim) in data.items():
            t0 = time.time()
            fs = features.extract(net, stim, list(blocks), progress=False)
            maps = [np.ascontiguousarray(fs[b].maps(), dtype=np.float32) for b in blocks]
            _log(progress, f"[cowley] {s}: features {[m.shape[1:] for m in maps]} in {time.time() - t0:.0f}s")
            folds = [test for _, test in kfold(len(Y), n_folds, seed=seed, name="n_folds")]
            if "fwrf" in run:
                t0 = time.time()
                pred = np.zeros_like(Y)
                for k, test in enumerate(folds):
                    train = np.setdiff1d(np.arange(len(Y)), test)
                    model = FWRF(cand, alphas=lambdas, holdout=0.1, random_state=seed + k)
                    model.fit([m[train] for m in maps], Y[train])
                    pred[test] = model.predict([m[test] for m in maps])
                r = column_score(Y, pred, "pearson")
                record(s, "fwRF (EfficientNet-Lite0)", r, f"{len(blocks)} blocks, {len(cand)} fields")
                _log(progress, f"[cowley] {s}: fwRF mean r {np.nanmean(r):.3f} ({time.time() - t0:.0f}s)")
            if "ridge" in run:
                t0 = time.time()
                best = None
                for b, m in zip(blocks, maps):
                    r = _ridge_oof(m.reshape(len(m), -1), Y, folds, ridge_alphas)
                    _log(progress, f"[cowley] {s}: ridge {b} mean r {np.nanmean(r):.3f}")
                    if best is None or np.nanmean(r) > np.nanmean(best[1]):
                        best = (b, r)
                record(s, "ridge (best block)", best[1], best[0])
                _log(progress, f"[cowley] {s}: ridge done ({time.time() - t0:.0f}s)")
            del maps, fs

    if "gnet" in run:
        t0 = time.time()
        prefilter = efficientnet_prefilter(n_blocks=prefilter_blocks, pretrained=pretrained, image_size=image_size)
        opts = dict(width=8, batch_size=32, max_epochs=30, patience=5, lr=3e-3, alpha=1e-4, dropout=0.25, device=None,
                    random_state=seed, progress=progress, n_threads=1)
        opts.update(gnet_params or {})
        images = np.concatenate([stim.array() for _, stim in data.values()])
        offsets = np.cumsum([0] + [len(stim) for _, stim in data.values()])
        responses = {s: Y for s, (Y, _) in data.items()}
        index = {s: np.arange(offsets[k], offsets[k + 1]) for k, s in enumerate(data)}
        r = cross_validate_gnet(lambda: GNet(prefilter, **opts), images, responses, image_index=index,
                                n_folds=n_folds, seed=seed)
        for s in data:
            record(s, "GNet8j (sessions as subjects)", r[s], f"EfficientNet-Lite0[:{prefilter_blocks}] + trunk w={opts['width']}")
        _log(progress, f"[cowley] GNet8j done ({time.time() - t0:.0f}s)")

    summary = pd.DataFrame(rows)
    detail = pd.concat(per_neuron, ignore_index=True)
    if out_dir is not None:
        from brainlike.encoding.analyses import plot_comparison

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary.to_csv(out / "cowley_v4_summary.csv", index=False)
        detail.to_csv(out / "cowley_v4_per_neuron.csv", index=False)
        acc = {m: {s: g.r.to_numpy() for s, g in detail[detail.model == m].groupby("session", sort=False)}
               for m in detail.model.unique()}
        plot_comparison(acc, out / "cowley_v4_comparison.png", title="Macaque V4 (Cowley 2023): out-of-fold r")
    return summary, detail


def main(argv=None):
    """``python -m brainlike.encoding.cowley --n-images 500 --out cowley-encoding``."""
    import argparse

    ap = argparse.ArgumentParser(description="fwRF / GNet8j / ridge on Cowley et al. (2023) V4 sessions")
    ap.add_argument("--sessions", nargs="+", default=["190923", "201025", "210225"])
    ap.add_argument("--n-images", type=int, default=None)
    ap.add_argument("--n-folds", type=int, default=5)
    ap.add_argument("--blocks", nargs="+", default=["block4", "block7", "block10"])
    ap.add_argument("--gnet-epochs", type=int, default=30)
    ap.add_argument("--gnet-width", type=int, default=8)
    ap.add_argument("--run", nargs="+", default=["fwrf", "gnet", "ridge"])
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS/torch threads (1 on a busy machine)")
    ap.add_argument("--out", default="cowley-encoding")
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    summary, _ = cowley_v4_comparison(
        sessions=tuple(args.sessions), n_images=args.n_images, n_folds=args.n_folds, blocks=tuple(args.blocks),
        candidates=rf_grid(n_sizes=3, min_spacing=2.0), run=tuple(args.run),
        gnet_params=dict(width=args.gnet_width, max_epochs=args.gnet_epochs, patience=5, lr=3e-3), out_dir=args.out)
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
