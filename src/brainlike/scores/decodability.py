"""Per-unit decodability of DNN features (Horikawa, Aoki, Tsukamoto & Kamitani 2019).

Which units of a network can be read out of the brain? For every unit, the decoding accuracy
is the Pearson correlation between its true and decoded values across test images. These
functions work on the tidy results table written by the pipeline (columns ``dnn, subject,
roi, layer, layer_index, unit, accuracy``) and on plain arrays.

The published data (figshare, "decodedDNN") store one file per layer and subject,
``accuracy/<net>/<layer>/accuracy-<net>-<layer>-<subject>.mat`` (variable ``accuracy``) and
``rank/<net>/<layer>/rank-<net>-<layer>-<subject>.mat`` (variable ``rank``, 1 = most decodable),
with ``Averaged`` as the subject-averaged entry (names: :mod:`brainlike.datasets.decodeddnn`);
:func:`export_decodability` writes that layout.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from brainlike._validate import as_2d_float, check_same_rows
from brainlike.scores.bh import pearson_columns
from brainlike.metrics.correlation import pearson

TABLE_COLUMNS = ("dnn", "subject", "roi", "layer", "layer_index", "unit", "accuracy")
UNIT_KEYS = ["dnn", "roi", "layer", "layer_index", "unit"]


def _check_table(table, name="table", columns=TABLE_COLUMNS) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame with columns {list(columns)}; got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; expected {list(columns)}, got {list(table.columns)}")
    return table


def unit_accuracy(y_true, y_pred) -> np.ndarray:
    """Decoding accuracy per unit: Pearson r between true and decoded values over samples.

    ``y_true``, ``y_pred``: (n_samples, n_units). Returns (n_units,); NaN for constant units.
    """
    yt = as_2d_float(y_true, "y_true", dtype=np.float64, min_rows=3)
    yp = as_2d_float(y_pred, "y_pred", dtype=np.float64, min_rows=3)
    check_same_rows(yt, yp, "y_true", "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {yt.shape} and {yp.shape}")
    return pearson_columns(yt, yp)


def rank_units(accuracy) -> np.ndarray:
    """Within-layer ranks, 1 = most decodable; NaN accuracies rank last; ties by unit order."""
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim != 1:
        raise ValueError(f"accuracy must be 1-D (n_units,); got shape {acc.shape}")
    key = np.where(np.isnan(acc), np.inf, -acc)
    return rankdata(key, method="ordinal").astype(np.int64)


def add_ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``table`` with a ``rank`` column: rank of each unit within its (dnn, subject, roi, layer)."""
    t = _check_table(table).copy()
    t["rank"] = t.groupby(["dnn", "subject", "roi", "layer"], sort=False)["accuracy"].transform(
        lambda s: rank_units(s.to_numpy())
    )
    return t


def average_subjects(table: pd.DataFrame, name: str = "Average") -> pd.DataFrame:
    """Accuracy of every unit averaged over subjects (NaN ignored), as subject ``name``.

    Units are matched by (dnn, roi, layer, unit); a unit missing in some subject is averaged
    over the subjects that have it.
    """
    t = _check_table(table)
    avg = t.groupby(UNIT_KEYS, sort=False, as_index=False)["accuracy"].mean()
    avg.insert(1, "subject", name)
    return avg[list(TABLE_COLUMNS)]


def intersubject_correlation(table: pd.DataFrame, by=("dnn", "roi", "layer")) -> pd.DataFrame:
    """Pearson correlation of unit decodability between every pair of subjects.

    One row per group in ``by`` (default: each layer of each DNN and ROI) and subject pair,
    with ``r`` and ``n_units`` (units present, with finite accuracy, in both). Pass
    ``by=("dnn", "roi")`` to pool the units of all layers.
    """
    t = _check_table(table)
    by = list(by)
    rows = []
    for key, g in t.groupby(by, sort=False):
        wide = g.pivot_table(index=["layer", "unit"], columns="subject", values="accuracy", aggfunc="first")
        subjects = list(wide.columns)
        for a, b in itertools.combinations(subjects, 2):
            x, y = wide[a].to_numpy(), wide[b].to_numpy()
            ok = np.isfinite(x) & np.isfinite(y)
            r = pearson(x, y, nan_policy="omit", min_samples=3)
            rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                         "subject_a": a, "subject_b": b, "r": float(r), "n_units": int(ok.sum())})
    return pd.DataFrame(rows, columns=[*by, "subject_a", "subject_b", "r", "n_units"])


