"""Figures of the report, each from the tidy results tables; matplotlib objects, no pyplot state.

- :func:`bh_ranking` — BH scores with confidence intervals, networks ranked (Nonaka 2021 Fig. 3).
- :func:`best_roi_distribution` — share of each layer's units by best ROI (Nonaka 2021 Fig. 1);
  with ``kind="encoding"`` the share of each ROI's voxels by best layer.
- :func:`accuracy_violins` — decoding accuracy per layer (Horikawa 2019 Fig. 2a).
- :func:`subject_scatter` — unit accuracies of two subjects (Horikawa 2019 Fig. 2b).
- :func:`intersubject_matrix_figure` — inter-subject correlation matrix (Horikawa 2019 Fig. 2c).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from brainlike.scores import bh_table, intersubject_matrix, spearman_from_table
from brainlike.metrics.correlation import pearson

KIND_COLORS = {"decoding": "#4c72b0", "encoding": "#dd8452", "average": "#55a868"}


def _style(ax):
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _order(values, preferred=None):
    """Unique values in order of first appearance, or in ``preferred`` order when given."""
    seen = list(dict.fromkeys(values))
    if preferred:
        return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
    return seen


def _pick_dnns(table: pd.DataFrame, dnns) -> list:
    present = _order(table["dnn"])
    if dnns is None:
        return present
    missing = [d for d in dnns if d not in present]
    if missing:
        raise ValueError(f"dnns must be among {present}; got {missing}")
    return list(dnns)


def _short_labels(labels: list[str], width: int = 16) -> list[str]:
    """Drop a prefix shared by all labels and cut long ones (keeping their start)."""
    import os.path

    pre = os.path.commonprefix(labels)
    if pre and max(len(x) for x in labels) > width and all(len(x) > len(pre) for x in labels):
        labels = [x[len(pre):] for x in labels]
    return [x if len(x) <= width else x[: width - 1] + "…" for x in labels]


def _layer_ticks(ax, labels, fontsize=7, max_labels=12):
    """Tick labels for many layers: every k-th one, rotated when long."""
    n = len(labels)
    step = max(1, int(np.ceil(n / max_labels)))
    pos = list(range(0, n, step))
    if (n - 1) not in pos:
        if len(pos) > 1 and (n - 1) - pos[-1] < step / 2:
            pos.pop()
        pos.append(n - 1)
    lab = _short_labels([str(x) for x in labels])
    lab = [lab[i] for i in pos]
    long = max(len(x) for x in lab) > 4
    ax.set_xticks(pos, lab, rotation=45 if long else 0, ha="right" if long else "center", fontsize=fontsize)
    if long:
        for t in ax.get_xticklabels():
            t.set_rotation_mode("anchor")
    return step


def layer_order(table: pd.DataFrame, dnn) -> list:
    t = table[table["dnn"] == dnn]
    return list(t.drop_duplicates("layer").sort_values("layer_index")["layer"])


def accuracy_arrays(table: pd.DataFrame, dnn, rois, kind: str = "decoding") -> list[np.ndarray]:
    """Arrays for the BH score from a results table.

    ``kind="decoding"``: per layer an array (n_rois, n_units pooled over subjects);
    ``kind="encoding"``: per ROI an array (n_layers, n_voxels pooled over subjects).
    Units (voxels) are ordered by subject, then index; a missing accuracy is NaN (counts as 0).
    """
    t = table[table["dnn"] == dnn]
    idx = "unit" if kind == "decoding" else "voxel"
    layers = layer_order(table, dnn)
    group_col, col_col, cols = ("layer", "roi", rois) if kind == "decoding" else ("roi", "layer", layers)
    groups = dict(tuple(t.groupby(group_col, sort=False)))
    out = []
    for key in (layers if kind == "decoding" else rois):
        g = groups.get(key)
        if g is None:
            out.append(np.zeros((len(cols), 0)))
            continue
        wide = g.pivot(index=["subject", idx], columns=col_col, values="accuracy")
        out.append(wide.reindex(columns=cols).to_numpy(dtype=np.float64).T)
    return out


def bh_ranking(scores: pd.DataFrame, kinds=("decoding", "encoding", "average")) -> Figure:
    """Horizontal bars of BH scores with CI whiskers, one panel per kind, networks in one order.

    Networks are ranked by the averaged score when present (else the first kind); ``*`` marks a
    permutation p < 0.05.
    """
    kinds = [k for k in kinds if k in set(scores["kind"])]
    if not kinds:
        raise ValueError(f"scores has no rows of kind {list(KIND_COLORS)}; got kinds {sorted(set(scores['kind']))}")
    rank_kind = "average" if "average" in kinds else kinds[0]
    r = scores[scores["kind"] == rank_kind].sort_values("score", ascending=True)
    nets = list(r["dnn"]) + [d for d in _order(scores["dnn"]) if d not in set(r["dnn"])][::-1]
    n = len(nets)
    fig = Figure(figsize=(3.2 * len(kinds) + 1.4, 0.34 * n + 1.3), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    y = np.arange(n)
    lo_all = min(0.0, np.nanmin(scores.get("ci_low", scores["score"]).to_numpy(dtype=float)))
    hi_all = max(0.1, np.nanmax(scores.get("ci_high", scores["score"]).to_numpy(dtype=float)))
    for ax, kind in zip(axes, kinds):
        s = scores[scores["kind"] == kind].set_index("dnn").reindex(nets)
        val = s["score"].to_numpy(dtype=float)
        ax.barh(y, np.nan_to_num(val), color=KIND_COLORS.get(kind, "gray"), height=0.7)
        if {"ci_low", "ci_high"} <= set(s.columns):
            lo, hi = s["ci_low"].to_numpy(dtype=float), s["ci_high"].to_numpy(dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(val)
            err = np.vstack([val - lo, hi - val])[:, ok]
            ax.errorbar(val[ok], y[ok], xerr=np.clip(err, 0, None), fmt="none", ecolor="black", elinewidth=1, capsize=2)
        right = val.copy()
        if {"ci_low", "ci_high"} <= set(s.columns):
            right = np.fmax(val, s["ci_high"].to_numpy(dtype=float))
        pvals = s["p_perm"].to_numpy(dtype=float) if "p_perm" in s.columns else np.full(n, np.nan)
        for yi, v, xr, p in zip(y, val, right, pvals):
            if np.isfinite(v):
                star = "*" if np.isfinite(p) and p < 0.05 else ""
                ax.text(max(xr, 0.0) + 0.015 * (hi_all - lo_all), yi, f"{v:.2f}{star}", va="center", ha="left",
                        fontsize=7, color="dimgray")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(lo_all - 0.05 * (hi_all - lo_all), hi_all + 0.2 * (hi_all - lo_all))
        ax.set_title(f"{kind} BH score")
        ax.set_xlabel("BH score (95% CI)")
        _style(ax)
    axes[0].set_yticks(y, nets)
    axes[0].set_ylim(-0.6, n - 0.4)
    fig.suptitle("Brain hierarchy score ranking  (* permutation p < 0.05)", fontsize=10)
    return fig


def best_roi_distribution(table: pd.DataFrame, rois=None, *, n_samples: int, pval: float = 0.05,
                          kind: str = "decoding", dnns=None, significance: str = "reference") -> Figure:
    """Stacked bars: for each layer, the share of its kept units whose best ROI is each ROI.

    Units are pooled over subjects, kept as in :func:`brainlike.scores.bh_score` (``n_samples``,
    required: the test images behind each accuracy). The title of
    each panel gives the BH score on all layers and the number of kept units. With
    ``kind="encoding"`` bars are ROIs and colours best layers.
    """
    rois = _order(table["roi"], rois)
    dnns = _pick_dnns(table, dnns)
    ncol = min(3, len(dnns))
    nrow = int(np.ceil(len(dnns) / ncol))
    fig = Figure(figsize=(4.3 * ncol + 1.2, 3.0 * nrow + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False).ravel())
    for ax in axes[len(dnns):]:
        ax.set_visible(False)
    by_dnn = dict(tuple(table.groupby("dnn", sort=False)))  # split once: tables can hold millions of rows
    for ax, dnn in zip(axes, dnns):
        sub = by_dnn[dnn]
        layers = layer_order(sub, dnn)
        accs = accuracy_arrays(sub, dnn, rois, kind)
        counts = bh_table(accs, pval=pval, n_samples=n_samples, significance=significance)
        with np.errstate(invalid="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        share = np.nan_to_num(share)
        groups = layers if kind == "decoding" else rois
        cats = rois if kind == "decoding" else layers
        colors = colormaps["viridis"](np.linspace(0.05, 0.95, len(cats)))
        x = np.arange(len(groups))
        bottom = np.zeros(len(groups))
        many = len(groups) > 12
        for j, c in enumerate(cats):
            ax.bar(x, share[:, j], bottom=bottom, color=colors[j], width=0.9 if many else 0.8, label=c,
                   edgecolor="none" if many or len(cats) > 12 else "white", lw=0.3)
            bottom += share[:, j]
        if not many:
            for xi, n in zip(x, counts.sum(axis=1)):
                ax.text(xi, 1.01, str(int(n)), ha="center", va="bottom", fontsize=6, color="dimgray")
        _layer_ticks(ax, groups)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("fraction of kept " + ("units" if kind == "decoding" else "voxels"))
        with np.errstate(invalid="ignore"):
            bh = float(spearman_from_table(counts))
        ax.set_title(f"{dnn}: BH = {bh:.2f}, kept {int(counts.sum())}", fontsize=9)
        _style(ax)
    if kind == "decoding":
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles[::-1], labels[::-1], title="best ROI", loc="outside right center", fontsize=7,
                   title_fontsize=8)
    else:  # networks differ in their layers: one colour scale from first to last layer
        from matplotlib.cm import ScalarMappable

        sm = ScalarMappable(norm=Normalize(0, 1), cmap=colormaps["viridis"])
        cb = fig.colorbar(sm, ax=list(axes[: len(dnns)]), shrink=0.5, location="right")
        cb.set_ticks([0.05, 0.95], labels=["first", "last"])
        cb.set_label("best layer (position in the network)")
    what = "layer's units by best ROI" if kind == "decoding" else "ROI's voxels by best layer"
    fig.suptitle(f"Share of each {what} (p < {pval}, n = {n_samples}; kept count above bar)", fontsize=10)
    return fig


def accuracy_violins(table: pd.DataFrame, roi=None, dnns=None) -> Figure:
    """Violins of subject-averaged unit decoding accuracy per layer, one panel per network."""
    rois = _order(table["roi"])
    roi = roi if roi is not None else rois[-1]
    if roi not in rois:
        raise ValueError(f"roi must be one of {rois}; got {roi!r}")
    dnns = _pick_dnns(table, dnns)
    t = table[table["roi"] == roi]
    avg = t.groupby(["dnn", "layer", "layer_index", "unit"], as_index=False)["accuracy"].mean()
    ncol = min(3, len(dnns))
    nrow = int(np.ceil(len(dnns) / ncol))
    fig = Figure(figsize=(4.3 * ncol, 3.0 * nrow + 0.4), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[len(dnns):]:
        ax.set_visible(False)
    for ax, dnn in zip(axes, dnns):
        layers = layer_order(table, dnn)
        data = [avg[(avg["dnn"] == dnn) & (avg["layer"] == lay)]["accuracy"].dropna().to_numpy() for lay in layers]
        pos = [i for i, d in enumerate(data) if d.size > 1]
        if pos:
            parts = ax.violinplot([data[i] for i in pos], positions=pos, widths=0.8, showmedians=True, showextrema=False)
            for body in parts["bodies"]:
                body.set_facecolor(KIND_COLORS["decoding"])
                body.set_alpha(0.6)
            parts["cmedians"].set_color("black")
        ax.axhline(0, color="gray", lw=0.6, ls="--")
        _layer_ticks(ax, layers)
        ax.set_ylabel("decoding accuracy (r)")
        ax.set_title(dnn, fontsize=9)
        _style(ax)
    fig.suptitle(f"Unit decoding accuracy per layer from {roi} (mean over subjects)", fontsize=10)
    return fig


def subject_scatter(table: pd.DataFrame, dnn=None, roi=None, subjects=None) -> Figure:
    """Unit decoding accuracies of two subjects, coloured by layer, with their correlation."""
    dnn = dnn if dnn is not None else _order(table["dnn"])[0]
    rois = _order(table["roi"])
    roi = roi if roi is not None else rois[-1]
    t = table[(table["dnn"] == dnn) & (table["roi"] == roi)]
    subs = _order(t["subject"])
    if subjects is None:
        if len(subs) < 2:
            raise ValueError(f"subject_scatter needs two subjects; the table has {subs}")
        subjects = subs[:2]
    a, b = subjects
    wide = t.pivot_table(index=["layer_index", "unit"], columns="subject", values="accuracy", aggfunc="first")
    x, y = wide[a].to_numpy(), wide[b].to_numpy()
    li = wide.index.get_level_values("layer_index").to_numpy()
    ok = np.isfinite(x) & np.isfinite(y)
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    layers = layer_order(table, dnn)
    norm = Normalize(vmin=0, vmax=max(1, len(layers) - 1))
    sc = ax.scatter(x[ok], y[ok], c=li[ok], cmap="viridis", norm=norm, s=6, alpha=0.6, linewidths=0)
    lim = [min(np.nanmin(x[ok]), np.nanmin(y[ok])) - 0.02, max(np.nanmax(x[ok]), np.nanmax(y[ok])) + 0.02]
    ax.plot(lim, lim, color="gray", lw=0.8, ls="--")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    r = pearson(x, y, nan_policy="omit", min_samples=3)
    ax.set_xlabel(f"decoding accuracy, {a}")
    ax.set_ylabel(f"decoding accuracy, {b}")
    ax.set_title(f"{dnn}, {roi}: r = {r:.2f} over {int(ok.sum())} units", fontsize=9)
    cb = fig.colorbar(sc, ax=ax, shrink=0.8)
    cb.set_ticks(range(len(layers)))
    cb.set_ticklabels(layers, fontsize=6)
    cb.set_label("layer")
    _style(ax)
    return fig


def intersubject_matrix_figure(table: pd.DataFrame, dnn=None, roi=None) -> Figure:
    """Subject x subject correlation of unit decodability (all layers of one network and ROI)."""
    dnn = dnn if dnn is not None else _order(table["dnn"])[0]
    roi = roi if roi is not None else _order(table["roi"])[-1]
    m = intersubject_matrix(table, dnn=dnn, roi=roi)
    subs = list(m.columns)
    fig = Figure(figsize=(1.0 * len(subs) + 2.2, 0.9 * len(subs) + 1.4), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(m.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(subs)):
        for j in range(len(subs)):
            v = m.iat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if abs(v) > 0.6 else "black")
    ax.set_xticks(range(len(subs)), subs, rotation=45, ha="right")
    ax.set_yticks(range(len(subs)), subs)
    ax.set_title(f"Inter-subject correlation of\nunit decodability ({dnn}, {roi})", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Pearson r")
    return fig
