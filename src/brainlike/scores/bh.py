"""Brain Hierarchy (BH) score of Nonaka et al. (2021), with confidence intervals and a null.

The score asks whether the hierarchy of a network's layers lines up with the hierarchy of
visual areas. Decoding-based: for every DNN unit, the ROI from which it is best predicted
(its "best ROI") is kept when that accuracy is positive and significant; the BH score is the
Spearman correlation between layer index and best-ROI index over the kept units. The
encoding-based score swaps the roles (voxels of ROIs, best layer per voxel).

Everything here works on *counts*: once each unit has a best ROI (or is dropped), the score
depends only on the table ``counts[layer, roi]``. Spearman with ties is computed exactly from
that table, which makes layer selection, unit bootstraps and permutation nulls cheap even for
the ~650k units of an AlexNet-sized network.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from brainlike._validate import check_choice
from brainlike.metrics.correlation import pearson, spearman_from_table
from brainlike.scores.result import ScoreResult

SIGNIFICANCE = ("reference", "t-test")


# --------------------------------------------------------------------------------------------
# input checks


def _as_accuracy_list(accuracies, name: str = "accuracies", *, min_items: int = 2,
                      require_usable: bool = True) -> list[np.ndarray]:
    """Validate a hierarchy-ordered list of (n_rois, n_units) arrays; return float64 copies.

    NaN accuracies become 0, as in the reference code (which did it in place; we copy). Values must
    be correlations (finite or NaN, within [-1, 1]). With ``require_usable`` (a score, not a count),
    an item with no finite accuracy (a dead layer) or a row that is NaN in every item (a constant
    ROI) is an error: the reference would silently score the hierarchy over what is left.
    """
    if isinstance(accuracies, np.ndarray) or not isinstance(accuracies, Sequence):
        raise ValueError(
            f"{name} must be a list (hierarchy order) of 2-D arrays (n_rois, n_units); "
            f"got {type(accuracies).__name__}"
        )
    if len(accuracies) < min_items:
        raise ValueError(f"{name} needs at least {min_items} layers; got {len(accuracies)}")
    out, nans = [], []
    n_rows = None
    for i, acc in enumerate(accuracies):
        arr = np.asarray(acc)
        if arr.ndim != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D array (n_rois, n_units); got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name}[{i}] must hold numbers; got dtype {arr.dtype}")
        if n_rows is None:
            n_rows = arr.shape[0]
        elif arr.shape[0] != n_rows:
            raise ValueError(
                f"every {name}[i] must have the same number of rows (ROIs); "
                f"{name}[0] has {n_rows}, {name}[{i}] has {arr.shape[0]}"
            )
        arr = np.asarray(arr, dtype=np.float64)  # no copy when already float64
        nan = np.isnan(arr)
        _check_correlations(arr, nan, f"{name}[{i}]")
        if require_usable and (arr.shape[1] == 0 or nan.all()):
            raise ValueError(
                f"{name}[{i}] has no usable accuracy ({arr.shape[1]} unit(s), all NaN): a dead layer, a constant "
                "ROI or an empty selection cannot be ranked; drop it from the list or fix its inputs"
            )
        if nan.any():
            arr = np.where(nan, 0.0, arr)  # a new array: the caller's is never modified
        nans.append(nan.all(axis=1))
        out.append(arr)
    if n_rows is not None and n_rows < 2:
        raise ValueError(f"{name} arrays need at least 2 rows (ROIs) to rank; got {n_rows}")
    dead_rows = np.flatnonzero(np.logical_and.reduce(nans)) if nans and require_usable else []
    if len(dead_rows):
        raise ValueError(
            f"row {int(dead_rows[0])} of every {name}[i] is all NaN: that ROI (or, for the encoding score, that "
            "layer) has no usable accuracy (constant responses or dead units); drop it or fix its inputs"
        )
    return out


def _check_correlations(arr: np.ndarray, nan: np.ndarray, name: str, tol: float = 1e-6) -> None:
    """Accuracies are correlations: finite (NaN allowed, it counts as 0) and within [-1, 1]."""
    finite = ~nan
    if np.isinf(arr).any():
        k = int(np.isinf(arr).sum())
        raise ValueError(f"{name} holds {k} infinite value(s); accuracies are correlations in [-1, 1]")
    big = finite & (np.abs(np.where(finite, arr, 0.0)) > 1.0 + tol)
    if big.any():
        j = np.argwhere(big)[0]
        raise ValueError(f"{name} holds {int(big.sum())} value(s) outside [-1, 1] (e.g. {arr[tuple(j)]!r} at "
                         f"{tuple(int(v) for v in j)}); accuracies are correlations")


def _check_n_samples(n_samples) -> None:
    if n_samples is None:
        raise ValueError("n_samples is required: the number of test images behind each accuracy (the published "
                         "BH recipe used 50; pass the size of your test set)")
    if isinstance(n_samples, (bool, np.bool_)) or not (isinstance(n_samples, (int, np.integer)) and n_samples > 2):
        raise ValueError(f"n_samples must be an integer > 2 (test images behind each accuracy); got {n_samples!r}")


def _check_test_args(pval, n_samples, significance) -> None:
    if not (np.isscalar(pval) and 0 < float(pval) <= 1):
        raise ValueError(f"pval must be a number in (0, 1]; got {pval!r}")
    _check_n_samples(n_samples)
    check_choice(significance, "significance", SIGNIFICANCE)


# --------------------------------------------------------------------------------------------
# core


def correlation_pvalue(r, n_samples: int, significance: str = "reference") -> np.ndarray:
    """Two-sided p-value of Pearson correlations ``r`` from ``n_samples`` pairs (df = n - 2).

    ``significance="reference"`` reproduces the statistic of the published BHscore code,
    ``t = r * sqrt((n - 2) * (1 - r**2))``; ``"t-test"`` is the textbook
    ``t = r * sqrt((n - 2) / (1 - r**2))``. They agree for small r; the reference one is more
    conservative (at n = 50 it needs r > 0.305 instead of r > 0.279 for p < 0.05), cannot go
    below p = 0.0011 at n = 50, and drops nearly perfect units (r > 0.952 at n = 50, where its
    t falls again). The reference one is the default so that scores equal the published ones;
    use ``"t-test"`` for new work where that matters.
    """
    _check_n_samples(n_samples)
    check_choice(significance, "significance", SIGNIFICANCE)
    r = np.asarray(r, dtype=np.float64)
    df = n_samples - 2
    with np.errstate(invalid="ignore", divide="ignore"):
        if significance == "reference":
            tstat = r * np.sqrt(df * (1.0 - r**2))
        else:
            tstat = r * np.sqrt(df / (1.0 - r**2))
    # Written as in the reference (1 - cdf) so that kept sets agree bit for bit.
    return 2.0 * (1.0 - stats.t.cdf(tstat, df=df))


def best_rois(accuracy: np.ndarray, pval: float = 0.05, *, n_samples: int, significance: str = "reference"):
    """Best row (ROI) per column (unit) and whether the unit is kept.

    Returns ``(best, kept)``: int array (n_units,) of argmax rows (first on ties) and bool
    array (n_units,) true where the best accuracy is > 0 and its p-value < ``pval``.
    ``accuracy`` must already have NaN replaced (see :func:`bh_score`). ``n_samples`` (required):
    the test images behind each accuracy.
    """
    _check_test_args(pval, n_samples, significance)
    # argmax over the few ROI rows by row-wise comparison (first maximum wins, as np.argmax)
    top = np.array(accuracy[0], dtype=np.float64, copy=True)
    best = np.zeros(top.shape, dtype=np.intp)
    for r in range(1, accuracy.shape[0]):
        better = accuracy[r] > top
        np.copyto(top, accuracy[r], where=better)
        best[better] = r
    return best, _significant(top, pval, n_samples, significance)


def _best(accuracy, pval, n_samples, significance):
    return best_rois(accuracy, pval, n_samples=n_samples, significance=significance)


def _significant(top: np.ndarray, pval: float, n_samples: int, significance: str) -> np.ndarray:
    """``(p < pval) & (top > 0)`` exactly as the p-value formula decides it, but the t
    distribution is only evaluated near the critical value (elsewhere the t statistic alone
    decides, since p falls monotonically with t)."""
    df = n_samples - 2
    with np.errstate(invalid="ignore", divide="ignore"):
        if significance == "reference":
            tstat = top * np.sqrt(df * (1.0 - top**2))
        else:
            tstat = top * np.sqrt(df / (1.0 - top**2))
    tcrit = float(stats.t.isf(pval / 2.0, df))
    band = 1e-6 * (1.0 + abs(tcrit))
    with np.errstate(invalid="ignore"):
        kept = tstat > tcrit + band
        border = np.abs(tstat - tcrit) <= band
    if border.any():
        kept[border] = 2.0 * (1.0 - stats.t.cdf(tstat[border], df=df)) < pval
    return kept & (top > 0)


def _counts(accuracy: np.ndarray, n_rois: int, pval, n_samples, significance) -> tuple[np.ndarray, np.ndarray]:
    """(kept counts per ROI (n_rois,), per-unit category: best ROI or -1 when dropped)."""
    best, kept = _best(accuracy, pval, n_samples, significance)
    cat = np.where(kept, best, -1)
    return np.bincount(best[kept], minlength=n_rois).astype(np.float64), cat


def _score_table(table: np.ndarray) -> float:
    rho = float(spearman_from_table(table))
    if np.isnan(rho):
        warnings.warn(
            "BH score is undefined (NaN): the kept units span a single layer or a single ROI "
            f"(kept units per layer: {table.sum(axis=1).astype(int).tolist()})",
            RuntimeWarning,
            stacklevel=3,
        )
    return rho


def bh_table(accuracies, pval: float = 0.05, *, n_samples: int, significance: str = "reference") -> np.ndarray:
    """Count table (n_layers, n_rois) of kept units by layer and best ROI."""
    _check_test_args(pval, n_samples, significance)
    accs = _as_accuracy_list(accuracies, require_usable=False)
    n_rois = accs[0].shape[0]
    return np.stack([_counts(a, n_rois, pval, n_samples, significance)[0] for a in accs])


def nan_reason(table, pval: float, n_samples: int, *, encoding: bool = False) -> str:
    """Why the BH score of a count table (n_layers, n_rois) is undefined ("" when it is defined).

    For the encoding score the table is (n_rois, n_layers) (``encoding=True`` words it so).
    """
    table = np.asarray(table, dtype=np.float64)
    unit, group, best, verb = ("voxel", "ROI", "layer", "predicted") if encoding else ("unit", "layer", "ROI", "decoded")
    kept = int(table.sum())
    if kept == 0:
        return (f"no {unit} is significantly {verb} (p < {pval} with {n_samples} test images) in any {group}; "
                "more test images or a larger pval give a score")
    if int((table.sum(axis=1) > 0).sum()) < 2:
        return f"the {kept} significant {unit}s all lie in one {group} (a rank correlation needs two)"
    if int((table.sum(axis=0) > 0).sum()) < 2:
        return f"the {kept} significant {unit}s all have the same best {best} (a rank correlation needs two)"
    return ""


def _deprecated_tops(result: ScoreResult, flag: str):
    warnings.warn(f"{flag}=True is deprecated: the result always holds them as .top_rois; use "
                  "res = bh_score(...); res.score, res.top_rois", DeprecationWarning, stacklevel=3)
    return result.score, result.top_rois


def bh_score(
    accuracies,
    pval: float = 0.05,
    *,
    n_samples: int,
    return_top_rois: bool = False,
    significance: str = "reference",
    _encoding: bool = False,
) -> ScoreResult:
    """BH score of one network (Nonaka et al. 2021).

    Parameters
    ----------
    accuracies : list of arrays (n_rois, n_units), one per layer in hierarchy order
        Prediction accuracy (Pearson r over ``n_samples`` test images) of every unit from every
        ROI (ROIs in hierarchy order). NaN counts as 0. The inputs are never modified.
        For the encoding-based score pass one array per ROI of shape (n_layers, n_voxels).
    pval : float
        Significance threshold for keeping a unit (two-sided test of its best correlation).
    n_samples : int, required
        Number of test images behind each correlation (the published recipe used 50).
    return_top_rois : bool
        Deprecated: the result holds the best-ROI indices of the kept units (``.top_rois``);
        with True the old ``(score, top_rois)`` tuple is returned, with a DeprecationWarning.
    significance : {"reference", "t-test"}
        Which t statistic decides significance; see :func:`correlation_pvalue`.

    Returns
    -------
    :class:`~brainlike.scores.ScoreResult`: ``.score`` (NaN with ``.reason`` when the kept units
    span one layer or one ROI), ``n_test``, ``n_units``, ``n_used`` (units with a finite accuracy
    from some ROI), ``n_kept``, ``.top_rois`` and the count table ``.arrays["table"]``.
    ``float(result)`` is the score.
    """
    _check_test_args(pval, n_samples, significance)
    accs = _as_accuracy_list(accuracies)
    n_used = int(sum((~np.isnan(np.asarray(a, dtype=np.float64))).any(axis=0).sum() for a in accuracies))
    n_rois = accs[0].shape[0]
    table = np.empty((len(accs), n_rois))
    tops = []
    for i, acc in enumerate(accs):
        best, kept = _best(acc, pval, n_samples, significance)
        table[i] = np.bincount(best[kept], minlength=n_rois)
        tops.append(best[kept])
    score = _score_table(table)
    result = ScoreResult(
        score, n_test=n_samples, n_units=int(sum(a.shape[1] for a in accs)), n_used=n_used, n_kept=int(table.sum()),
        reason=nan_reason(table, pval, n_samples, encoding=_encoding) if np.isnan(score) else "",
        name="bh_encoding" if _encoding else "bh", info={"pval": float(pval), "significance": significance},
        arrays={"table": table, "kept_best": np.concatenate(tops).astype(np.int64),
                "kept_per_item": np.array([t.size for t in tops], dtype=np.int64)})
    return _deprecated_tops(result, "return_top_rois") if return_top_rois else result


def _layer_selections(n_total: int, n_layers: int, n_repeat: int, seed) -> np.ndarray:
    """(n_repeat, n_layers) sorted layer indices: first and last always, the rest at random.

    Uses the legacy ``RandomState`` stream so that ``seed`` reproduces exactly what the
    reference code draws after ``np.random.seed(seed)``.
    """
    if not (isinstance(n_layers, (int, np.integer)) and 2 <= n_layers <= n_total):
        raise ValueError(f"n_layers must be an integer in [2, {n_total}] (the number of layers given); got {n_layers!r}")
    if not (isinstance(n_repeat, (int, np.integer)) and n_repeat >= 1):
        raise ValueError(f"n_repeat must be a positive integer; got {n_repeat!r}")
    rs = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    middle = np.arange(1, n_total - 1)
    sel = np.empty((n_repeat, n_layers), dtype=np.int64)
    for i in range(n_repeat):
        pick = np.sort(rs.choice(middle, size=n_layers - 2, replace=False))
        sel[i] = np.concatenate([[0], pick, [n_total - 1]])
    return sel


def bh_score_layer_select(
    accuracies,
    n_layers: int = 5,
    n_repeat: int = 100,
    seed=0,
    return_top_rois: bool = False,
    pval: float = 0.05,
    *,
    n_samples: int,
    significance: str = "reference",
):
    """BH scores over random layer subsets (the paper's decoding-based score is their mean).

    The first and last layers are always used, ``n_layers - 2`` others are drawn without
    replacement, ``n_repeat`` times. Networks with many layers are thereby not favoured.
    ``seed`` (int, None or ``np.random.RandomState``) gives the same draws as the reference
    after ``np.random.seed(seed)``.

    Returns an array (n_repeat,) of scores, and with ``return_top_rois`` also the list (per
    repeat) of per-layer best-ROI arrays of kept units. ``n_samples`` (required): the test images
    behind each accuracy.
    """
    _check_test_args(pval, n_samples, significance)
    accs = _as_accuracy_list(accuracies)
    n_rois = accs[0].shape[0]
    sel = _layer_selections(len(accs), n_layers, n_repeat, seed)
    per_layer = [_best(a, pval, n_samples, significance) for a in accs]
    table = np.stack([np.bincount(b[k], minlength=n_rois) for b, k in per_layer]).astype(np.float64)
    scores = spearman_from_table(table[sel])
    if np.isnan(scores).any():
        warnings.warn(
            f"{int(np.isnan(scores).sum())} of {n_repeat} layer selections give an undefined (NaN) BH score "
            "(kept units in a single layer or ROI)",
            RuntimeWarning,
            stacklevel=2,
        )
    if return_top_rois:
        tops = [[per_layer[j][0][per_layer[j][1]] for j in row] for row in sel]
        return scores, tops
    return scores


def _pool_subjects(roi_acc, n_voxels, rs, name):
    """One ROI's encoding accuracies: an array (n_layers, n_voxels) or a list of per-subject ones."""
    if isinstance(roi_acc, np.ndarray) or (
        isinstance(roi_acc, Sequence) and len(roi_acc) and np.ndim(roi_acc[0]) == 1
    ):
        parts = [np.asarray(roi_acc)]
    else:
        parts = [np.asarray(p) for p in roi_acc]
    pooled = []
    for s, part in enumerate(parts):
        if part.ndim != 2:
            raise ValueError(f"{name}[{s}] must be a 2-D array (n_layers, n_voxels); got shape {part.shape}")
        if n_voxels is not None and part.shape[1] > n_voxels:
            idx = np.sort(rs.choice(part.shape[1], size=n_voxels, replace=False))
            part = part[:, idx]
        pooled.append(part)
    n_layers = {p.shape[0] for p in pooled}
    if len(n_layers) != 1:
        raise ValueError(f"{name}: every subject needs the same number of layers (rows); got {sorted(n_layers)}")
    return np.hstack(pooled)


def bh_score_encoding(
    accuracies,
    pval: float = 0.05,
    *,
    n_samples: int,
    n_voxels: int | None = 1000,
    seed=0,
    return_top_layers: bool = False,
    significance: str = "reference",
):
    """Encoding-based BH score: per voxel its best layer, Spearman(ROI index, best-layer index).

    Parameters
    ----------
    accuracies : list over ROIs (hierarchy order)
        Each item is an array (n_layers, n_voxels) of voxel encoding accuracies from every layer
        (layers in hierarchy order), or a list of such arrays, one per subject.
    n_voxels : int or None
        As in the paper, at most ``n_voxels`` voxels drawn at random per subject and ROI (then
        pooled across subjects); None uses every voxel (the published accuracy files already
        hold the 1000-voxel samples, so the reproduction passes None).
    seed : int, None or RandomState
        Voxel sampling.
    n_samples : int, required
        Number of test images behind each accuracy.
    return_top_layers : bool
        Deprecated (the result's ``.top_rois`` holds, per ROI, the best layer of each kept voxel).

    Returns a :class:`~brainlike.scores.ScoreResult` as :func:`bh_score` (``n_units`` = voxels).
    """
    if isinstance(accuracies, np.ndarray) or not isinstance(accuracies, Sequence):
        raise ValueError(
            "accuracies must be a list over ROIs of arrays (n_layers, n_voxels) or of per-subject lists; "
            f"got {type(accuracies).__name__}"
        )
    if n_voxels is not None and not (isinstance(n_voxels, (int, np.integer)) and n_voxels > 0):
        raise ValueError(f"n_voxels must be a positive integer or None; got {n_voxels!r}")
    rs = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    pooled = [_pool_subjects(a, n_voxels, rs, f"accuracies[{i}]") for i, a in enumerate(accuracies)]
    result = bh_score(pooled, pval=pval, n_samples=n_samples, significance=significance, _encoding=True)
    result.info.update(n_voxels=n_voxels)
    return _deprecated_tops(result, "return_top_layers") if return_top_layers else result


def bh_score_average(decoding: float, encoding: float) -> float:
    """Averaged BH score: the mean of decoding- and encoding-based scores (numbers or results), as in the paper."""
    return float(np.mean([float(decoding), float(encoding)]))


def pearson_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r per column over axis -2 (samples); batch axes broadcast. NaN where a column holds NaN
    (``nan_policy="propagate"``) and, with one counted warning, where it is constant
    (:func:`brainlike.metrics.pearson`)."""
    return pearson(y_true, y_pred, nan_policy="propagate")
