"""Layer-to-ROI mapping studies: ridge and PLS from DNN features to voxel / neuron responses.

``map_layers`` fits, for every (layer, ROI) pair, a per-voxel-alpha ``RidgeCV`` and a ``PLSCV``
(number of components chosen by inner CV) on the same splits, and scores every voxel (Pearson r and
R² on each evaluation set), the ROI-averaged response (a model fitted to the mean response of the
ROI's voxels) and, where the data hold repetitions, the noise ceiling of each voxel and of the ROI
average, with ceiling-normalised scores. Noisy voxels and bad models can then be told apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from brainlike._validate import as_2d_float, check_choice
from brainlike._zscore import train_stats
from brainlike.ids import align
from brainlike.linear.rowspace import row_space
from brainlike.metrics.correlation import pearson, r2
from brainlike.mapping.result import MappingResult  # noqa: F401  (re-exported)
from brainlike.mapping.splits import Splits, inner_folds, make_splits

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_PLS_COMPONENTS",
    "METHODS",
    "MappingResult",
    "check_names",
    "map_layers",
    "repeat_tensor",
]

METHODS = ("ridge", "pls")
DEFAULT_ALPHAS = np.logspace(-1, 6, 8)
DEFAULT_PLS_COMPONENTS = (1, 2, 4, 8, 16, 32)


def check_names(requested, valid: Sequence[str], name: str) -> list[str]:
    """Resolve ``requested`` (None / "all" = every one, a name or a list) against ``valid``."""
    valid = list(valid)
    if requested is None or requested == "all" or (isinstance(requested, (list, tuple)) and list(requested) == ["all"]):
        return valid
    req = [requested] if isinstance(requested, str) else list(requested)
    if not req:
        raise ValueError(f"{name} must name at least one of {valid}; got an empty list")
    unknown = [r for r in req if r not in valid]
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; valid {name}: {valid}")
    return req


def repeat_tensor(responses: np.ndarray, keys: Sequence) -> tuple[list, np.ndarray]:
    """Group samples with the same key into (n_keys, n_targets, max_repeats), NaN-padded."""
    keys = list(keys)
    order = list(dict.fromkeys(keys))
    index = {k: i for i, k in enumerate(order)}
    counts = np.zeros(len(order), dtype=int)
    slot = np.empty(len(keys), dtype=int)
    for s, k in enumerate(keys):
        slot[s] = counts[index[k]]
        counts[index[k]] += 1
    out = np.full((len(order), responses.shape[1], counts.max()), np.nan, dtype=np.float64)
    rows = np.array([index[k] for k in keys])
    out[rows, :, slot] = responses
    return order, out


def _fit_predict(method, Z, Y, fit_idx, pred_sets, *, alphas, pls_components, inner_cv, seed, backend):
    """Fit one method on rows ``fit_idx`` of the row-space coordinates ``Z``; predict each evaluation set.

    ``Z`` (n_samples, rank) holds the features in an orthonormal basis of the row space of the
    centred fitting rows (see :func:`brainlike.linear.rowspace.row_space`): ridge and PLS weights lie in that space, so the fit
    and every prediction equal those on the raw features, at a cost set by n_samples, not n_features.
    """
    from brainlike.linear import PLSCV, RidgeCV

    folds = inner_folds(len(fit_idx), inner_cv, seed)
    Zf = Z[fit_idx]
    if method == "ridge":
        model = RidgeCV(alphas=alphas, cv=folds, alpha_per_target=True, backend=backend, dtype=np.float64)
        model.fit(Zf, Y[fit_idx])
        param = {"alphas": np.asarray(model.best_alphas_, dtype=np.float64)}
        preds = {name: np.asarray(model.predict(Z[idx]), dtype=np.float64).reshape(len(idx), -1)
                 for name, idx in pred_sets.items()}
        return preds, param
    Yf = Y[fit_idx].astype(np.float64)
    st = train_stats(Yf, what="targets", level=logging.DEBUG)
    ym, ys = st.mean, st.scale
    cands = tuple(c for c in pls_components if c <= Zf.shape[1]) or (1,)
    model = PLSCV(n_components=cands, cv=folds, scale=False, dtype=np.float64)
    model.fit(Zf, (Yf - ym) / ys)
    param = {"n_components": int(np.asarray(model.best_n_components_).ravel()[0])}
    preds = {name: np.asarray(model.predict(Z[idx]), dtype=np.float64).reshape(len(idx), -1) * ys + ym
             for name, idx in pred_sets.items()}
    return preds, param


def _pls_candidates(pls_components, n_min_inner_train: int, n_features: int) -> tuple[int, ...]:
    rank = max(1, min(n_min_inner_train - 1, n_features))
    if pls_components is None:
        cands = tuple(c for c in DEFAULT_PLS_COMPONENTS if c <= rank) or (1,)
        return cands
    cands = tuple(int(c) for c in np.atleast_1d(pls_components))
    if not cands or min(cands) < 1:
        raise ValueError(f"pls_components must be positive integers; got {pls_components!r}")
    too_big = [c for c in cands if c > rank]
    if too_big:
        raise ValueError(
            f"pls_components {too_big} exceed the rank of the features in the smallest inner fitting set "
            f"({rank} = min(n_samples - 1 = {n_min_inner_train - 1}, n_features = {n_features})); "
            f"use at most {rank} components"
        )
    return cands


def _features_matrix(feat, name: str, dtype) -> np.ndarray:
    arr = np.asarray(feat)
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    return as_2d_float(arr, name, dtype=dtype, min_rows=2)


def _feature_ids(features, feat, feature_ids, n_rows: int, layer: str) -> np.ndarray:
    """Stimulus ids of a layer's rows: its ``.ids``, the container's ``.ids`` (FeatureSet) or ``feature_ids``."""
    from brainlike.ids import as_ids

    ids = getattr(feat, "ids", None)
    if ids is None:
        ids = getattr(features, "ids", None)
    if ids is None:
        ids = feature_ids
    if ids is None:
        raise ValueError(
            f"features[{layer!r}] is a plain array without stimulus ids, so its rows cannot be paired with "
            "the responses; give feature_ids=[...] (one id per row) or features carrying .ids "
            "(a FeatureSet or LayerFeatures)")
    ids = as_ids(ids, f"stimulus ids of features[{layer!r}]")
    if len(ids) != n_rows:
        raise ValueError(f"features[{layer!r}] has {n_rows} rows but {len(ids)} stimulus ids")
    return ids


def map_layers(
    features: Mapping,
    data,
    *,
    layers=None,
    rois=None,
    methods: Sequence[str] = METHODS,
    scheme: str = "auto",
    n_heldout: int | float | None = None,
    cv: int = 5,
    inner_cv: int = 5,
    alphas="auto",
    pls_components=None,
    standardize: str = "fit",
    feature_ids: Sequence[str] | None = None,
    stimuli_label: str = "plain",
    seed: int = 0,
    backend: str = "numpy",
    dtype=np.float32,
    progress=None,
) -> MappingResult:
    """Map every requested layer to every requested ROI with ridge and PLS on the same splits.

    ``features``: layer name -> (n_stimuli, n_units) array-like (a ``LayerFeatures`` or array), or a
    ``FeatureSet``; rows are paired with the responses by stimulus id (``brainlike.ids.align``),
    the ids coming from the layer's ``.ids``, the FeatureSet's ``.ids`` or ``feature_ids``: plain
    arrays without ids are refused. ``data``: a ``BrainData``; repetitions are
    averaged for fitting and used for the noise ceiling (split-half reliability, Spearman-Brown
    corrected; ``ceiling_r`` = sqrt(reliability)). ``scheme``/``n_heldout``/``cv``: see
    :func:`brainlike.mapping.make_splits`. ``pls_components``: candidates chosen by inner CV
    (default 1..32, limited to the rank). ``alphas``: ridge grid, or ``"auto"`` = 10^-3..10^3 times
    the mean eigenvalue of the fitting set's feature Gram (a grid that fits any layer width).
    ``standardize``: z-score the features with each fitting set's statistics (``"fit"``), with
    those of every stimulus of the study (``"all"``: unsupervised, and one kernel then serves every
    fold), or not (``"none"``). ``progress``: optional callable(str).
    """
    for m in methods:
        check_choice(m, "methods", METHODS)
    if standardize is True or standardize is False:
        standardize = "fit" if standardize else "none"
    check_choice(standardize, "standardize", ("fit", "all", "none"))
    alphas = _check_alpha_grid(alphas)
    if not methods:
        raise ValueError(f"methods must name at least one of {list(METHODS)}; got an empty list")
    layer_names = check_names(layers, list(features.keys()), "layers")
    roi_names = check_names(rois, list(data.roi_names), "rois")

    # --- responses: repetition-averaged for fitting, raw repeats for the ceiling ---------------
    raw = data
    has_repeats = False
    if getattr(data, "repetition", None) is not None or _has_duplicate_ids(data):
        avg = data.average_repetitions()
        has_repeats = avg.n_samples < data.n_samples
    else:
        avg = data
    Y_all = as_2d_float(avg.responses, "data.responses", dtype=np.float64, allow_nan=False)
    ids = [str(s) for s in avg.stimulus_ids]
    split_labels = None if getattr(avg, "split", None) is None else np.asarray(avg.split).astype(str)
    splits = make_splits(len(ids), split_labels, scheme=scheme, n_heldout=n_heldout, cv=cv, seed=seed)
    min_fit = min(len(f.fit) for f in splits.fits)
    if min_fit < inner_cv:
        raise ValueError(f"inner_cv={inner_cv} folds need at least {inner_cv} fitting samples; got {min_fit}")
    n_inner_min = min_fit - int(np.ceil(min_fit / inner_cv))

    ceilings = _ceilings(raw, avg, splits, roi_names) if has_repeats else {}

    # every layer's rows paired with the responses by stimulus id, before any fitting
    feature_rows = {}
    for layer in layer_names:
        feat = features[layer]
        shape = getattr(feat, "shape", None)
        n_rows = int((shape if shape is not None else np.shape(feat))[0])
        fids = _feature_ids(features, feat, feature_ids, n_rows, layer)
        feature_rows[layer] = align(fids, ids, source=f"features[{layer!r}]", wanted="the responses")

    voxel_rows, roi_rows, param_rows, predictions, fitted = [], [], [], {}, {}
    for layer in layer_names:
        feat = features[layer]
        X = _features_matrix(feat, f"features[{layer!r}]", dtype)[feature_rows[layer]]
        cands = _pls_candidates(pls_components, n_inner_min, X.shape[1]) if "pls" in methods else ()
        coords = _coordinates(X, splits, standardize, alphas)
        for roi in roi_names:
            mask = np.asarray(data.rois[roi], dtype=bool)
            if not mask.any():
                raise ValueError(f"ROI {roi!r} has no voxels")
            vox = np.flatnonzero(mask)
            Y = np.column_stack([Y_all[:, vox], Y_all[:, vox].mean(axis=1)])  # last column: ROI average
            for method in methods:
                if progress:
                    progress(f"{stimuli_label} {layer} -> {roi} ({len(vox)} voxels): {method}")
                pred = {name: np.full((len(idx), Y.shape[1]), np.nan) for name, idx in splits.evaluations.items()}
                pos = {name: {s: i for i, s in enumerate(idx)} for name, idx in splits.evaluations.items()}
                fitted[(stimuli_label, layer, roi, method)] = chosen = []
                for k, fit in enumerate(splits.fits):
                    Z, rows, grid = coords[k]
                    fit_pos = np.searchsorted(rows, fit.fit)
                    pred_pos = {n: np.searchsorted(rows, idx) for n, idx in fit.predict.items()}
                    kw = dict(alphas=grid, pls_components=cands, inner_cv=inner_cv, seed=seed, backend=backend)
                    if method == "pls":
                        # PLS is multi-output: fit the voxels and the ROI average separately
                        p_vox, par = _fit_predict("pls", Z, Y[rows, :-1], fit_pos, pred_pos, **kw)
                        p_avg, par_avg = _fit_predict("pls", Z, Y[rows, -1:], fit_pos, pred_pos, **kw)
                        p = {n: np.column_stack([p_vox[n], p_avg[n]]) for n in p_vox}
                        chosen.append((par["n_components"], par_avg["n_components"]))
                        param_rows.append(dict(stimuli=stimuli_label, layer=layer, roi=roi, method=method, fold=k,
                                               n_components=par["n_components"],
                                               n_components_roi_average=par_avg["n_components"]))
                    else:
                        p, par = _fit_predict("ridge", Z, Y[rows], fit_pos, pred_pos, **kw)
                        a = par["alphas"]
                        chosen.append(a)
                        at_edge = float(np.mean((a[:-1] == grid[0]) | (a[:-1] == grid[-1])))
                        param_rows.append(dict(stimuli=stimuli_label, layer=layer, roi=roi, method=method, fold=k,
                                               median_alpha=float(np.median(a[:-1])), alpha_roi_average=float(a[-1]),
                                               frac_alpha_at_grid_edge=at_edge))
                    for name, idx in fit.predict.items():
                        rows = [pos[name][s] for s in idx]
                        pred[name][rows] = p[name]
                for name, idx in splits.evaluations.items():
                    y_true, y_pred = Y[idx], pred[name]
                    r = pearson(y_true, y_pred, nan_policy="propagate")
                    r2v = r2(y_true, y_pred, nan_policy="propagate")
                    ceil = ceilings.get((name, roi))
                    c_vox = ceil[0] if ceil is not None else np.full(len(vox), np.nan)
                    c_avg = ceil[1] if ceil is not None else np.nan
                    with np.errstate(divide="ignore", invalid="ignore"):
                        voxel_rows.append(pd.DataFrame(dict(
                            stimuli=stimuli_label, layer=layer, roi=roi, method=method, split=name,
                            voxel=vox, r=r[:-1], r2=r2v[:-1], ceiling_r=c_vox,
                            r_norm=np.where(c_vox > 0, r[:-1] / c_vox, np.nan),
                            r2_norm=np.where(c_vox > 0, r2v[:-1] / c_vox**2, np.nan),
                        )))
                    roi_rows.append(dict(stimuli=stimuli_label, layer=layer, roi=roi, method=method, split=name,
                                         r=r[-1], r_squared=r[-1] ** 2, r2=r2v[-1], ceiling_r=c_avg,
                                         r_norm=r[-1] / c_avg if c_avg and c_avg > 0 else np.nan))
                    predictions[(stimuli_label, layer, roi, method, name)] = (y_true[:, -1], y_pred[:, -1])
    info = dict(
        splits=splits.describe(), scheme=splits.kind, n_stimuli=len(ids), layers=layer_names, rois=roi_names,
        methods=list(methods), inner_cv=inner_cv, alphas=alphas if isinstance(alphas, str) else np.asarray(alphas).tolist(),
        pls_components=list(cands) if "pls" in methods else None, standardize=standardize, seed=seed,
        noise_ceiling="split-half reliability (Spearman-Brown)" if has_repeats else "none (no repetitions)",
        stimuli=stimuli_label,
    )
    return MappingResult(
        voxels=pd.concat(voxel_rows, ignore_index=True),
        roi_average=pd.DataFrame(roi_rows),
        params=pd.DataFrame(param_rows),
        predictions=predictions,
        splits=splits,
        info=info,
        fitted=fitted,
    )


def _coordinates(X: np.ndarray, splits: Splits, standardize: str, alphas) -> list:
    """Per fit: (row-space coordinates Z, the rows they cover, the absolute alpha grid).

    ``standardize="fit"`` z-scores with each fitting set's statistics (one kernel per fit);
    ``"all"`` with the statistics of every stimulus of the study and ``"none"`` not at all: the
    features then do not depend on the fold and one kernel serves every fit.
    """
    n = X.shape[0]
    everything = np.arange(n)
    if standardize == "fit":
        out = []
        for fit in splits.fits:
            rows = np.union1d(fit.fit, np.concatenate(list(fit.predict.values())))
            Xs = train_stats(X[fit.fit], what="features", level=logging.DEBUG).apply(X)
            Z, eig = row_space(Xs, fit.fit, rows)
            del Xs
            out.append((Z, rows, _alpha_grid(alphas, eig)))
        return out
    Xs = train_stats(X[everything], what="features").apply(X) if standardize == "all" else X
    # one basis for all rows: the row space of every stimulus contains each fitting set's row space
    Z, eig = row_space(Xs, everything, everything)
    grid = _alpha_grid(alphas, eig)
    return [(Z, everything, grid) for _ in splits.fits]


def _check_alpha_grid(alphas):
    """``"auto"`` or a grid of positive finite alphas (checked before any fitting)."""
    if isinstance(alphas, str):
        check_choice(alphas, "alphas", ("auto",))
        return alphas
    from brainlike.linear._common import check_alphas

    try:
        return check_alphas(alphas)
    except ValueError as err:
        raise ValueError(f"{err} (or give alphas='auto')") from None


def _alpha_grid(alphas, mean_eig: float) -> np.ndarray:
    """``"auto"``: 10^-3 .. 10^3 times the mean eigenvalue of the fitting Gram (13 values)."""
    return mean_eig * np.logspace(-3, 3, 13) if isinstance(alphas, str) else alphas


def _has_duplicate_ids(data) -> bool:
    ids = list(data.stimulus_ids)
    split = getattr(data, "split", None)
    keys = list(zip(ids, split)) if split is not None else ids
    return len(set(keys)) < len(keys)


def _ceilings(raw, avg, splits: Splits, roi_names) -> dict:
    """(evaluation set, roi) -> (voxel ceiling r (n_voxels,), ROI-average ceiling r)."""
    from brainlike.metrics import split_half_reliability

    resp = np.asarray(raw.responses, dtype=np.float64)
    split = getattr(raw, "split", None)
    keys = [(str(s), str(sp)) for s, sp in zip(raw.stimulus_ids, split)] if split is not None else [
        (str(s), "") for s in raw.stimulus_ids]
    avg_split = getattr(avg, "split", None)
    avg_keys = [(str(s), str(sp)) for s, sp in zip(avg.stimulus_ids, avg_split)] if avg_split is not None else [
        (str(s), "") for s in avg.stimulus_ids]
    out = {}
    for name, idx in splits.evaluations.items():
        wanted = {avg_keys[i] for i in idx}
        sel = np.array([k in wanted for k in keys])
        for roi in roi_names:
            mask = np.asarray(raw.rois[roi], dtype=bool)
            sub = resp[sel][:, mask]
            sub = np.column_stack([sub, sub.mean(axis=1)])
            _, rep = repeat_tensor(sub, [k for k, s in zip(keys, sel) if s])
            if rep.shape[2] < 2:
                continue
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                rel = np.asarray(split_half_reliability(rep), dtype=np.float64)
            c = np.sqrt(np.clip(rel, 0.0, None))
            out[(name, roi)] = (c[:-1], float(c[-1]))
    return out
