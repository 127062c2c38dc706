"""The report of an encoding study (``brainlike encode``): one self-contained HTML page.

Sections: the models compared per ROI (table and figure), the transfer matrix of GNet8r, the
layer-wise tuning of fwRF (share of each voxel's explained variance lost without a layer, by ROI)
and the fwRF pooling fields in the visual field, each figure also as PNG and SVG.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["is_encoding_results", "write_encoding_report"]


def _results_dir(path) -> Path:
    path = Path(path)
    return path / "results" if (path / "results" / "study.json").is_file() else path


def is_encoding_results(path) -> bool:
    """True for the output folder (or its ``results/``) of an encoding study."""
    return (_results_dir(path) / "study.json").is_file()


def _read(results: Path, name: str):
    p = results / f"{name}.parquet"
    return pd.read_parquet(p) if p.is_file() else None


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="t")


def _comparison_figure(voxels: pd.DataFrame, rois, models):
    from brainlike._plotting import subplots

    fig, ax = subplots(figsize=(max(5, 1.3 * len(rois) * len(models) / 2), 3.6))
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        data = [voxels[(voxels.model == m) & (voxels.roi == r)]["r"].dropna().to_numpy() for r in rois]
        pos = np.arange(len(rois)) + (k - (len(models) - 1) / 2) * width
        bp = ax.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True, showfliers=False)
        for box in bp["boxes"]:
            box.set_facecolor(f"C{k}")
            box.set_alpha(0.7)
        ax.plot([], [], color=f"C{k}", lw=6, alpha=0.7, label=m)
    ax.set_xticks(np.arange(len(rois)), rois)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("validation r per voxel")
    ax.legend(fontsize=7, frameon=False, ncol=len(models))
    return fig


def _tuning_figure(tuning: pd.DataFrame, fields_roi: pd.DataFrame):
    from brainlike._plotting import subplots

    layer = tuning[tuning.analysis == "layer"].copy()
    roi_of = fields_roi.drop_duplicates(["subject", "voxel"]).set_index(["subject", "voxel"])["roi"]
    layer["roi"] = [roi_of.get((str(s), int(v)), "?") for s, v in zip(layer["subject"].astype(str), layer["voxel"])]
    mean = layer.groupby(["roi", "partition"], sort=False)["exclusion_pct"].mean().unstack()
    fig, ax = subplots(figsize=(5.5, 3.4))
    rois, parts = list(mean.index), list(mean.columns)
    width = 0.8 / max(1, len(parts))
    for k, p in enumerate(parts):
        ax.bar(np.arange(len(rois)) + (k - (len(parts) - 1) / 2) * width, mean[p].to_numpy(float), width, label=p)
    ax.set_xticks(np.arange(len(rois)), rois)
    ax.set_ylabel("explained variance lost\nwithout the layer (%)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, frameon=False, title="fwRF layer", title_fontsize=7)
    return fig


def _fields_figure(fields: pd.DataFrame):
    from brainlike._plotting import subplots

    fig, ax = subplots(figsize=(4.2, 4.2))
    for k, (roi, sub) in enumerate(fields[fields.fold == 0].groupby("roi", sort=False)):
        ax.scatter(sub["x"], sub["y"], s=8 + 400 * sub["sigma"], alpha=0.45, color=f"C{k}", label=roi)
    ax.set_xlim(-0.6, 0.6)
    ax.set_ylim(-0.6, 0.6)
    ax.set_aspect("equal")
    ax.axhline(0, color="k", lw=0.3)
    ax.axvline(0, color="k", lw=0.3)
    ax.set_xlabel("x (image widths)")
    ax.set_ylabel("y (image widths)")
    ax.legend(fontsize=7, frameon=False, markerscale=0.6)
    return fig


def write_encoding_report(path, out_dir=None, *, staged: bool = False) -> Path:
    """Write ``index.html`` (figures embedded, also as PNG/SVG under ``figures/``) for the encoding
    study whose output folder (or ``results/``) is ``path``; default place: ``report/`` beside ``results/``.
    The tables are those of the current results generation, checked against its manifest
    (``pipeline.load_results``); ``staged=True``: the generation the study itself is still writing."""
    from brainlike.pipeline import load_results
    from brainlike.report import _save

    results = _results_dir(path)
    if not (results / "study.json").is_file():
        raise FileNotFoundError(f"results_dir: {results} holds no encoding study (study.json not found)")
    results = load_results(results, staged=staged).dir
    study = json.loads((results / "study.json").read_text())
    voxels, comparison = _read(results, "voxel_accuracy"), _read(results, "comparison")
    if voxels is None or comparison is None:
        raise FileNotFoundError(f"results_dir: {results} lacks voxel_accuracy or comparison (an unfinished study?)")
    out = Path(out_dir) if out_dir is not None else results.parent / "report"
    figdir = out / "figures"
    cfg = study.get("config", {})
    models = list(dict.fromkeys(voxels["model"]))
    rois = list(dict.fromkeys(voxels["roi"]))
    sections = []

    def figure(title, name, fig, caption):
        b64 = _save(fig, figdir, name)
        sections.append(f"<h2>{html.escape(title)}</h2><figure><img alt='{name}' src='data:image/png;base64,{b64}'>"
                        f"<figcaption>{caption} <a href='figures/{name}.svg'>SVG</a></figcaption></figure>")

    figure("Models compared per ROI", "comparison", _comparison_figure(voxels, rois, models),
           "Validation accuracy (Pearson r) of every voxel, per model and ROI: the same images, folds and voxels "
           "for every model. Boxes: quartiles; whiskers: 1.5 IQR.")
    summary = comparison.copy()
    if "r2_norm" in voxels:
        norm = voxels.groupby(["model", "roi"], sort=False)["r2_norm"].median().rename("median_r2_over_ceiling")
        summary = summary.merge(norm.reset_index(), on=["model", "roi"], how="left")
    sections.append("<h3>Per model and ROI</h3>" + _table_html(summary))
    transfer = _read(results, "transfer_matrix")
    if transfer is not None:
        from brainlike._plotting import subplots

        m = transfer.set_index("source")
        fig, ax = subplots(figsize=(4.2, 3.6))
        im = ax.imshow(m.to_numpy(float), cmap="viridis")
        ax.set_xticks(range(m.shape[1]), list(m.columns))
        ax.set_yticks(range(m.shape[0]), list(m.index))
        ax.set_xlabel("target ROI (new readouts)")
        ax.set_ylabel("source ROI (frozen trunk)")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m.iat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, fraction=0.046)
        figure("Transfer matrix (GNet8r)", "transfer_matrix", fig,
               "Accuracy on each target ROI of a GNet8r trunk trained on the source ROI (new readouts), relative "
               "to the target's own network (St-Yves et al. 2022).")
    tuning, fields = _read(results, "tuning"), _read(results, "fwrf_fields")
    if tuning is not None and fields is not None:
        figure("Layer-wise tuning (fwRF)", "tuning", _tuning_figure(tuning, fields),
               "Mean share of each voxel's explained variance lost when one network layer's features are removed "
               "from its fwRF (exclusion), per ROI.")
    if fields is not None:
        figure("fwRF pooling fields", "fields", _fields_figure(fields),
               "Centre of each voxel's pooling field in the image (image width 1, y up); marker size grows with "
               "the field's size.")
    net = cfg.get("network", {})
    head = (f"<p>Network <code>{html.escape(str(net.get('model')))}</code> "
            f"({'pretrained' if net.get('pretrained', True) else 'random weights'}), layers "
            f"{html.escape(', '.join(map(str, net.get('layers', []))))}; subjects "
            f"{html.escape(', '.join(map(str, study.get('subjects', []))))}; validation "
            f"{html.escape(str(cfg.get('validation')))}; {study.get('n_folds')} fold(s).</p>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>brainlike encoding study</title><style>"
            "body{font-family:sans-serif;max-width:1000px;margin:auto}img{max-width:100%}"
            "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:2px 8px;"
            "border-bottom:1px solid #ddd}</style></head><body><h1>Encoding study</h1>" + head
            + "".join(sections) + "</body></html>")
    from brainlike._io import atomic_write_bytes

    index = out / "index.html"
    atomic_write_bytes(index, page.encode("utf-8"))
    return index
