"""The report: figures (PNG + SVG) and one self-contained HTML page from a results folder.

``write_report(results_dir, out_dir)`` reads the current results generation of a run with
:func:`brainlike.pipeline.load_results` (``decoding_accuracy``, ``encoding_accuracy`` as Parquet or
CSV, ``bh_scores``, ``provenance.json``, checked against the generation's manifest; see the
contracts) and writes ``index.html`` with every figure embedded as base64 PNG, plus
``figures/<name>.png`` and ``.svg``. Missing tables only drop the figures that need them; an
undefined (NaN) BH score is shown as such with its reason.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.report import figures as F
from brainlike._io import atomic_write_bytes

__all__ = ["write_report", "read_results", "figures"]


def _find_key(obj, keys):
    """All values of the given keys anywhere in a nested JSON object."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(v)
            else:
                out.extend(_find_key(v, keys))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_find_key(v, keys))
    return out


def read_results(results_dir, *, staged: bool = False) -> dict:
    """The results tables and provenance of a results folder (``<out>`` or ``<out>/results``).

    Read through :func:`brainlike.pipeline.load_results`: the current generation of a run, checked
    against its manifest (``staged=True``: the generation a run is still writing).
    """
    from brainlike.pipeline.generations import load_results

    loaded = load_results(results_dir, staged=staged)
    results, prov = loaded.dir, loaded.provenance
    dec = loaded.tables.get("decoding_accuracy")
    enc = loaded.tables.get("encoding_accuracy")
    scores = loaded.tables.get("bh_scores")
    quality = loaded.tables.get("data_quality")
    for name, t, cols in (("decoding_accuracy", dec, F_DEC), ("encoding_accuracy", enc, F_ENC),
                          ("bh_scores", scores, F_SCORES)):
        if t is not None:
            missing = [c for c in cols if c not in t.columns]
            if missing:
                raise ValueError(f"{results}/{name}: missing column(s) {missing}; expected {list(cols)}")
    n_test = _find_key(prov, {"n_test_images", "n_test", "n_samples"})
    return {"dir": results, "decoding": dec, "encoding": enc, "scores": scores, "provenance": prov,
            "quality": quality,
            "n_samples": int(min(n_test)) if n_test else None, "generation": loaded.generation}


F_DEC = ("dnn", "subject", "roi", "layer", "layer_index", "unit", "accuracy")
F_ENC = ("dnn", "subject", "roi", "layer", "layer_index", "voxel", "accuracy")
F_SCORES = ("dnn", "kind", "score")


