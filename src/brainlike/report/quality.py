"""The report's data-quality section: what each BH score rests on, and every degenerate input.

Reads ``data_quality`` (one row per analysis, dnn, subject, roi, layer: accuracies analysed, NaN
accuracies, dead units, constant voxels; written by the pipeline) and the usage columns of
``bh_scores`` (``n_units``, ``n_used``, ``n_kept``, ``reason``). Older results folders without
them give a note instead of a section.
"""

from __future__ import annotations

import html

import pandas as pd


def _table(df: pd.DataFrame, columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for _, r in df.iterrows():
        cells = "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def quality_html(quality: pd.DataFrame | None, scores: pd.DataFrame | None, limit: int = 40) -> str:
    """HTML of the data-quality section (``<h2>`` included)."""
    parts = ["<h2>Data quality</h2>"]
    if scores is not None and {"n_units", "n_used", "n_kept"} <= set(scores.columns):
        cols = ["dnn", "kind", "n_units", "n_used", "n_kept"] + (["reason"] if "reason" in scores.columns else [])
        sc = scores[cols].copy()
        if "reason" in sc:
            sc["reason"] = sc["reason"].fillna("").astype(str)
        parts.append("<p>Units (decoding) or voxels (encoding) behind each BH score: analysed, with a finite "
                     "accuracy from at least one ROI/layer (used), and positive and significant (kept, counted "
                     "in the BH table). A score that cannot be computed is NaN with its reason.</p>")
        parts.append(_table(sc, cols))
    if quality is None:
        parts.append("<p class=note>No data_quality table in this results folder (written by an older "
                     "version): degenerate inputs were not counted.</p>")
        return "".join(parts)
    q = quality
    totals = q.groupby(["analysis", "dnn"], sort=False)[["n", "n_nan"]].sum().reset_index()
    totals = totals.rename(columns={"n": "accuracies", "n_nan": "NaN accuracies"})
    parts.append("<p>NaN accuracies come from constant voxels or dead units (constant over the stimuli); the BH "
                 "score counts them as 0, as the published code does.</p>")
    parts.append(_table(totals, list(totals.columns)))
    dec = q[q["analysis"] == "decoding"]
    dead = dec.drop_duplicates(["dnn", "subject", "layer"])
    dead = dead[dead["n_dead_units"] > 0]
    if len(dead):
        parts.append("<p>Dead units (NaN accuracy from every ROI), per subject and layer:</p>")
        parts.append(_table(dead.head(limit), ["dnn", "subject", "layer", "n", "n_dead_units"]))
    const = q.drop_duplicates(["subject", "roi"])
    const = const[const["n_constant_voxels"] > 0]
    if len(const):
        parts.append("<p>Constant voxels (zero variance over the training samples or the test images), per "
                     "subject and ROI:</p>")
        parts.append(_table(const.head(limit), ["subject", "roi", "n_constant_voxels"]))
    bad = q[q["n_nan"] > 0]
    if len(bad):
        parts.append(f"<p>(subject, ROI, layer) with NaN accuracies: {len(bad)} of {len(q)}"
                     + (f"; the first {limit}:" if len(bad) > limit else ":") + "</p>")
        parts.append(_table(bad.head(limit), ["analysis", "dnn", "subject", "roi", "layer", "n", "n_nan",
                                              "n_usable"]))
    elif not len(dead) and not len(const):
        parts.append("<p>No constant voxel, dead unit or NaN accuracy.</p>")
    return "".join(parts)
