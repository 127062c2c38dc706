"""V4 benchmarks on Cowley et al. (2023): block-wise encoding of V4 neurons and decoding of DNN units.

``v4_cowley2023``: cross-validated ridge (per-neuron alpha) from each EfficientNet-Lite0 block to
every neuron of a session; the profile of mean r over depth, pretrained vs random weights; on
session 210325 (the one with raw repeats) the scores are normalised by each neuron's noise ceiling.

``v4_decodability``: Horikawa et al. (2019)-style decodability: each block's units are decoded from
the V4 population with ``SelectiveRidge`` (FastL2LiR), and the distribution of the per-unit
correlation between decoded and true activations is reported per block, pretrained vs random.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._zscore import train_stats
from brainlike.ids import align
from brainlike.validation._common import (
    BenchmarkResult,
    Expectation,
    block_features,
    load_network,
    subset_ids,
)

__all__ = ["v4_cowley2023", "v4_decodability"]

NETWORK = "efficientnet_lite0"
SOURCE = "shared data SOURCES.md (EfficientNet-Lite0 blocks -> ridge -> 5-fold CV, session 190923)"


def _load_session(session: str, n_images, seed: int, raw: bool = False):
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


def _weights(which):
    out = []
    for w in which:
        if w not in ("pretrained", "random"):
            raise ValueError(f"weights must be 'pretrained' and/or 'random'; got {w!r}")
        out.append(w)
    return out


def v4_cowley2023(
    session: str = "190923",
    ceiling_session: str | None = "210325",
    *,
    n_images: int | None = None,
    weights=("pretrained", "random"),
    cv: int = 5,
    inner_cv: int = 5,
    alphas="auto",
    standardize: str = "all",
    blocks=None,
    seed: int = 0,
    out_dir=None,
    store=None,
    batch_size: int = 32,
    progress=None,
) -> BenchmarkResult:
    """Encoding profile over EfficientNet-Lite0 blocks for V4 neurons (see module doc)."""
    from brainlike.mapping import map_layers

    t0 = time.perf_counter()
    weights = _weights(weights)
    if ceiling_session and str(ceiling_session) == str(session):
        sessions = [(session, True)]
    else:
        sessions = [(session, False)] + ([(ceiling_session, True)] if ceiling_session else [])
    rows, timings, reliab = [], {}, {}
    for sess, raw in sessions:
        data, stimuli = _load_session(sess, n_images, seed, raw=raw)
        for w in weights:
            t = time.perf_counter()
            model = load_network(NETWORK, pretrained=(w == "pretrained"), seed=seed)
            sub_store = None if store is None else Path(store) / f"{sess}_{w}"
            feats = block_features(model, stimuli, store=sub_store, batch_size=batch_size)
            if progress:
                progress(f"{sess} {w}: features in {time.perf_counter() - t:.0f} s")
            sig = f"n_images={n_images};cv={cv};inner_cv={inner_cv};alphas={alphas};standardize={standardize};seed={seed}"
            inputs = _inputs_key(model, stimuli, data)
            done = _read_partial(out_dir, sig)
            labels = list(feats)
            if blocks is not None:
                from brainlike.mapping import check_names

                labels = check_names(list(blocks), labels, "blocks")
            for label in labels:
                key = (str(sess), w, label)
                if key in done and done[key].get("inputs") == inputs:  # finished by an earlier, interrupted
                    rows.append(done[key])                                # run on the same data and weights
                    continue
                res = map_layers({label: feats[label]}, data, methods=("ridge",), scheme="cv", cv=cv,
                                 inner_cv=inner_cv, alphas=alphas, standardize=standardize, seed=seed,
                                 stimuli_label=w, progress=progress)
                r = res.summary().iloc[0]
                c2 = res.voxels["ceiling_r"].to_numpy() ** 2
                rows.append(dict(session=str(sess), weights=w, block=label, n_neurons=int(r["n_voxels"]),
                                 mean_r=r["mean_r"], sem_r=r["sem_r"], mean_r_norm=r["mean_r_norm"],
                                 median_ceiling_r=r["median_ceiling_r"], pop_avg_r=r["roi_avg_r"],
                                 reliability=float(np.mean(c2)) if np.isfinite(c2).all() else np.nan,
                                 options=sig, inputs=inputs))
                _write_partial(out_dir, rows, sig)
            if raw:
                rel = [r["reliability"] for r in rows if r["session"] == str(sess) and r["weights"] == w]
                reliab[sess] = float(rel[0]) if rel else np.nan
            timings[f"{sess}/{w}"] = round(time.perf_counter() - t, 1)
    table = pd.DataFrame(rows).drop(columns=["options", "inputs"], errors="ignore")
    full = n_images is None and blocks is None
    exps = _cowley_expectations(table, session, full, reliab)
    figures = []
    if out_dir is not None:
        figures = _cowley_figures(table, Path(out_dir))
    info = dict(network=NETWORK, session=session, ceiling_session=ceiling_session,
                n_images="all" if full else n_images, scheme=f"{cv}-fold CV, RidgeCV per-neuron alpha "
                f"(inner {inner_cv}-fold, grid {alphas if isinstance(alphas, str) else list(alphas)}), "
                f"features z-scored: {standardize}",
                seconds=round(time.perf_counter() - t0, 1), timings=timings)
    result = BenchmarkResult("v4-cowley2023", table, exps, figures, info)
    if out_dir is not None:
        result.save(out_dir)
    return result


def _inputs_key(model, stimuli, data) -> str:
    """Content key of a block's inputs: the network's weights and preprocessing, every image's
    pixels and id (the feature store's own key), and every response with its stimulus id."""
    from brainlike._hash import ContentHasher

    h = ContentHasher().json([model.fingerprint(), stimuli.fingerprint()])
    return h.array(np.asarray(data.responses)).array(np.asarray(data.stimulus_ids)).hexdigest()


def _read_partial(out_dir, sig: str) -> dict:
    """Rows already finished in ``out_dir`` (partial.csv) with the same options, keyed by (session, weights, block)."""
    if out_dir is None or not (Path(out_dir) / "partial.csv").is_file():
        return {}
    df = pd.read_csv(Path(out_dir) / "partial.csv", dtype={"session": str})
    df = df[df["options"] == sig]
    return {(r["session"], r["weights"], r["block"]): r.to_dict() for _, r in df.iterrows()}


def _write_partial(out_dir, rows, sig: str) -> None:
    """Finished blocks, written atomically after each one: a killed run keeps them and resumes."""
    if out_dir is None:
        return
    from brainlike._io import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = _read_partial(out_dir, sig)
    for r in rows:
        known[(str(r["session"]), r["weights"], r["block"])] = r
    atomic_write(out / "partial.csv", lambda p: pd.DataFrame(list(known.values())).to_csv(p, index=False))


def _block_num(label: str) -> int:
    return int("".join(ch for ch in label if ch.isdigit()))


def _cowley_expectations(table: pd.DataFrame, session: str, full: bool, reliab: dict) -> list[Expectation]:
    exps = []
    main = table[table["session"] == session]
    pre = main[main["weights"] == "pretrained"].reset_index(drop=True)
    ran = main[main["weights"] == "random"].reset_index(drop=True)
    note = "" if full else " (subset of images: lower than with all images)"
    known = str(session) == "190923"  # the session the earlier figures were measured on
    if not pre.empty:
        i = int(pre["mean_r"].idxmax())
        peak, block = float(pre.loc[i, "mean_r"]), pre.loc[i, "block"]
        n_blocks = len(pre)
        exps.append(Expectation(
            f"{session} pretrained: peak mean r over neurons", "≈ 0.59 (0.586)" if known else "no earlier figure",
            f"{peak:.3f} at {block}{note}", (abs(peak - 0.586) <= 0.05) if (full and known) else None,
            SOURCE if known else ""))
        middle = 0.2 * n_blocks <= _block_num(block) <= 0.8 * n_blocks
        first, last = float(pre["mean_r"].iloc[0]), float(pre["mean_r"].iloc[-1])
        inverted_u = middle and peak - first >= 0.03 and peak - last >= 0.03
        exps.append(Expectation(
            f"{session} pretrained: profile over depth", "inverted U, peak at a middle block (block 7)",
            f"first {first:.3f}, peak {peak:.3f} at {block}, last {last:.3f}", bool(inverted_u), SOURCE))
    if not ran.empty:
        rmax = float(ran["mean_r"].max())
        exps.append(Expectation(
            f"{session} random weights: max mean r", "≤ 0.41" if known else "no earlier figure", f"{rmax:.3f}{note}",
            bool(rmax <= 0.41 + 0.02) if known else None, SOURCE if known else ""))
        if not pre.empty:
            exps.append(Expectation(
                f"{session}: pretrained peak above random peak", "yes",
                f"{float(pre['mean_r'].max()):.3f} vs {rmax:.3f}", bool(pre["mean_r"].max() > rmax), SOURCE))
    for sess, rel in reliab.items():
        exps.append(Expectation(
            f"{sess}: mean split-half reliability (Spearman-Brown)", "≈ 0.75 (range 0.54–0.93)",
            f"{rel:.3f}", bool(abs(rel - 0.75) <= 0.05), "shared data SOURCES.md"))
        cs = table[(table["session"] == sess) & (table["weights"] == "pretrained")]
        if not cs.empty:
            j = int(cs["mean_r_norm"].idxmax())
            exps.append(Expectation(
                f"{sess} pretrained: peak noise-ceiling-normalised r", "no earlier figure",
                f"{cs.loc[j, 'mean_r_norm']:.3f} at {cs.loc[j, 'block']} (raw r {cs.loc[j, 'mean_r']:.3f})", None))
    return exps


def _cowley_figures(table: pd.DataFrame, out: Path) -> list[Path]:
    from brainlike.mapping.plots import _pyplot, _save

    plt = _pyplot()
    paths = []
    for sess in dict.fromkeys(table["session"]):
        d = table[table["session"] == sess]
        norm = d["mean_r_norm"].notna().any()
        fig, axes = plt.subplots(1, 2 if norm else 1, figsize=(11 if norm else 6, 3.8), squeeze=False)
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
                ax.set_xticklabels(e["block"], rotation=45, ha="right", fontsize=8)
            if col == "mean_r" and sess == "190923":
                ax.axhline(0.586, color="#1f77b4", linestyle=":", linewidth=1, label="expected peak 0.586")
                ax.axhline(0.41, color="#7f7f7f", linestyle=":", linewidth=1, label="expected random ≤ 0.41")
            ax.set_ylabel(lab)
            ax.set_xlabel("EfficientNet-Lite0 block")
            ax.legend(fontsize=7, frameon=False)
        n = int(d["n_neurons"].iloc[0])
        fig.suptitle(f"V4 session {sess} ({n} neurons): cross-validated ridge encoding per block", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / f"v4_encoding_profile_{sess}.png"))
    return paths