def _save(fig, figdir: Path, name: str) -> str:
    """Write PNG and SVG; return the PNG as base64."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    png = buf.getvalue()
    atomic_write_bytes(figdir / f"{name}.png", png)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    atomic_write_bytes(figdir / f"{name}.svg", buf.getvalue())
    return base64.b64encode(png).decode("ascii")


def _roi_order(res) -> list | None:
    for key in ("rois",):
        vals = _find_list(res["provenance"], key)
        if vals:
            return vals
    return None


def _find_list(obj, key):
    if isinstance(obj, dict):
        if isinstance(obj.get(key), list) and all(isinstance(v, str) for v in obj[key]):
            return obj[key]
        for v in obj.values():
            r = _find_list(v, key)
            if r:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = _find_list(v, key)
            if r:
                return r
    return None


def _scores_html(scores: pd.DataFrame) -> tuple[str, list[str]]:
    """The BH score table, and the reasons of its undefined (NaN) scores as notes."""
    kinds = [k for k in ("decoding", "encoding", "average") if k in set(scores["kind"])]
    kinds += [k for k in dict.fromkeys(scores["kind"]) if k not in kinds]
    rank = "average" if "average" in kinds else kinds[0]
    by_rank = scores[scores["kind"] == rank].set_index("dnn")["score"].astype(float)
    dnns = list(dict.fromkeys(scores["dnn"]))
    # ranked by score, undefined scores last (in their order of appearance)
    order = sorted(dnns, key=lambda d: (-by_rank.get(d, np.nan) if np.isfinite(by_rank.get(d, np.nan)) else np.inf,
                                        dnns.index(d)))
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in kinds)
    rows, notes = [], []
    for dnn in order:
        cells = []
        for k in kinds:
            r = scores[(scores["dnn"] == dnn) & (scores["kind"] == k)]
            if r.empty:
                cells.append("<td>–</td>")
                continue
            r = r.iloc[0]
            if not np.isfinite(float(r["score"])):
                reason = r.get("reason")
                reason = str(reason) if isinstance(reason, str) and reason else "undefined (no reason recorded)"
                notes.append(f"{dnn}, {k}: BH score undefined (NaN): {reason}")
                cells.append(f"<td title='{html.escape(reason, quote=True)}'>NaN <span class=ci>"
                             f"[{len(notes)}]</span></td>")
                continue
            txt = f"{r['score']:.3f}"
            if np.isfinite(r.get("ci_low", np.nan)) and np.isfinite(r.get("ci_high", np.nan)):
                txt += f" <span class=ci>[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</span>"
            if np.isfinite(r.get("p_perm", np.nan)):
                txt += f" <span class=ci>p={r['p_perm']:.3g}</span>"
            cells.append(f"<td>{txt}</td>")
        rows.append(f"<tr><th>{html.escape(str(dnn))}</th>{''.join(cells)}</tr>")
    table = f"<table><tr><th>network</th>{head}</tr>{''.join(rows)}</table>"
    if notes:
        table += "<ol class=note>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ol>"
    return table, notes


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
.ci{color:#777;font-size:.85em}.note{color:#a60}code{background:#f4f4f4;padding:0 .2em}"""