def intersubject_matrix(table: pd.DataFrame, dnn=None, roi=None, layer=None) -> pd.DataFrame:
    """Square subject x subject matrix of inter-subject correlations (units of all selected layers)."""
    t = _check_table(table)
    for col, val in (("dnn", dnn), ("roi", roi), ("layer", layer)):
        if val is not None:
            if val not in set(t[col]):
                raise ValueError(f"{col} must be one of {sorted(set(t[col]))}; got {val!r}")
            t = t[t[col] == val]
    wide = t.pivot_table(index=["dnn", "roi", "layer", "unit"], columns="subject", values="accuracy", aggfunc="first")
    return wide.corr(method="pearson", min_periods=3)


def export_decodability(table: pd.DataFrame, out_dir, average: bool = True, roi_folders: bool | None = None) -> list[Path]:
    """Write accuracies and ranks in the published decodedDNN layout (read back by
    :func:`brainlike.datasets.load_decodability`).

    ``<out>/[<roi>/]accuracy/<dnn>/<layer>/accuracy-<dnn>-<layer>-<subject>.mat`` (``accuracy``,
    1 x n_units) and ``.../rank/<dnn>/<layer>/rank-<dnn>-<layer>-<subject>.mat`` (``rank``, 1 =
    best), units in ``unit`` order; ``Averaged`` (mean over subjects, then ranked) when
    ``average``. The ``<roi>/`` level is added when the table has several ROIs (published data:
    one ROI, VC), or as forced by ``roi_folders``. Files are written atomically. Returns the
    paths written.
    """
    from brainlike.datasets.decodeddnn import AVERAGED, write_unit_values

    t = _check_table(table)
    if average:
        t = pd.concat([t[list(TABLE_COLUMNS)], average_subjects(t, name=AVERAGED)], ignore_index=True)
    if roi_folders is None:
        roi_folders = t["roi"].nunique() > 1
    out = Path(out_dir)
    written = []
    for (dnn, roi, layer, subject), g in t.groupby(["dnn", "roi", "layer", "subject"], sort=False):
        g = g.sort_values("unit")
        acc = g["accuracy"].to_numpy(dtype=np.float64)
        base = out / str(roi) if roi_folders else out
        for mode, values in (("accuracy", acc), ("rank", rank_units(acc).astype(np.float64))):
            written.append(write_unit_values(base, mode, str(dnn), str(layer), str(subject), values))
    return written


def preferred_images(features, accuracy, stimulus_ids=None, n_units: int = 5, n_images: int = 5) -> pd.DataFrame:
    """The images that drive the most decodable units most strongly.

    ``features``: (n_images, n_units) true activations of one layer; ``accuracy``: (n_units,)
    decodability of those units. Returns one row per (top unit, preferred image) with
    ``unit, unit_rank, accuracy, image_rank, stimulus_id, activation``.
    """
    X = as_2d_float(features, "features", dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.shape != (X.shape[1],):
        raise ValueError(f"accuracy must have shape ({X.shape[1]},) to match features' units; got {acc.shape}")
    ids = np.asarray(stimulus_ids if stimulus_ids is not None else [str(i) for i in range(X.shape[0])])
    if ids.shape != (X.shape[0],):
        raise ValueError(f"stimulus_ids must have {X.shape[0]} entries (one per row of features); got {ids.shape}")
    ranks = rank_units(acc)
    top = np.argsort(ranks)[: min(n_units, X.shape[1])]
    rows = []
    for u in top:
        order = np.argsort(-X[:, u], kind="stable")[: min(n_images, X.shape[0])]
        for j, i in enumerate(order):
            rows.append({"unit": int(u), "unit_rank": int(ranks[u]), "accuracy": float(acc[u]),
                         "image_rank": j + 1, "stimulus_id": str(ids[i]), "activation": float(X[i, u])})
    return pd.DataFrame(rows)