# --------------------------------------------------------------------------------------------
def v4_decodability(
    session: str = "201025",
    *,
    n_images: int | None = None,
    n_units: int = 500,
    weights=("pretrained", "random"),
    cv: int = 5,
    alpha: float = 100.0,
    n_feat: int = 500,
    seed: int = 0,
    out_dir=None,
    store=None,
    batch_size: int = 32,
    progress=None,
) -> BenchmarkResult:
    """Decodability of each block's units from a V4 population (see module doc).

    Per block, ``n_units`` non-constant units are drawn at random (same draw for both weights).
    Neurons and units are z-scored with each fitting fold's statistics; ``n_feat`` neurons are
    selected per unit (all of them when the session has fewer). Decodability of a unit is the
    Pearson r between its decoded and true activations over the out-of-fold images.
    """
    from brainlike.folds import kfold
    from brainlike.linear import SelectiveRidge
    from brainlike.metrics import pearson

    t0 = time.perf_counter()
    weights = _weights(weights)
    data, stimuli = _load_session(session, n_images, seed, raw=False)
    data = data.average_repetitions()
    resp = data.responses[:, data.rois["V4"]] if "V4" in data.rois else data.responses
    ids = [str(s) for s in data.stimulus_ids]
    X = np.asarray(resp, dtype=np.float32)
    if len(ids) < cv:
        raise ValueError(f"cv={cv} folds need at least {cv} images; got {len(ids)}")
    folds = kfold(len(ids), cv, seed=seed)
    k = min(n_feat, X.shape[1])
    rows, dist, timings = [], {}, {}
    unit_rng = np.random.default_rng(seed)
    chosen: dict[str, np.ndarray] = {}
    for w in weights:
        t = time.perf_counter()
        model = load_network(NETWORK, pretrained=(w == "pretrained"), seed=seed)
        sub_store = None if store is None else Path(store) / f"{session}_{w}"
        feats = block_features(model, stimuli, store=sub_store, batch_size=batch_size)
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
                xs = train_stats(X[tr], what="V4 sites", level=logging.DEBUG)
                ys = train_stats(Y[tr], what="units", level=logging.DEBUG)
                dec = SelectiveRidge(alpha=alpha, n_feat=k)
                dec.fit(xs.apply(X[tr]), ys.apply(Y[tr]))
                pred[te] = dec.predict(xs.apply(X[te])) * ys.scale + ys.mean
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = np.asarray(pearson(Y, pred), dtype=np.float64)
            dist[(w, label)] = r
            rows.append(dict(weights=w, block=label, n_units=int(keep.sum()), mean_r=float(np.nanmean(r)),
                             median_r=float(np.nanmedian(r)), q90_r=float(np.nanquantile(r, 0.9)),
                             frac_r_above_0_3=float(np.nanmean(r > 0.3))))
            if progress:
                progress(f"{w} {label}: median decodability {np.nanmedian(r):.3f}")
        timings[w] = round(time.perf_counter() - t, 1)
    table = pd.DataFrame(rows)
    exps = []
    if set(weights) == {"pretrained", "random"}:
        p = table[table["weights"] == "pretrained"].set_index("block")["median_r"]
        q = table[table["weights"] == "random"].set_index("block")["median_r"]
        exps.append(Expectation("blocks where pretrained median decodability > random", "no earlier figure",
                                f"{int((p > q).sum())} of {len(p)}", None))
        i = p.idxmax()
        exps.append(Expectation("pretrained: block with the highest median decodability", "no earlier figure",
                                f"{i} ({p[i]:.3f}); random max {q.max():.3f} at {q.idxmax()}", None))
    pre = table[table["weights"] == "pretrained"]
    if not pre.empty:
        exps.append(Expectation("pretrained: median decodability > 0 in every block (V4 carries image information)",
                                "yes", f"min over blocks {pre['median_r'].min():.3f}",
                                bool(pre["median_r"].min() > 0)))
    figures = []
    if out_dir is not None:
        figures = [_decodability_figure(dist, list(dict.fromkeys(table["block"])), weights, session,
                                        X.shape[1], Path(out_dir))]
    info = dict(network=NETWORK, session=session, n_neurons=int(X.shape[1]), n_images=len(ids),
                units_per_block=n_units, decoder=f"SelectiveRidge(alpha={alpha}, n_feat={k}), {cv}-fold CV",
                seconds=round(time.perf_counter() - t0, 1), timings=timings)
    result = BenchmarkResult("v4-decodability", table, exps, figures, info)
    if out_dir is not None:
        result.save(out_dir)
    return result


def _decodability_figure(dist, blocks, weights, session, n_neurons, out: Path) -> Path:
    from brainlike.mapping.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(blocks) + 2), 3.8))
    colors = {"pretrained": "#1f77b4", "random": "#7f7f7f"}
    width = 0.8 / len(weights)
    for wi, w in enumerate(weights):
        data = [dist[(w, b)][np.isfinite(dist[(w, b)])] for b in blocks]
        pos = np.arange(len(blocks)) + (wi - (len(weights) - 1) / 2) * width
        vp = ax.violinplot(data, positions=pos, widths=width * 0.9, showmedians=True, showextrema=False)
        for body in vp["bodies"]:
            body.set_facecolor(colors[w])
            body.set_alpha(0.5)
        vp["cmedians"].set_color(colors[w])
        ax.plot([], [], color=colors[w], linewidth=6, alpha=0.5, label=f"{w} weights")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xticks(range(len(blocks)))
    ax.set_xticklabels(blocks, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("unit decodability (Pearson r)")
    ax.set_title(f"EfficientNet-Lite0 units decoded from {n_neurons} V4 neurons (session {session})", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out / f"v4_decodability_{session}.png")
