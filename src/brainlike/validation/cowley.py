"""V4 benchmarks on Cowley et al. (2023): layer-wise encoding of V4 neurons and decoding of DNN units.

``v4-cowley2023``: cross-validated ridge (per-neuron alpha) from each layer to every neuron of a
session; the profile of mean r over depth, pretrained vs random weights; on session 210325 (the
one with raw repeats) the scores are normalised by each neuron's noise ceiling.

``v4-decodability``: Horikawa et al. (2019)-style decodability: each layer's units are decoded from
the V4 population with ``SelectiveRidge`` (FastL2LiR), and the distribution of the per-unit
correlation between decoded and true activations is reported per layer, pretrained vs random.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.ids import align
from brainlike.validation._benchmark import Benchmark
from brainlike.validation._common import (
    BenchmarkResult,
    at_least,
    at_most,
    block_features,
    layer_depth,
    networks,
    subset_ids,
    verdict,
    within,
)

__all__ = ["V4Cowley2023", "V4Decodability", "load_session"]

SOURCE = "shared data SOURCES.md (EfficientNet-Lite0 blocks -> ridge -> 5-fold CV, session 190923)"
OTHER = "figure measured on EfficientNet-Lite0's blocks"


def load_session(session: str, n_images, seed: int, raw: bool = False):
    """The session's BrainData (repeat-averaged, or raw repeats) restricted to ``n_images`` images."""
    from brainlike import datasets

    opts = {"session": session}
    if raw:
        opts["raw"] = True
    data = datasets.load("cowley2023_v4", **opts)
    ids = list(dict.fromkeys(str(s) for s in data.stimulus_ids))
    keep = subset_ids(ids, n_images, seed)
    if len(keep) < len(ids):
        wanted = set(keep)
        data = data.select_samples(np.array([s in wanted for s in data.stimulus_ids]))
    stimuli = data.stimuli.subset(keep)
    return data, stimuli


def _inputs_key(model, stimuli, data) -> str:
    """Content key of a layer's inputs: the network's weights and preprocessing, every image's
    pixels and id (the feature store's own key), and every response with its stimulus id."""
    from brainlike._hash import ContentHasher

    h = ContentHasher().json([model.fingerprint(), stimuli.fingerprint()])
    return h.array(np.asarray(data.responses)).array(np.asarray(data.stimulus_ids)).hexdigest()


def _read_partial(out_dir, sig: str) -> dict:
    """Rows already finished in ``out_dir`` (partial.csv) with the same options, keyed by (session, weights, layer)."""
    if out_dir is None or not (Path(out_dir) / "partial.csv").is_file():
        return {}
    df = pd.read_csv(Path(out_dir) / "partial.csv", dtype={"session": str, "layer": str})
    df = df[df["options"] == sig]
    return {(r["session"], r["weights"], r["layer"]): r.to_dict() for _, r in df.iterrows()}


def _write_partial(out_dir, rows, sig: str) -> None:
    """Finished layers, written atomically after each one: a killed run keeps them and resumes."""
    if out_dir is None:
        return
    from brainlike._io import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = _read_partial(out_dir, sig)
    for r in rows:
        known[(str(r["session"]), r["weights"], r["layer"])] = r
    atomic_write(out / "partial.csv", lambda p: pd.DataFrame(list(known.values())).to_csv(p, index=False))


