"""BH scores of every DNN from the job results: decoding, encoding and their average, with a
bootstrap confidence interval (over test images and units/voxels) and a permutation p-value
(layer labels shuffled across units), computed with :mod:`brainlike.scores` (the interval and
p-value functions are :func:`brainlike.scores.bootstrap_ci` and
:func:`brainlike.scores.permutation_pvalue`).

Conventions (Nonaka et al. 2021): decoding accuracies are averaged over subjects (the same
units are decoded in every subject) and the score is the mean over random layer subsets
(first and last layer always kept); encoding accuracies are pooled over subjects with at most
``voxels_per_roi`` random voxels per subject and ROI; the averaged score is the mean of both.
Significance of each unit uses ``n_samples`` = the number of test images in the data.
"""

from __future__ import annotations

import warnings

import numpy as np

from brainlike import scores as S
from brainlike.metrics.correlation import pearson


def _accuracy(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Columns' Pearson r over axis -2 (:func:`brainlike.metrics.pearson`, constant columns counted in
    its warning); the BH recipe then scores an undefined (NaN) accuracy as 0, as BHscore does."""
    return np.nan_to_num(pearson(truth, pred, nan_policy="propagate"), nan=0.0)


def _layer_select(n_total: int, sc: dict, seed: int) -> dict | None:
    n_layers = sc["n_layers"]
    if n_layers is None:
        return None
    return {"n_layers": int(min(n_layers, n_total)), "n_repeat": int(sc["n_repeat"]), "seed": int(seed)}


def _decoding_stat(accs: list[np.ndarray], sel: dict | None, pval: float, n_samples: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if sel is None:
            return S.bh_score(accs, pval=pval, n_samples=n_samples).score
        return float(np.nanmean(S.bh_score_layer_select(accs, pval=pval, n_samples=n_samples, **sel)))


def _percentile(samples: np.ndarray, level: float) -> tuple[float, float]:
    return S.bootstrap_ci(samples, level, "percentile")


def _ci(samples: np.ndarray, level: float, point: float) -> tuple[float, float]:
    """The run's interval: :func:`brainlike.scores.bootstrap_ci` ``method="recentred"`` in [-1, 1]."""
    return S.bootstrap_ci(samples, level, "recentred", point=point, bounds=(-1.0, 1.0))


def _with_accuracies(d: dict):
    """(d with "acc" and "n_test" filled from the predictions where left out, preds, truths, n_test)."""
    preds, truths = d.get("pred"), d.get("truth")
    if d.get("acc") is None:
        d = {**d, "acc": [[_accuracy(t[None], p) for t, p in zip(ts, ps)] for ts, ps in zip(truths, preds)],
             "n_test": [ts[0].shape[0] for ts in truths]}
    return d, preds, truths, int(min(d["n_test"]))


def unusable(acc_per_subject, *, items, rows, subjects, item_kind, row_kind, unit) -> str | None:
    """Why a score cannot be computed, or None: an item (layer for decoding, ROI for encoding) with no
    finite accuracy in a subject, or a row (ROI / layer) that is NaN in every item of a subject.

    ``acc_per_subject``: [per subject: list over items of (n_rows, n) accuracies, NaN kept].
    """
    for si, per_item in enumerate(acc_per_subject):
        subj = subjects[si] if subjects is not None else si
        masks = []
        for i, a in enumerate(per_item):
            a = np.asarray(a, dtype=np.float64)
            name = items[i] if items is not None else i
            if a.shape[-1] == 0 or np.isnan(a).all():
                return (f"{item_kind} {name!r} of subject {subj!r} has no usable {unit}: all {a.shape[-1]} "
                        f"{unit}s have a NaN accuracy (constant over the stimuli)")
            masks.append(np.isnan(a).all(axis=-1))
        dead = np.flatnonzero(np.logical_and.reduce(masks))
        if dead.size:
            name = rows[dead[0]] if rows is not None else int(dead[0])
            return (f"{row_kind} {name!r} of subject {subj!r} has no usable accuracy from any {item_kind} "
                    "(constant responses or dead units)")
    return None


