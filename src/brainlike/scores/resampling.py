"""Uncertainty of a score: bootstrap confidence intervals and permutation p-values.

Two interval methods, one home for both (the pipeline calls these, so a library user gets the
interval ``brainlike run`` reports):

- ``"percentile"``: the quantiles of the bootstrap replicates;
- ``"recentred"``: the replicates' spread placed on the estimate, ``s + (q_lo - m, q_hi - m)``
  with ``m`` their median, clipped to ``bounds``. Resampling test images with replacement makes
  every accuracy noisier and pulls a replicate's BH score toward 0, so the percentile interval of
  a clearly positive score can miss the score; the recentred one keeps the spread and moves the
  location back (``brainlike run``'s interval).

The p-value of a permutation null is ``(1 + #{null >= observed}) / (1 + n)`` (``"greater"``) or
with absolute values (``"two-sided"``), over the finite null values.

The BH-specific resamplers work on the (layer x ROI) table of kept units (see
:mod:`brainlike.scores.bh`), so that they stay fast at the ~650k units of an AlexNet.
"""

from __future__ import annotations

import warnings

import numpy as np

from brainlike._validate import check_choice
from brainlike.scores.bh import (
    SIGNIFICANCE,
    _as_accuracy_list,
    _check_test_args,
    _counts,
    _layer_selections,
    pearson_columns,
    spearman_from_table,
)
from brainlike.scores.result import ScoreResult

CI_METHODS = ("percentile", "recentred")
ALTERNATIVES = ("greater", "two-sided")

# Former names of the results of the bootstrap and the permutation functions: both are ScoreResult now.
BootstrapResult = ScoreResult
PermutationResult = ScoreResult


def _check_level(level) -> None:
    if not (np.isscalar(level) and 0 < float(level) < 1):
        raise ValueError(f"level must be in (0, 1); got {level!r}")


def bootstrap_ci(samples, level: float = 0.95, method: str = "percentile", point: float | None = None,
                 bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """Confidence interval ``(low, high)`` from bootstrap replicates ``samples`` (NaN ones ignored).

    ``method="percentile"``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
    interpolation, as ``numpy.quantile`` and ``scipy.stats.bootstrap(method="percentile")``).
    ``method="recentred"``: ``point + q - median(samples)`` for both quantiles ``q``; needs the
    estimate ``point``. ``bounds`` clips the interval (a correlation lies in (-1, 1)).
    (NaN, NaN) when no replicate is finite or the estimate is NaN.
    """
    check_choice(method, "method", CI_METHODS)
    _check_level(level)
    finite = np.asarray(samples, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))
    if method == "recentred":
        if point is None:
            raise ValueError("point (the estimate) is required for method='recentred'")
        if not np.isfinite(point):
            return float("nan"), float("nan")
        m = float(np.median(finite))
        lo, hi = point + lo - m, point + hi - m
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return float(lo), float(hi)


def permutation_pvalue(null, observed: float, alternative: str = "greater") -> float:
    """``(1 + #{null >= observed}) / (1 + n)`` over the ``n`` finite null values (``|.|`` for
    ``"two-sided"``); NaN when the observed score is NaN or no null value is finite."""
    check_choice(alternative, "alternative", ALTERNATIVES)
    null = np.asarray(null, dtype=np.float64).ravel()
    finite = null[np.isfinite(null)]
    if finite.size == 0 or not np.isfinite(observed):
        return float("nan")
    if alternative == "greater":
        hits = np.sum(finite >= observed - 1e-12)
    else:
        hits = np.sum(np.abs(finite) >= abs(observed) - 1e-12)
    return float((1.0 + hits) / (1.0 + finite.size))


def _check_resampling(n, name):
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"{name} must be a positive integer; got {n!r}")


def _statistic(tables: np.ndarray, sel: np.ndarray | None) -> np.ndarray:
    """BH score per batch of tables (..., n_layers, n_rois), optionally layer-select mean."""
    if sel is None:
        return spearman_from_table(tables)
    return np.nanmean(spearman_from_table(tables[..., sel, :]), axis=-1)