class V4Cowley2023(Benchmark):
    """Encoding profile over a network's layers for V4 neurons (see the module doc)."""

    name = "v4-cowley2023"
    data = ("Cowley et al. 2023 V4, session 190923 (33 neurons, 1200 images) and 210325 "
            "(50 neurons, 640 images, raw repeats)")
    metric = "5-fold CV ridge (per-neuron alpha, inner CV) per layer; mean Pearson r over neurons"
    ceiling = "per-neuron split-half reliability (Spearman-Brown) on 210325; r / ceiling"
    reference = {"190923 pretrained: peak mean r": 0.556, "190923 pretrained: relative depth of the peak": 7 / 15,
                 "190923 random: max mean r": 0.361, "210325 pretrained: peak mean r": 0.576, "210325 random: max mean r": 0.320,
                 "210325 pretrained: peak r / ceiling": 0.669, "210325: mean split-half reliability": 0.743}

    def run(self, model, layers, *, weights, seed, default, session="190923", ceiling_session="210325",
            n_images=None, cv=5, inner_cv=5, alphas="auto", standardize="all", out_dir=None, store=None,
            batch_size=32, progress=None):
        from brainlike.mapping import map_layers

        if ceiling_session and str(ceiling_session) == str(session):
            sessions = [(str(session), True)]
        else:
            sessions = [(str(session), False)] + ([(str(ceiling_session), True)] if ceiling_session else [])
        sig = f"n_images={n_images};cv={cv};inner_cv={inner_cv};alphas={alphas};standardize={standardize};seed={seed}"
        rows, timings, reliab = [], {}, {}
        for sess, raw in sessions:
            data, stimuli = load_session(sess, n_images, seed, raw=raw)
            for w, net, _ in networks(model, weights, seed):
                t = time.perf_counter()
                sub_store = None if store is None else Path(store) / f"{sess}_{w}"
                feats = block_features(net, stimuli, layers, store=sub_store, batch_size=batch_size)
                if progress:
                    progress(f"{sess} {w}: features in {time.perf_counter() - t:.0f} s")
                inputs = _inputs_key(net, stimuli, data)
                done = _read_partial(out_dir, sig)
                depth = layer_depth(list(feats))
                for label, lf in feats.items():
                    key = (sess, w, label)
                    if key in done and done[key].get("inputs") == inputs:  # finished by an earlier, interrupted
                        rows.append(done[key])                                # run on the same data and weights
                        continue
                    res = map_layers({label: lf}, data, methods=("ridge",), scheme="cv", cv=cv, inner_cv=inner_cv,
                                     alphas=alphas, standardize=standardize, seed=seed, stimuli_label=w,
                                     progress=progress)
                    r = res.summary().iloc[0]
                    c2 = res.voxels["ceiling_r"].to_numpy() ** 2
                    rows.append(dict(session=sess, weights=w, layer=label, depth=depth[label],
                                     n_neurons=int(r["n_voxels"]), mean_r=r["mean_r"], sem_r=r["sem_r"],
                                     mean_r_norm=r["mean_r_norm"], median_ceiling_r=r["median_ceiling_r"],
                                     pop_avg_r=r["roi_avg_r"],
                                     reliability=float(np.mean(c2)) if np.isfinite(c2).all() else np.nan,
                                     options=sig, inputs=inputs))
                    _write_partial(out_dir, rows, sig)
                if raw:
                    rel = [r["reliability"] for r in rows if r["session"] == sess and r["weights"] == w]
                    reliab[sess] = float(rel[0]) if rel else np.nan
                timings[f"{sess}/{w}"] = round(time.perf_counter() - t, 1)
        table = pd.DataFrame(rows).drop(columns=["options", "inputs"], errors="ignore")
        full = default and n_images is None
        exps = self.expectations(table, str(session), default, full, reliab, n_images is None)
        figures = _figures(table, Path(out_dir), getattr(model, "name", model)) if out_dir is not None else []
        info = dict(session=session, ceiling_session=ceiling_session, n_images="all" if n_images is None else n_images,
                    scheme=f"{cv}-fold CV, RidgeCV per-neuron alpha (inner {inner_cv}-fold, grid "
                    f"{alphas if isinstance(alphas, str) else list(alphas)}), features z-scored: {standardize}",
                    timings=timings)
        return BenchmarkResult(self.name, table, exps, figures, info)

    def expectations(self, table, session, default, full, reliab, all_images):
        exps = []
        main = table[table["session"] == session]
        pre = main[main["weights"] == "pretrained"].reset_index(drop=True)
        ran = main[main["weights"] == "random"].reset_index(drop=True)
        known = session == "190923"  # the session the earlier figures were measured on
        why = OTHER if not default else ("image subset (lower than with all images)" if not full
                                          else "no earlier figure on this session")
        judged = full and known
        if not pre.empty:
            i = int(pre["mean_r"].idxmax())
            peak, layer = float(pre.loc[i, "mean_r"]), pre.loc[i, "layer"]
            exps.append(within(f"{session} pretrained: peak mean r over neurons", peak, 0.586, 0.05, judged=judged,
                               why=why, source=SOURCE, obtained=f"{peak:.3f} at {layer}"))
            first, last = float(pre["mean_r"].iloc[0]), float(pre["mean_r"].iloc[-1])
            d = float(pre.loc[i, "depth"])
            inverted_u = 0.2 <= d <= 0.8 and peak - first >= 0.03 and peak - last >= 0.03
            exps.append(verdict(f"{session} pretrained: profile over depth",
                                "inverted U: peak at relative depth 0.2 .. 0.8 (block 7 measured) and "
                                "peak - first >= 0.03 and peak - last >= 0.03",
                                f"first {first:.3f}, peak {peak:.3f} at {layer} (depth {d:.2f}), last {last:.3f}",
                                inverted_u if default else None, why=OTHER, source=SOURCE))
        if not ran.empty:
            rmax = float(ran["mean_r"].max())
            exps.append(at_most(f"{session} random weights: max mean r", rmax, 0.41, 0.02, judged=judged, why=why,
                                source=SOURCE))
            if not pre.empty:  # network-independent: judged for any network
                exps.append(at_least(f"{session}: pretrained peak mean r - random peak mean r",
                                     float(pre["mean_r"].max()) - rmax, 0.0,
                                     obtained=f"{float(pre['mean_r'].max()):.3f} - {rmax:.3f} = "
                                     f"{float(pre['mean_r'].max()) - rmax:.3f}"))
        for sess, rel in reliab.items():  # a property of the data: judged for any network on all images
            exps.append(within(f"{sess}: mean split-half reliability (Spearman-Brown; range 0.54-0.93)", rel, 0.75,
                               0.05, judged=all_images, why="image subset", source="shared data SOURCES.md"))
            cs = table[(table["session"] == sess) & (table["weights"] == "pretrained")]
            if not cs.empty:
                j = int(cs["mean_r_norm"].idxmax())
                exps.append(verdict(f"{sess} pretrained: peak noise-ceiling-normalised r", "no earlier figure",
                                    f"{cs.loc[j, 'mean_r_norm']:.3f} at {cs.loc[j, 'layer']} "
                                    f"(raw r {cs.loc[j, 'mean_r']:.3f})", None, why="no earlier figure"))
        return exps

    def summary(self, table):
        out = {}
        for sess in dict.fromkeys(table["session"]):
            d = table[table["session"] == sess]
            pre, ran = d[d["weights"] == "pretrained"], d[d["weights"] == "random"]
            if not pre.empty:
                i = pre["mean_r"].idxmax()
                out[f"{sess} pretrained: peak mean r"] = float(pre.loc[i, "mean_r"])
                out[f"{sess} pretrained: relative depth of the peak"] = float(pre.loc[i, "depth"])
                if pre["mean_r_norm"].notna().any():
                    out[f"{sess} pretrained: peak r / ceiling"] = float(pre["mean_r_norm"].max())
            if not ran.empty:
                out[f"{sess} random: max mean r"] = float(ran["mean_r"].max())
            if d["reliability"].notna().any():
                out[f"{sess}: mean split-half reliability"] = float(d["reliability"].dropna().iloc[0])
        return out