def write_report(results_dir, out_dir=None, pval: float = 0.05, roi=None, dnn=None, *, staged: bool = False) -> Path:
    """Write the HTML report and figures; return the path of ``index.html``.

    Parameters
    ----------
    results_dir : folder with the results tables (``<out>`` or ``<out>/results``).
    out_dir : where to write (default: ``report`` beside the ``results`` folder).
    pval : threshold for keeping units in the best-ROI distribution (as the BH score).
    roi, dnn : ROI and network of the decodability figures (default: the ROI with the highest
        median decoding accuracy; the network ranked first by BH score).
    staged : read a generation that a run is still writing (used by the run itself).
    """
    res = read_results(results_dir, staged=staged)
    results = res["dir"]
    out = Path(out_dir) if out_dir is not None else results.parent / "report"
    figdir = out / "figures"
    dec, enc, scores = res["decoding"], res["encoding"], res["scores"]
    notes = []
    n_samples = res["n_samples"]
    if n_samples is None:
        notes.append("The number of test images was not found in provenance.json: no best-ROI / best-layer figure "
                     "(which units are significant depends on it).")
    rois = _roi_order(res)
    sections = []

    def add(title, name, fig, caption):
        b64 = _save(fig, figdir, name)
        sections.append(
            f"<h2>{html.escape(title)}</h2><figure><img alt='{name}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{caption} <a href='figures/{name}.svg'>SVG</a></figcaption></figure>"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if scores is not None and np.isfinite(scores["score"].to_numpy(dtype=float)).any():
            add("BH score ranking", "bh_ranking", F.bh_ranking(scores),
                "Brain hierarchy scores of the networks (Nonaka et al. 2021, Fig. 3): bars are the scores, "
                "whiskers the bootstrap 95% confidence intervals, * a permutation p &lt; 0.05 (layer labels shuffled).")
        if dec is not None and len(dec) and dec["roi"].nunique() < 2:
            notes.append("One ROI: no best-ROI figure (a decodability study; the BH score needs at least 2 ROIs).")
        elif dec is not None and len(dec) and n_samples is not None:
            add("Best ROI of each layer's units", "best_roi_distribution",
                F.best_roi_distribution(dec, rois=rois, n_samples=n_samples, pval=pval),
                "For each layer, the share of its units (pooled over subjects) best decoded from each ROI, among units "
                f"whose best accuracy is positive and significant (p &lt; {pval}, n = {n_samples}); Nonaka et al. 2021, Fig. 1.")
        if enc is not None and len(enc) and n_samples is not None:
            add("Best layer of each ROI's voxels", "best_layer_distribution",
                F.best_roi_distribution(enc, rois=rois, n_samples=n_samples, pval=pval, kind="encoding"),
                "Encoding analysis: for each ROI, the share of its voxels best predicted by each layer.")
        if dec is not None and len(dec):
            if roi is None:
                med = dec.groupby("roi")["accuracy"].median()
                roi_d = med.idxmax()
            else:
                roi_d = roi
            if dnn is None and scores is not None and len(scores):
                kind = "average" if "average" in set(scores["kind"]) else scores["kind"].iloc[0]
                ranked = scores[scores["kind"] == kind].sort_values("score", ascending=False, na_position="last")["dnn"]
                dnn_d = next((d for d in ranked if d in set(dec["dnn"])), dec["dnn"].iloc[0])
            else:
                dnn_d = dnn if dnn is not None else dec["dnn"].iloc[0]
            add("Decoding accuracy per layer", "accuracy_violins", F.accuracy_violins(dec, roi=roi_d),
                f"Distribution of unit decoding accuracies (Pearson r, mean over subjects) from {html.escape(str(roi_d))} "
                "for each layer (Horikawa et al. 2019, Fig. 2a). Line: median.")
            subjects = list(dict.fromkeys(dec["subject"]))
            if len(subjects) >= 2:
                add("Unit decodability in two subjects", "subject_scatter",
                    F.subject_scatter(dec, dnn=dnn_d, roi=roi_d, subjects=subjects[:2]),
                    f"Decoding accuracy of every unit of {html.escape(str(dnn_d))} in two subjects (Horikawa et al. 2019, "
                    "Fig. 2b); colour: layer. Consistent decodability across subjects points at systematic brain–DNN differences.")
                add("Inter-subject correlation", "intersubject_matrix",
                    F.intersubject_matrix_figure(dec, dnn=dnn_d, roi=roi_d),
                    "Pearson correlation of unit decoding accuracies between every pair of subjects "
                    "(Horikawa et al. 2019, Fig. 2c).")
            else:
                notes.append("Only one subject: no inter-subject figures.")
    if not sections and (scores is None or not len(scores)):
        raise ValueError(f"{results}: nothing to report (no non-empty decoding/encoding/bh_scores tables)")

    prov = res["provenance"]
    summary = []
    for label, t in (("decoding", dec), ("encoding", enc)):
        if t is not None:
            summary.append(f"<li>{label}: {t['dnn'].nunique()} network(s), {t['subject'].nunique()} subject(s), "
                           f"ROIs {', '.join(map(str, dict.fromkeys(t['roi'])))}, {len(t):,} accuracies</li>")
    summary.append(f"<li>test images per accuracy: {n_samples if n_samples is not None else 'not recorded'}</li>")
    versions = prov.get("versions") if isinstance(prov, dict) else None
    if versions:
        summary.append("<li>versions: " + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</li>")
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>brainlike report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>How brain-like are these networks?</h1>",
        f"<p>Results from <code>{html.escape(str(results))}</code>"
        + (f" (generation <code>{html.escape(res['generation'])}</code>)" if res.get("generation") else "")
        + ", report written "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        f"<ul>{''.join(summary)}</ul>",
    ]
    page += [f"<p class=note>{html.escape(n)}</p>" for n in notes]
    if scores is not None and len(scores):
        page += ["<h2>BH scores</h2>", _scores_html(scores)[0]]
    page += sections
    from brainlike.report.quality import quality_html

    page.append(quality_html(res.get("quality"), scores))
    if prov:
        page.append("<h2>Provenance</h2><details><summary>provenance.json</summary><pre>"
                    + html.escape(json.dumps(prov, indent=1, default=str)[:20000]) + "</pre></details>")
    page.append("</body></html>")
    index = out / "index.html"
    atomic_write_bytes(index, "\n".join(page).encode("utf-8"))
    return index
