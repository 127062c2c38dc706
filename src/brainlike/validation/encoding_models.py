"""fwRF, GNet and ridge on the macaque V4 data of Cowley et al. (2023), on the same folds.

Each recording session acts as a subject. For every session the images are split once into k
folds (``brainlike.folds.kfold``); the three encoding models are fitted on the
same training folds and scored on the same held-out folds (out-of-fold Pearson r per neuron):

- fwRF on the feature maps of the scored layers (one Gaussian pooling field per neuron);
- ridge (``brainlike.linear.RidgeCV``, per-neuron alpha by inner CV) on the flattened features of
  each layer, z-scored with the training folds' statistics; the best layer is reported;
- GNet8j trained jointly on all sessions: a trainable trunk on the frozen network up to
  ``gnet_layer``, session-specific readouts.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.ids import align
from brainlike.validation._benchmark import Benchmark
from brainlike.validation._common import BenchmarkResult, at_least, networks, network_layers, within

__all__ = ["V4EncodingModels", "layer_prefilter"]

MODELS = ("fwrf", "gnet", "ridge")
SOURCE = "docs/validation.md (earlier run: first 500 images, 5 folds, blocks 4/7/10, GNet 30 epochs)"


class _Stop(Exception):
    """Raised by the hook once the prefilter's last layer has run (the rest of the network is skipped)."""


def layer_prefilter(model, layer: str, image_size=None):
    """GNet prefilter: the frozen network ``model`` from its input up to ``layer`` (output: feature maps).

    ``image_size``: images are resized to it first (None keeps their own size).
    """
    import torch

    from brainlike.encoding.gnet import ImagePreprocess, make_prefilter
    from brainlike.models import resolve_layers

    path = resolve_layers(model, [layer])[0]
    target = model.module.get_submodule(path)

    class UpTo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.module

        def forward(self, x):
            box = {}

            def hook(_mod, _inp, out):
                box["out"] = out
                raise _Stop

            handle = target.register_forward_hook(hook)
            try:
                self.net(x)
            except _Stop:
                pass
            finally:
                handle.remove()
            out = box.get("out")
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                raise ValueError(f"gnet_layer {layer!r} of {model.name!r} must give feature maps (N, C, H, W); "
                                 f"got {None if out is None else tuple(getattr(out, 'shape', ()))}")
            return out

    pre = model.preprocess
    return make_prefilter(UpTo(), ImagePreprocess(pre.mean, pre.std, image_size), f"{model.name}[:{layer}]")


def _at_size(net, image_size):
    """The network shown images at ``image_size`` (the recorded images' own 112 px by default)."""
    from brainlike import models

    pre = net.preprocess
    if image_size is None or not isinstance(pre, models.Preprocess) or tuple(pre.size) == (image_size, image_size):
        return net
    pre = models.Preprocess(image_size, mean=pre.mean, std=pre.std, interpolation=pre.interpolation)
    return models.wrap(net.module, pre, f"{net.name}@{image_size}", aliases=net.aliases, pretrained=net.pretrained,
                       input_size=image_size)


def ridge_out_of_fold(X, Y, folds, alphas, inner_cv: int = 5):
    """Out-of-fold predictions of ``brainlike.linear.RidgeCV`` (per-target alpha), X z-scored per training fold
    (``brainlike._zscore``, ddof 0)."""
    from brainlike._zscore import zscore
    from brainlike.linear import RidgeCV

    pred = np.zeros(Y.shape, dtype=np.float64)
    for train, test in folds:
        Xtr, Xte = zscore(X[train], X[test], ddof=0, what="ridge features")
        model = RidgeCV(alphas=alphas, cv=inner_cv, alpha_per_target=True).fit(Xtr, Y[train])
        pred[test] = model.predict(Xte)
    return pred