def _usage(raw: list[np.ndarray], accs: list[np.ndarray], pval: float, n_samples: int) -> dict:
    """n_units (units or voxels entering the score), n_used (with a finite accuracy from at least one
    ROI/layer), n_kept (significant and positive: the units the BH table counts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kept = int(S.bh_table(accs, pval=pval, n_samples=n_samples).sum())
    return {"n_units": int(sum(a.shape[1] for a in raw)),
            "n_used": int(sum((~np.isnan(a).all(axis=0)).sum() for a in raw)), "n_kept": kept}


def _undefined(reason: str, counts: dict, n_test: int) -> dict:
    nan = float("nan")
    return {"score": nan, "ci_low": nan, "ci_high": nan, "p_perm": nan, "boot": np.full(0, nan),
            "null": np.full(0, nan), "accuracies": None, "n_samples": n_test, "percentile": (nan, nan),
            "reason": reason, **counts}


def decoding_scores(dec: dict, sc: dict, seed: int, *, layers=None, rois=None, subjects=None) -> dict:
    """dec: {"acc": [per subject: list over layers of (n_rois, n_units)], "n_test": [per subject],
    and for the bootstrap "pred": [per subject: list over layers of (n_rois, n_test, n_units)],
    "truth": [per subject: list over layers of (n_test, n_units)]} ("acc" may be left out when
    the predictions are given).

    Returns {score, ci_low, ci_high, p_perm, boot, null, n_units, n_used, n_kept, reason} for the
    decoding-based BH score; NaN with a ``reason`` when a layer or an ROI has no usable accuracy
    (names from ``layers``, ``rois``, ``subjects`` when given).
    """
    dec, preds, truths, n_test = _with_accuracies(dec)
    n_layers = len(dec["acc"][0])
    # units with a NaN accuracy from every ROI in any subject are unusable
    raw = [np.where(np.any([np.isnan(a[layer]).all(axis=0) for a in dec["acc"]], axis=0)[None],
                    np.nan, np.mean([np.nan_to_num(a[layer], nan=0.0) for a in dec["acc"]], axis=0))
           for layer in range(n_layers)]
    why = unusable(dec["acc"], items=layers, rows=rois, subjects=subjects, item_kind="layer", row_kind="ROI",
                   unit="unit")
    sel = _layer_select(n_layers, sc, seed)
    pval = sc["pval"]

    def accuracies(idx_per_subject, unit_idx=None):
        out = []
        for layer in range(n_layers):
            acc = np.mean([_accuracy(t[layer][idx][None], p[layer][:, idx])
                           for t, p, idx in zip(truths, preds, idx_per_subject)], axis=0)
            if unit_idx is not None:
                acc = acc[:, unit_idx[layer]]
            out.append(acc)
        return out

    accs = [np.mean([np.nan_to_num(a[layer], nan=0.0) for a in dec["acc"]], axis=0) for layer in range(n_layers)]
    if why is not None:
        return _undefined(why, {"n_units": int(sum(a.shape[1] for a in raw)),
                                "n_used": int(sum((~np.isnan(a).all(axis=0)).sum() for a in raw)), "n_kept": 0}, n_test)
    counts = _usage(raw, accs, pval, n_test)
    score = _decoding_stat(accs, sel, pval, n_test)
    rng = np.random.default_rng([seed, 1])
    boot = np.full(int(sc["n_boot"]) if preds is not None else 0, np.nan)
    for b in range(boot.size):
        idx = [rng.integers(0, t[0].shape[0], t[0].shape[0]) for t in truths]
        units = [rng.integers(0, a.shape[1], a.shape[1]) for a in accs]
        with warnings.catch_warnings():  # constant columns of a replicate: counted once, on the data
            warnings.simplefilter("ignore", RuntimeWarning)
            acc_b = accuracies(idx, units)
        boot[b] = _decoding_stat(acc_b, sel, pval, n_test)
    null = np.full(0, np.nan)
    p = float("nan")
    if sc["n_perm"] > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = S.permutation_bh_score(accs, n_perm=int(sc["n_perm"]), seed=seed + 2, layer_select=sel,
                                         pval=pval, n_samples=n_test)
        null, p = np.asarray(res.null), float(res.p_value)
    lo, hi = _ci(boot, sc["ci"], score)
    return {"score": score, "ci_low": lo, "ci_high": hi, "p_perm": p, "boot": boot, "null": null,
            "accuracies": accs, "n_samples": n_test, "percentile": _percentile(boot, sc["ci"]), "reason": "",
            **counts}


def _pool(parts_per_roi: list[list[np.ndarray]], n_voxels, seed: int) -> list[np.ndarray]:
    """Pool subjects per ROI, drawing voxels exactly as :func:`brainlike.scores.bh_score_encoding`."""
    rs = np.random.RandomState(seed)
    pooled = []
    for parts in parts_per_roi:
        keep = []
        for part in parts:
            if n_voxels is not None and part.shape[1] > n_voxels:
                part = part[:, np.sort(rs.choice(part.shape[1], size=n_voxels, replace=False))]
            keep.append(part)
        pooled.append(np.hstack(keep))
    return pooled


def encoding_scores(enc: dict, sc: dict, seed: int, *, layers=None, rois=None, subjects=None) -> dict:
    """enc: {"acc": [per subject: list over ROIs of (n_layers, n_voxels)], "n_test": [per subject],
    and for the bootstrap "pred": [per subject: list over ROIs of (n_layers, n_test, n_voxels)],
    "truth": [per subject: list over ROIs of (n_test, n_voxels)]}. NaN with a ``reason`` when an ROI
    or a layer has no usable accuracy."""
    enc, preds, truths, n_test = _with_accuracies(enc)
    why = unusable(enc["acc"], items=rois, rows=layers, subjects=subjects, item_kind="ROI", row_kind="layer",
                   unit="voxel")
    n_rois = len(enc["acc"][0])
    pval, nv = sc["pval"], sc["voxels_per_roi"]

    def accuracies(idx_per_subject, vox=None):
        per_roi = []
        for r in range(n_rois):
            parts = []
            for s, (t, p, idx) in enumerate(zip(truths, preds, idx_per_subject)):
                a = _accuracy(t[r][idx][None], p[r][:, idx])
                if vox is not None:
                    a = a[:, vox[s][r]]
                parts.append(a)
            per_roi.append(parts)
        return per_roi

    def stat(per_roi):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return S.bh_score(_pool(per_roi, nv, seed), pval=pval, n_samples=n_test).score

    per_roi = [[np.nan_to_num(a[r], nan=0.0) for a in enc["acc"]] for r in range(n_rois)]
    pooled = _pool(per_roi, nv, seed)
    raw = _pool([[np.asarray(a[r], dtype=np.float64) for a in enc["acc"]] for r in range(n_rois)], nv, seed)
    if why is not None:
        return _undefined(why, {"n_units": int(sum(a.shape[1] for a in raw)),
                                "n_used": int(sum((~np.isnan(a).all(axis=0)).sum() for a in raw)), "n_kept": 0}, n_test)
    counts = _usage(raw, pooled, pval, n_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        score = S.bh_score(pooled, pval=pval, n_samples=n_test).score
    rng = np.random.default_rng([seed, 3])
    boot = np.full(int(sc["n_boot"]) if preds is not None else 0, np.nan)
    for b in range(boot.size):
        idx = [rng.integers(0, t[0].shape[0], t[0].shape[0]) for t in truths]
        vox = [[rng.integers(0, tr.shape[1], tr.shape[1]) for tr in t] for t in truths]
        with warnings.catch_warnings():  # constant columns of a replicate: counted once, on the data
            warnings.simplefilter("ignore", RuntimeWarning)
            acc_b = accuracies(idx, vox)
        boot[b] = stat(acc_b)
    null = np.full(0, np.nan)
    p = float("nan")
    if sc["n_perm"] > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = S.permutation_bh_score(pooled, n_perm=int(sc["n_perm"]), seed=seed + 4, pval=pval,
                                         n_samples=n_test)
        null, p = np.asarray(res.null), float(res.p_value)
    lo, hi = _ci(boot, sc["ci"], score)
    return {"score": score, "ci_low": lo, "ci_high": hi, "p_perm": p, "boot": boot, "null": null,
            "accuracies": per_roi, "n_samples": n_test, "percentile": _percentile(boot, sc["ci"]), "reason": "",
            **counts}


def average_scores(d: dict, e: dict, sc: dict) -> dict:
    """Averaged BH score; CI and null from paired bootstrap replicates / permutations. NaN, with the
    reason, when either score is undefined."""
    counts = {k: int(d.get(k, 0)) + int(e.get(k, 0)) for k in ("n_units", "n_used", "n_kept")}
    reasons = [f"{kind}: {r['reason']}" for kind, r in (("decoding", d), ("encoding", e)) if r.get("reason")]
    if reasons:
        return _undefined("; ".join(reasons), counts, int(min(d["n_samples"], e["n_samples"])))
    score = float(S.bh_score_average(d["score"], e["score"]))
    boot = (d["boot"] + e["boot"]) / 2 if d["boot"].size == e["boot"].size else np.full(0, np.nan)
    lo, hi = _ci(boot, sc["ci"], score)
    n = min(d["null"].size, e["null"].size)
    null = (d["null"][:n] + e["null"][:n]) / 2
    p = S.permutation_pvalue(null, score) if n else float("nan")
    return {"score": score, "ci_low": lo, "ci_high": hi, "p_perm": p, "percentile": _percentile(boot, sc["ci"]),
            "boot": boot, "null": null, "n_samples": int(min(d["n_samples"], e["n_samples"])), "reason": "", **counts}


# ------------------------------------------------------------------------------ registered scores
def why_nan(accuracies, pval: float, n_samples: int, *, encoding: bool = False, layer_select: bool = True) -> str:
    """Why a BH score is undefined: accuracies per layer (n_rois, n_units) for decoding, per ROI
    (n_layers, n_voxels) for encoding (see :func:`brainlike.scores.nan_reason`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = S.bh_table([np.nan_to_num(np.asarray(a, dtype=float), nan=0.0) for a in accuracies],
                               pval=pval, n_samples=n_samples)
    except ValueError as e:
        return str(e)
    group = "ROI" if encoding else "layer"
    return S.nan_reason(table, pval, n_samples, encoding=encoding) or f"undefined in every random {group} selection"


def _result(name: str, r: dict, sc: dict) -> S.ScoreResult:
    lo_p, hi_p = r["percentile"]
    return S.ScoreResult(
        r["score"], r["ci_low"], r["ci_high"], level=float(sc["ci"]), ci_method="recentred", p_value=r["p_perm"],
        alternative="greater", samples=r.get("boot", np.zeros(0)), null=r.get("null", np.zeros(0)),
        n_test=r["n_samples"], n_units=r["n_units"], n_used=r["n_used"], n_kept=r["n_kept"], reason=r["reason"],
        name=name, info={"ci_low_percentile": lo_p, "ci_high_percentile": hi_p, "pval": float(sc["pval"])})


def _as_dict(res: S.ScoreResult) -> dict:
    return {"score": res.score, "boot": res.samples, "null": res.null, "reason": res.reason, "n_samples": res.n_test,
            "n_units": res.n_units, "n_used": res.n_used, "n_kept": res.n_kept}


def decoding_score(inputs) -> S.ScoreResult | None:
    """Registered score ``bh_decoding`` (:func:`decoding_scores` as a :class:`~brainlike.scores.ScoreResult`);
    None without decoding results or with fewer than 2 layers or 2 ROIs."""
    if inputs.decoding is None or not _rankable(inputs):
        return None
    d = decoding_scores(inputs.decoding, inputs.settings, inputs.seed, layers=inputs.layers, rois=inputs.rois,
                        subjects=inputs.subjects)
    if not np.isfinite(d["score"]) and not d["reason"]:
        d["reason"] = why_nan(d["accuracies"], inputs.settings["pval"], d["n_samples"])
    return _result("bh_decoding", d, inputs.settings)


def encoding_score(inputs) -> S.ScoreResult | None:
    """Registered score ``bh_encoding`` (:func:`encoding_scores`); None without encoding results."""
    if inputs.encoding is None:
        return None
    e = encoding_scores(inputs.encoding, inputs.settings, inputs.seed, layers=inputs.layers, rois=inputs.rois,
                        subjects=inputs.subjects)
    if not np.isfinite(e["score"]) and not e["reason"]:
        pooled = _pool(e["accuracies"], inputs.settings["voxels_per_roi"], inputs.seed)
        e["reason"] = why_nan(pooled, inputs.settings["pval"], e["n_samples"], encoding=True)
    return _result("bh_encoding", e, inputs.settings)


def average_score(inputs) -> S.ScoreResult | None:
    """Registered score ``bh_average`` (:func:`average_scores` of ``bh_decoding`` and ``bh_encoding``);
    None unless both were computed."""
    d, e = inputs.results.get("bh_decoding"), inputs.results.get("bh_encoding")
    if d is None or e is None:
        return None
    return _result("bh_average", average_scores(_as_dict(d), _as_dict(e), inputs.settings), inputs.settings)


def _rankable(inputs) -> bool:
    n_layers = len(inputs.layers) if inputs.layers is not None else len(inputs.decoding["acc" if inputs.decoding.get(
        "acc") is not None else "truth"][0])
    n_rois = len(inputs.rois or [])
    return n_layers >= 2 and n_rois >= 2