def _figures(table: pd.DataFrame, out: Path, network) -> list[Path]:
    from brainlike._plotting import save_png as _save, subplots

    paths = []
    for sess in dict.fromkeys(table["session"]):
        d = table[table["session"] == sess]
        norm = d["mean_r_norm"].notna().any()
        fig, axes = subplots(1, 2 if norm else 1, figsize=(11 if norm else 6, 3.8), squeeze=False)
        for ax, col, lab in [(axes[0][0], "mean_r", "mean r over neurons (± SEM)")] + (
                [(axes[0][1], "mean_r_norm", "mean noise-ceiling-normalised r")] if norm else []):
            for w, color in (("pretrained", "#1f77b4"), ("random", "#7f7f7f")):
                e = d[d["weights"] == w]
                if e.empty:
                    continue
                x = np.arange(len(e))
                ax.errorbar(x, e[col], yerr=e["sem_r"] if col == "mean_r" else None, marker="o", capsize=2,
                            color=color, label=f"{w} weights")
                ax.set_xticks(x)
                ax.set_xticklabels(e["layer"], rotation=45, ha="right", fontsize=8)
            if col == "mean_r" and sess == "190923":
                ax.axhline(0.556, color="#1f77b4", linestyle=":", linewidth=1, label="EfficientNet-Lite0 peak 0.556")
                ax.axhline(0.361, color="#7f7f7f", linestyle=":", linewidth=1, label="EfficientNet-Lite0 random 0.361")
            ax.set_ylabel(lab)
            ax.set_xlabel(f"{network} layer")
            ax.legend(fontsize=7, frameon=False)
        n = int(d["n_neurons"].iloc[0])
        fig.suptitle(f"V4 session {sess} ({n} neurons): cross-validated ridge encoding per layer", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / f"v4_encoding_profile_{sess}.png"))
    return paths