class V4EncodingModels(Benchmark):
    """fwRF, GNet8j and ridge per V4 session on the same folds (see the module doc)."""

    name = "v4-encoding-models"
    data = "Cowley et al. 2023 V4, sessions 190923 (33 neurons), 201025 (89), 210225 (55); the first n_images each"
    metric = "out-of-fold Pearson r per neuron (k-fold over images, the same folds for every model); mean over neurons"
    ceiling = "none (see v4-cowley2023 for the noise ceiling)"
    reference = {f"{s} {m}: mean r": v for s, m, v in [
        ("190923", "fwRF", 0.462), ("190923", "GNet8j", 0.508), ("190923", "ridge (best layer)", 0.529),
        ("201025", "fwRF", 0.476), ("201025", "GNet8j", 0.455), ("201025", "ridge (best layer)", 0.502),
        ("210225", "fwRF", 0.385), ("210225", "GNet8j", 0.407), ("210225", "ridge (best layer)", 0.429)]}
    reference_source = SOURCE
    default_layers = ("block4", "block7", "block10")

    def run(self, model, layers, *, weights, seed, default, sessions=("190923", "201025", "210225"), n_images=500,
            n_folds=5, run=MODELS, candidates=None, fwrf_alphas=tuple(np.logspace(0, 6, 9)),
            ridge_alphas=tuple(np.logspace(0, 7, 8)), inner_cv=5, gnet_layer=None, gnet_params=None,
            image_size=112, out_dir=None, store=None, batch_size=32, progress=None):
        from brainlike import datasets
        from brainlike.encoding.fwrf import rf_grid
        from brainlike.features import extract
        from brainlike.folds import kfold

        run = tuple(run)
        unknown = sorted(set(run) - set(MODELS))
        if unknown or not run:
            raise ValueError(f"run must name models among {list(MODELS)}; got {unknown or 'none'}")
        if layers is None and isinstance(model, str) and model == "efficientnet_lite0":
            layers = self.default_layers
        cand = rf_grid(n_sizes=3, min_spacing=2.0) if candidates is None else candidates
        data = {}
        for s in map(str, sessions):
            bd = datasets.load("cowley2023_v4", session=s)
            ids = list(dict.fromkeys(str(i) for i in bd.stimulus_ids))
            ids = ids if n_images is None else ids[:int(n_images)]
            rows = align(bd.stimulus_ids, ids, source=f"session {s} responses", wanted="the chosen images")
            Y = np.asarray(bd.responses, dtype=np.float32)[rows]
            folds = kfold(len(ids), n_folds, seed=seed, name="n_folds", unit="images")
            data[s] = (ids, Y, bd.stimuli.subset(ids), folds)
            if progress:
                progress(f"session {s}: {len(ids)} images x {Y.shape[1]} neurons")
        rows_out, per_neuron, timings = [], [], {}

        def record(session, w, method, r, detail=""):
            per_neuron.append(pd.DataFrame({"session": session, "weights": w, "model": method,
                                            "neuron": np.arange(r.size), "r": r}))
            rows_out.append({"session": session, "weights": w, "model": method, "detail": detail, "n_neurons": r.size,
                             "n_nan": int(np.isnan(r).sum()), "mean_r": float(np.nanmean(r)),
                             "median_r": float(np.nanmedian(r))})

        for w, net0, _ in networks(model, weights, seed):
            net = _at_size(net0, image_size)
            labels = network_layers(net, layers)
            t = time.perf_counter()
            if "fwrf" in run or "ridge" in run:
                for s, (ids, Y, stim, folds) in data.items():
                    sub_store = None if store is None else Path(store) / f"{s}_{w}"
                    fs = extract(net, stim, labels, store=sub_store, batch_size=batch_size, progress=False)
                    maps = [np.ascontiguousarray(fs[b].maps()[align(fs[b].ids, ids, source=f"features of {b!r}",
                                                                    wanted="the responses")], dtype=np.float32)
                            for b in labels]
                    if "fwrf" in run:
                        r = self._fwrf(maps, Y, folds, cand, fwrf_alphas, seed)
                        record(s, w, "fwRF", r, f"{len(labels)} layers, {len(cand)} fields")
                    if "ridge" in run:
                        best = None
                        for b, m in zip(labels, maps):
                            r = _pearson(Y, ridge_out_of_fold(m.reshape(len(m), -1), Y, folds, ridge_alphas, inner_cv))
                            if progress:
                                progress(f"{s} {w}: ridge {b} mean r {np.nanmean(r):.3f}")
                            if best is None or np.nanmean(r) > np.nanmean(best[1]):
                                best = (b, r)
                        record(s, w, "ridge (best layer)", best[1], best[0])
                    del maps, fs
            if "gnet" in run:
                glayer = gnet_layer or ("block4" if layers == self.default_layers else labels[0])
                r = self._gnet(layer_prefilter(net, glayer, image_size), data, n_folds, seed, gnet_params, progress)
                for s in data:
                    record(s, w, "GNet8j", r[s], f"{net0.name}[:{glayer}] + trunk")
            timings[w] = round(time.perf_counter() - t, 1)
        table = pd.DataFrame(rows_out)
        detail = pd.concat(per_neuron, ignore_index=True)
        standard = default and n_images == 500 and n_folds == 5
        why = "figure measured on EfficientNet-Lite0's blocks 4, 7, 10" if not default else \
            "reference measured on the first 500 images with 5 folds"
        exps = []
        for _, row in table.iterrows():
            key = f"{row['session']} {row['model']}: mean r"
            if row["weights"] == "pretrained" and key in self.reference:
                exps.append(within(f"{row['session']} {row['model']}: mean r over neurons", row["mean_r"],
                                   self.reference[key], 0.05, judged=standard, why=why, source=SOURCE))
        for (s, w), d in table.groupby(["session", "weights"], sort=False):  # network-independent
            if w == "pretrained":
                exps.append(at_least(f"{s} pretrained: lowest mean r over models (stimulus-driven signal)",
                                     float(d["mean_r"].min()), 0.0))
        figures = []
        if out_dir is not None:
            figures = [self._figure(detail, Path(out_dir), getattr(model, "name", model))]
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            from brainlike._io import atomic_write

            atomic_write(out / "per_neuron.csv", lambda p: detail.to_csv(p, index=False))
        info = dict(sessions=list(data), n_images=n_images,
                    folds=f"{n_folds}-fold over images (brainlike.folds.kfold, seed {seed}), the same for every model",
                    models=list(run), image_size=image_size,
                    ridge=f"brainlike.linear.RidgeCV(alphas={len(ridge_alphas)} values, cv={inner_cv}, per neuron)",
                    timings=timings)
        result = BenchmarkResult(self.name, table, exps, figures, info)
        result.per_neuron = detail
        return result

    @staticmethod
    def _fwrf(maps, Y, folds, cand, alphas, seed):
        from brainlike.encoding.fwrf import FWRF

        pred = np.zeros_like(Y)
        for k, (train, test) in enumerate(folds):
            model = FWRF(cand, alphas=np.asarray(alphas), holdout=0.1, random_state=seed + k)
            model.fit([m[train] for m in maps], Y[train])
            pred[test] = model.predict([m[test] for m in maps])
        return _pearson(Y, pred)

    @staticmethod
    def _gnet(prefilter, data, n_folds, seed, gnet_params, progress):
        from brainlike.encoding.gnet import GNet, PrefilteredImages

        opts = dict(width=8, batch_size=32, max_epochs=30, patience=5, lr=3e-3, alpha=1e-4, dropout=0.25, device=None,
                    random_state=seed, progress=bool(progress), n_threads=1)
        opts.update(gnet_params or {})
        images = np.concatenate([stim.array() for _, _, stim, _ in data.values()])
        offsets = np.cumsum([0] + [len(ids) for ids, _, _, _ in data.values()])
        index = {s: np.arange(offsets[k], offsets[k + 1]) for k, s in enumerate(data)}
        pre = GNet(prefilter, **opts).prefilter_images(images)
        preds = {s: np.zeros_like(Y) for s, (_, Y, _, _) in data.items()}
        for f in range(n_folds):  # the folds of every session, fold f held out in all sessions at once
            train = {s: np.setdiff1d(np.arange(len(ids)), folds[f][1]) for s, (ids, _, _, folds) in data.items()}
            model = GNet(prefilter, **opts)
            model.fit(pre, {s: data[s][1][train[s]] for s in data}, image_index={s: index[s][train[s]] for s in data})
            for s, (_, _, _, folds) in data.items():
                test = folds[f][1]
                preds[s][test] = model.predict(PrefilteredImages(pre.maps[index[s][test]]), subject=s)
        return {s: _pearson(data[s][1], preds[s]) for s in data}

    @staticmethod
    def _figure(detail, out: Path, network) -> Path:
        from brainlike.encoding.analyses import plot_comparison

        acc = {f"{m} ({w})": {s: g.r.to_numpy() for s, g in d.groupby("session", sort=False)}
               for (m, w), d in detail.groupby(["model", "weights"], sort=False)}
        return plot_comparison(acc, out / "v4_encoding_models.png", title=f"Macaque V4 (Cowley 2023), {network}: "
                               "out-of-fold r on the same folds")

    def summary(self, table):
        return {f"{r['session']} {r['model']}{'' if r['weights'] == 'pretrained' else ' (random weights)'}: mean r":
                float(r["mean_r"]) for _, r in table.iterrows()}


def _pearson(Y, pred):
    from brainlike.encoding.fwrf import column_score

    return column_score(Y, pred, "pearson")
