"""Figures of a mapping study (object-oriented matplotlib, :mod:`brainlike._plotting`; each function writes
one PNG and returns its path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainlike._plotting import save_png, subplots
from brainlike.metrics.correlation import pearson

__all__ = ["plot_layer_profiles", "plot_roi_average_fit", "plot_voxel_performance", "save_figures"]

_COLORS = {"ridge": "#1f77b4", "pls": "#d62728"}


def _save(fig, path) -> Path:
    return save_png(fig, path)


def plot_voxel_performance(result, path, *, layer=None, roi=None, metric: str = "r") -> Path:
    """Per-voxel performance per method and evaluation set: mean ± SEM across voxels, voxels as dots.

    With a noise ceiling, the median voxel ceiling is drawn as a dashed line per set.
    """
    df = result.voxels
    layer = layer or df["layer"].iloc[0]
    roi = roi or df["roi"].iloc[0]
    df = df[(df["layer"] == layer) & (df["roi"] == roi)]
    stim = list(dict.fromkeys(df["stimuli"]))
    splits = list(dict.fromkeys(df["split"]))
    methods = list(dict.fromkeys(df["method"]))
    groups = [(s, sp) for s in stim for sp in splits]
    fig, ax = subplots(figsize=(1.6 + 1.7 * len(groups) * max(1, len(methods)) / 2, 3.6))
    width = 0.8 / len(methods)
    rng = np.random.default_rng(0)
    for gi, (s, sp) in enumerate(groups):
        for mi, m in enumerate(methods):
            v = df[(df["stimuli"] == s) & (df["split"] == sp) & (df["method"] == m)][metric].to_numpy()
            v = v[np.isfinite(v)]
            x = gi + (mi - (len(methods) - 1) / 2) * width
            mean = v.mean() if v.size else np.nan
            sem = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
            ax.bar(x, mean, width * 0.9, yerr=sem, capsize=3, color=_COLORS.get(m, "gray"), alpha=0.55,
                   label=m if gi == 0 else None, edgecolor="k", linewidth=0.5)
            ax.scatter(x + rng.uniform(-width / 4, width / 4, v.size), v, s=5, color="k", alpha=0.35, zorder=3)
        c = df[(df["stimuli"] == s) & (df["split"] == sp)]["ceiling_r"].to_numpy()
        if metric == "r" and np.isfinite(c).any():
            ax.hlines(np.nanmedian(c), gi - 0.45, gi + 0.45, colors="k", linestyles="--", linewidth=1,
                      label="median noise ceiling" if gi == 0 else None)
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{sp}\n({s})" if len(stim) > 1 else sp for s, sp in groups])
    ax.set_ylabel({"r": "Pearson r (per voxel)", "r2": "R² (per voxel)"}.get(metric, metric))
    ax.set_title(f"{layer} → {roi}: per-voxel fit, mean ± SEM over {df['voxel'].nunique()} voxels", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def plot_roi_average_fit(result, path, *, layer=None, roi=None, stimuli=None) -> Path:
    """Predicted vs actual ROI-averaged response, one panel per method x evaluation set."""
    keys = list(result.predictions)
    layer = layer or keys[0][1]
    roi = roi or keys[0][2]
    stimuli = stimuli or keys[0][0]
    keys = [k for k in keys if k[0] == stimuli and k[1] == layer and k[2] == roi]
    fig, axes = subplots(1, len(keys), figsize=(3.3 * len(keys), 3.3), squeeze=False)
    for ax, k in zip(axes[0], keys):
        y, p = result.predictions[k]
        ax.scatter(p, y, s=8, alpha=0.6, color=_COLORS.get(k[3], "gray"))
        lo, hi = np.nanmin([y.min(), p.min()]), np.nanmax([y.max(), p.max()])
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.7)
        r = pearson(y, p, nan_policy="propagate")
        ax.set_title(f"{k[3]}, {k[4]}: r² = {r * r:.2f}", fontsize=9)
        ax.set_xlabel("predicted ROI average")
    axes[0][0].set_ylabel("actual ROI average")
    fig.suptitle(f"{layer} → {roi} ({stimuli} stimuli)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_profiles(result, path, *, metric: str = "r") -> Path:
    """Mean voxel score (± SEM) over layers, one panel per ROI, a line per method/split/stimuli."""
    df = result.voxels
    rois = list(dict.fromkeys(df["roi"]))
    layers = list(dict.fromkeys(df["layer"]))
    fig, axes = subplots(1, len(rois), figsize=(max(4.0, 0.5 * len(layers) + 2) * len(rois), 3.6), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, roi in zip(axes[0], rois):
        d = df[df["roi"] == roi]
        lines = list(dict.fromkeys(zip(d["stimuli"], d["method"], d["split"])))
        splits = list(dict.fromkeys(d["split"]))
        stims = list(dict.fromkeys(d["stimuli"]))
        for s, m, sp in lines:
            e = d[(d["stimuli"] == s) & (d["method"] == m) & (d["split"] == sp)]
            g = e.groupby("layer", sort=False)[metric]
            mean = g.mean().reindex(layers)
            sem = g.sem().reindex(layers).fillna(0)
            ls = styles[splits.index(sp) % len(styles)]
            label = f"{m} / {sp}" + (f" / {s}" if len(stims) > 1 else "")
            ax.errorbar(range(len(layers)), mean, yerr=sem, linestyle=ls, marker="o" if stims.index(s) == 0 else "s",
                        markersize=4, capsize=2, color=_COLORS.get(m, "gray"), alpha=1.0 if stims.index(s) == 0 else 0.6,
                        label=label)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
        ax.set_title(roi)
        ax.set_ylabel(f"mean voxel {metric} (± SEM)")
        ax.axhline(0, color="k", linewidth=0.5)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def save_figures(result, out_dir) -> list[Path]:
    """The three standard figures (per (layer, roi) for the first two when there are few pairs)."""
    out = Path(out_dir)
    paths = [plot_layer_profiles(result, out / "layer_profiles.png")]
    pairs = list(dict.fromkeys(zip(result.voxels["layer"], result.voxels["roi"])))
    if len(pairs) > 6:  # the best layer per ROI only
        best = result.voxels.groupby(["roi", "layer"], sort=False)["r"].mean().reset_index()
        best = best.loc[best.groupby("roi", sort=False)["r"].idxmax()]
        pairs = list(zip(best["layer"], best["roi"]))
    for layer, roi in pairs:
        tag = f"{layer}_{roi}".replace("/", "-").replace(" ", "_")
        paths.append(plot_voxel_performance(result, out / f"voxel_performance_{tag}.png", layer=layer, roi=roi))
        for s in dict.fromkeys(result.voxels["stimuli"]):
            paths.append(plot_roi_average_fit(result, out / f"roi_average_fit_{tag}_{s}.png", layer=layer, roi=roi,
                                              stimuli=s))
    return paths
