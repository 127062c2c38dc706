"""Degenerate data, counted: constant voxels, dead units, NaN accuracies per (subject, ROI, layer).

Nothing degenerate is dropped without a word. A constant voxel (zero variance over the training
samples or the test images) or a dead unit (a DNN unit whose accuracy is NaN from every ROI: it
is constant over the test images, or its decoder predicts a constant) gives NaN accuracies,
which the BH score counts as 0 (as the published code does). This module counts them per
``(analysis, dnn, subject, roi, layer)``; the pipeline writes the table to
``results/data_quality.parquet`` and a summary to ``provenance.json``, and the report shows it.
A layer or ROI with no usable accuracy at all makes its BH score NaN with the reason
(:mod:`brainlike.pipeline.scoring`).
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("analysis", "dnn", "subject", "roi", "layer", "n", "n_nan", "n_dead_units", "n_constant_voxels",
           "n_usable")


def constant_voxels(subject_arrays: dict, rois: list[str]) -> dict[str, int]:
    """{roi: number of voxels with zero variance over the training samples or over the test images}."""
    train, test = subject_arrays["train_x"], subject_arrays["test_x"]
    const = (np.ptp(train, axis=0) == 0) | (np.ptp(test, axis=0) == 0)
    return {r: int(const[np.asarray(subject_arrays[f"roi_{r}"], dtype=bool)].sum()) for r in rois}


def data_quality(exp, ctx, collected):
    """Tidy table (one row per analysis, dnn, subject, roi, layer) of what each accuracy rests on.

    ``n``: units (decoding) or voxels (encoding) analysed; ``n_nan``: NaN accuracies among them;
    ``n_dead_units`` (decoding): units of the layer with a NaN accuracy from every ROI;
    ``n_constant_voxels``: constant voxels of the subject's ROI; ``n_usable = n - n_nan``.
    """
    import pandas as pd

    from .store import load_npz

    subjects = list(ctx.subjects)
    const = {s: constant_voxels(load_npz(ctx.subjects[s]), ctx.rois) for s in subjects}
    rows = []
    for dnn, res in collected.get("decoding", {}).items():
        layers = exp.dnns[dnn].layers
        for si, s in enumerate(subjects):
            for li, layer in enumerate(layers):
                acc = np.asarray(res["acc"][si][li])  # (n_rois, n_units)
                nan = np.isnan(acc)
                dead = int(nan.all(axis=0).sum())
                for ri, roi in enumerate(ctx.rois):
                    n_nan = int(nan[ri].sum())
                    rows.append(("decoding", dnn, s, roi, layer, acc.shape[1], n_nan, dead, const[s][roi],
                                 acc.shape[1] - n_nan))
    for dnn, res in collected.get("encoding", {}).items():
        layers = exp.dnns[dnn].layers
        for si, s in enumerate(subjects):
            for ri, roi in enumerate(ctx.rois):
                acc = np.asarray(res["acc"][si][ri])  # (n_layers, n_voxels)
                for li, layer in enumerate(layers):
                    n_nan = int(np.isnan(acc[li]).sum())
                    rows.append(("encoding", dnn, s, roi, layer, acc.shape[1], n_nan, -1, const[s][roi],
                                 acc.shape[1] - n_nan))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df


def summary(df, limit: int = 50) -> dict:
    """Provenance summary: totals per analysis, and the degenerate (subject, ROI, layer) rows."""
    out = {"columns": list(COLUMNS), "totals": {}, "degenerate": [], "n_degenerate": 0}
    if df is None or not len(df):
        return out
    for analysis, g in df.groupby("analysis", sort=False):
        out["totals"][analysis] = {"n_accuracies": int(g["n"].sum()), "n_nan": int(g["n_nan"].sum())}
    bad = df[(df["n_nan"] > 0) | (df["n_constant_voxels"] > 0) | (df["n_dead_units"] > 0)]
    out["n_degenerate"] = int(len(bad))
    out["degenerate"] = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                         for r in bad.head(limit).to_dict("records")]
    return out