def _selection(layer_select, n_total):
    if layer_select is None:
        return None
    opts = {"n_layers": 5, "n_repeat": 100, "seed": 0, **layer_select}
    return _layer_selections(n_total, opts["n_layers"], opts["n_repeat"], opts["seed"])


def bootstrap_bh_score(
    accuracies,
    n_boot: int = 1000,
    level: float = 0.95,
    seed=0,
    layer_select: dict | None = None,
    pval: float = 0.05,
    *,
    n_samples: int,
    significance: str = "reference",
    ci_method: str = "percentile",
) -> ScoreResult:
    """CI of the BH score over the sampling of units (resampled within each layer).

    Each layer's units are drawn again with replacement (the number of units per layer is
    kept); a unit carries its best ROI and whether it was kept, so one bootstrap replicate is a
    multinomial draw of each layer's category counts. Captures how much the score depends on
    which units were sampled (the reference samples 1000 random units per layer). For the
    uncertainty due to the finite test-image set use :func:`bootstrap_bh_score_images`.

    ``n_samples`` (required): the test images behind each accuracy. ``layer_select``: None for
    :func:`bh_score`, or a dict of :func:`bh_score_layer_select` options (``n_layers``,
    ``n_repeat``, ``seed``); the same layer subsets are used in every replicate, and the
    statistic is their mean. ``ci_method``: see :func:`bootstrap_ci`.
    """
    _check_test_args(pval, n_samples, significance)
    _check_resampling(n_boot, "n_boot")
    _check_level(level)
    check_choice(ci_method, "ci_method", CI_METHODS)
    accs = _as_accuracy_list(accuracies)
    n_rois = accs[0].shape[0]
    sel = _selection(layer_select, len(accs))
    # category counts per layer: kept by ROI, plus one "dropped" bin
    probs, sizes, table = [], [], []
    for a in accs:
        counts, _ = _counts(a, n_rois, pval, n_samples, significance)
        n_units = a.shape[1]
        sizes.append(n_units)
        table.append(counts)
        probs.append(np.append(counts, n_units - counts.sum()) / max(n_units, 1))
    table = np.stack(table)
    score = float(_statistic(table, sel))
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(accs), n_rois))
    for i, (n_units, p) in enumerate(zip(sizes, probs)):
        boot[:, i, :] = rng.multinomial(n_units, p, size=n_boot)[:, :n_rois] if n_units else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        samples = _statistic(boot, sel)
    lo, hi = bootstrap_ci(samples, level, ci_method, point=score, bounds=(-1.0, 1.0))
    return ScoreResult(score, lo, hi, level, ci_method, samples=samples, n_test=n_samples,
                       n_units=int(sum(sizes)), n_kept=int(table.sum()), name="bh",
                       info={"bootstrap": "units", "pval": float(pval), "significance": significance})