# --------------------------------------------------------------------------------------------
class V4Decodability(Benchmark):
    """Decodability of each layer's units from a V4 population (see the module doc).

    Per layer, ``n_units`` units are drawn at random (same draw for both weights; constant units are
    dropped and counted). Neurons and units are z-scored with each fitting fold's statistics;
    ``n_feat`` neurons are selected per unit (all of them when the session has fewer).
    Decodability of a unit is the Pearson r between its decoded and true activations over the
    out-of-fold images.
    """

    name = "v4-decodability"
    data = "Cowley et al. 2023 V4, session 201025 (89 neurons, 1200 images)"
    metric = "per-unit Pearson r of SelectiveRidge decoding (FastL2LiR), 5-fold CV; median over units per layer"
    ceiling = "none"
    reference = {"pretrained: highest median decodability": 0.185, "pretrained: lowest median decodability": 0.105,
                 "random: highest median decodability": 0.38, "random: lowest median decodability": 0.24}

    def run(self, model, layers, *, weights, seed, default, session="201025", n_images=None, n_units=500, cv=5,
            alpha=100.0, n_feat=500, out_dir=None, store=None, batch_size=32, progress=None):
        from brainlike._zscore import train_stats
        from brainlike.linear import SelectiveRidge
        from brainlike.folds import kfold
        from brainlike.metrics import pearson

        data, stimuli = load_session(session, n_images, seed, raw=False)
        data = data.average_repetitions()
        resp = data.responses[:, data.rois["V4"]] if "V4" in data.rois else data.responses
        ids = [str(s) for s in data.stimulus_ids]
        X = np.asarray(resp, dtype=np.float32)
        folds = kfold(len(ids), cv, seed=seed)
        k = min(n_feat, X.shape[1])
        rows, dist, timings = [], {}, {}
        unit_rng = np.random.default_rng(seed)
        chosen: dict[str, np.ndarray] = {}
        for w, net, _ in networks(model, weights, seed):
            t = time.perf_counter()
            sub_store = None if store is None else Path(store) / f"{session}_{w}"
            feats = block_features(net, stimuli, layers, store=sub_store, batch_size=batch_size)
            for label, lf in feats.items():
                order = align(lf.ids, ids, source=f"features of {label!r}", wanted="the V4 responses")
                n_total = lf.shape[1]
                if label not in chosen:
                    chosen[label] = np.sort(unit_rng.choice(n_total, size=min(n_units, n_total), replace=False))
                Y = np.asarray(lf.read(chosen[label]), dtype=np.float32)[order]
                keep = Y.std(axis=0) > 0
                Y = Y[:, keep]
                pred = np.zeros_like(Y)
                for tr, te in folds:
                    xs = train_stats(X[tr], what="V4 neurons", level=logging.DEBUG)
                    ys = train_stats(Y[tr], what=f"units of {label!r}", level=logging.DEBUG)
                    dec = SelectiveRidge(alpha=alpha, n_feat=k)
                    dec.fit(xs.apply(X[tr]), ys.apply(Y[tr]))
                    pred[te] = dec.predict(xs.apply(X[te])) * ys.scale + ys.mean
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = np.asarray(pearson(Y, pred), dtype=np.float64)
                dist[(w, label)] = r
                rows.append(dict(weights=w, layer=label, n_units=int(keep.sum()), n_constant=int((~keep).sum()),
                                 mean_r=float(np.nanmean(r)), median_r=float(np.nanmedian(r)),
                                 q90_r=float(np.nanquantile(r, 0.9)), frac_r_above_0_3=float(np.nanmean(r > 0.3))))
                if progress:
                    progress(f"{w} {label}: median decodability {np.nanmedian(r):.3f}")
            timings[w] = round(time.perf_counter() - t, 1)
        table = pd.DataFrame(rows)
        exps = []
        pre = table[table["weights"] == "pretrained"].set_index("layer")["median_r"]
        ran = table[table["weights"] == "random"].set_index("layer")["median_r"]
        if not pre.empty and not ran.empty:
            exps.append(verdict("layers where pretrained median decodability > random", "no earlier figure",
                                f"{int((pre > ran).sum())} of {len(pre)}", None, why="no earlier figure"))
        if not pre.empty:  # V4 carries image information: network-independent, judged for any network
            exps.append(at_least("pretrained: lowest median decodability over layers", float(pre.min()), 0.0,
                                 obtained=f"{pre.min():.3f} at {pre.idxmin()}"))
        figures = []
        if out_dir is not None:
            figures = [_decodability_figure(dist, list(dict.fromkeys(table["layer"])),
                                            list(dict.fromkeys(table["weights"])), session, X.shape[1],
                                            getattr(model, "name", model), Path(out_dir))]
        info = dict(session=session, n_neurons=int(X.shape[1]), n_images=len(ids), units_per_layer=n_units,
                    decoder=f"SelectiveRidge(alpha={alpha}, n_feat={k}), {cv}-fold CV", timings=timings)
        return BenchmarkResult(self.name, table, exps, figures, info)

    def summary(self, table):
        out = {}
        for w in ("pretrained", "random"):
            d = table[table["weights"] == w]["median_r"]
            if not d.empty:
                out[f"{w}: highest median decodability"] = float(d.max())
                out[f"{w}: lowest median decodability"] = float(d.min())
        return out


def _decodability_figure(dist, layers, weights, session, n_neurons, network, out: Path) -> Path:
    from brainlike._plotting import save_png as _save, subplots

    fig, ax = subplots(figsize=(max(6, 0.6 * len(layers) + 2), 3.8))
    colors = {"pretrained": "#1f77b4", "random": "#7f7f7f"}
    width = 0.8 / len(weights)
    for wi, w in enumerate(weights):
        data = [dist[(w, b)][np.isfinite(dist[(w, b)])] for b in layers]
        pos = np.arange(len(layers)) + (wi - (len(weights) - 1) / 2) * width
        vp = ax.violinplot(data, positions=pos, widths=width * 0.9, showmedians=True, showextrema=False)
        for body in vp["bodies"]:
            body.set_facecolor(colors[w])
            body.set_alpha(0.5)
        vp["cmedians"].set_color(colors[w])
        ax.plot([], [], color=colors[w], linewidth=6, alpha=0.5, label=f"{w} weights")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("unit decodability (Pearson r)")
    ax.set_title(f"{network} units decoded from {n_neurons} V4 neurons (session {session})", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out / f"v4_decodability_{session}.png")