def bootstrap_bh_score_images(
    y_true,
    y_pred,
    n_boot: int = 1000,
    level: float = 0.95,
    seed=0,
    resample_units: bool = True,
    layer_select: dict | None = None,
    pval: float = 0.05,
    significance: str = "reference",
    ci_method: str = "percentile",
) -> ScoreResult:
    """CI of the BH score over test images (and units).

    Needs the per-image predictions. Each replicate draws the test images with replacement
    (the same draw for every layer and ROI, since all were tested on the same images),
    recomputes every unit's accuracy from every ROI, re-selects best ROIs and significance
    (n_samples = number of images) and, with ``resample_units``, also resamples units as in
    :func:`bootstrap_bh_score`. ``ci_method="recentred"`` gives the interval of ``brainlike run``.

    Parameters
    ----------
    y_true : list over layers of arrays (n_images, n_units): true unit activations.
    y_pred : list over layers of arrays (n_rois, n_images, n_units): decoded activations.
    """
    check_choice(significance, "significance", SIGNIFICANCE)
    check_choice(ci_method, "ci_method", CI_METHODS)
    _check_resampling(n_boot, "n_boot")
    _check_level(level)
    if len(y_true) != len(y_pred) or len(y_true) < 2:
        raise ValueError(
            f"y_true and y_pred must be lists with one entry per layer (>= 2); got {len(y_true)} and {len(y_pred)}"
        )
    yt = [np.asarray(a, dtype=np.float64) for a in y_true]
    yp = [np.asarray(a, dtype=np.float64) for a in y_pred]
    n_images = yt[0].shape[0]
    n_rois = yp[0].shape[0]
    for i, (a, b) in enumerate(zip(yt, yp)):
        if a.ndim != 2 or b.ndim != 3 or b.shape[1:] != a.shape or a.shape[0] != n_images or b.shape[0] != n_rois:
            raise ValueError(
                f"layer {i}: y_true must be (n_images, n_units) and y_pred (n_rois, n_images, n_units) with "
                f"n_images={n_images}, n_rois={n_rois}; got {a.shape} and {b.shape}"
            )
    _check_test_args(pval, n_images, significance)
    sel = _selection(layer_select, len(yt))

    def tables(idx, rng):
        out = np.empty((len(yt), n_rois))
        for i, (a, b) in enumerate(zip(yt, yp)):
            acc = pearson_columns(a[idx][None], b[:, idx])
            acc[np.isnan(acc)] = 0.0
            counts, cat = _counts(acc, n_rois, pval, n_images, significance)
            if rng is not None:
                cat = cat[rng.integers(0, cat.size, cat.size)]
                counts = np.bincount(cat[cat >= 0], minlength=n_rois)
            out[i] = counts
        return out

    table = tables(np.arange(n_images), None)
    score = float(_statistic(table, sel))
    rng = np.random.default_rng(seed)
    samples = np.empty(n_boot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(n_boot):
            idx = rng.integers(0, n_images, n_images)
            samples[b] = _statistic(tables(idx, rng if resample_units else None), sel)
    lo, hi = bootstrap_ci(samples, level, ci_method, point=score, bounds=(-1.0, 1.0))
    return ScoreResult(score, lo, hi, level, ci_method, samples=samples, n_test=n_images,
                       n_units=int(sum(a.shape[1] for a in yt)), n_kept=int(table.sum()), name="bh",
                       info={"bootstrap": "images+units" if resample_units else "images", "pval": float(pval),
                             "significance": significance})


def permutation_bh_score(
    accuracies,
    n_perm: int = 1000,
    seed=0,
    alternative: str = "greater",
    layer_select: dict | None = None,
    pval: float = 0.05,
    *,
    n_samples: int,
    significance: str = "reference",
) -> ScoreResult:
    """Permutation null of the BH score: layer labels shuffled across units.

    Under the null the layer a unit belongs to says nothing about its best ROI. Each
    permutation reassigns all units (kept or not) to layers at random, keeping the number of
    units per layer; drawn exactly as successive multivariate hypergeometric samples of the
    category counts. p-value: :func:`permutation_pvalue`. ``n_samples`` (required): the test
    images behind each accuracy.
    """
    _check_test_args(pval, n_samples, significance)
    _check_resampling(n_perm, "n_perm")
    check_choice(alternative, "alternative", ALTERNATIVES)
    accs = _as_accuracy_list(accuracies)
    n_rois = accs[0].shape[0]
    sel = _selection(layer_select, len(accs))
    sizes, table = [], []
    for a in accs:
        counts, _ = _counts(a, n_rois, pval, n_samples, significance)
        sizes.append(a.shape[1])
        table.append(counts)
    table = np.stack(table)
    score = float(_statistic(table, sel))
    colors = np.append(table.sum(axis=0), sum(sizes) - table.sum()).astype(np.int64)
    rng = np.random.default_rng(seed)
    null_tables = np.empty((n_perm, len(accs), n_rois))
    remaining = np.repeat(colors[None], n_perm, axis=0)
    for i, n_units in enumerate(sizes):
        if i == len(sizes) - 1:
            draw = remaining
        else:
            draw = np.stack([rng.multivariate_hypergeometric(rem, n_units) for rem in remaining])
        null_tables[:, i, :] = draw[:, :n_rois]
        remaining = remaining - draw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        null = _statistic(null_tables, sel)
    p = permutation_pvalue(null, score, alternative)
    return ScoreResult(score, p_value=p, alternative=alternative, null=null, n_test=n_samples,
                       n_units=int(sum(sizes)), n_kept=int(table.sum()), name="bh",
                       info={"pval": float(pval), "significance": significance})
