"""Input checks and small numerics shared by the estimators."""

from __future__ import annotations

import numbers

import numpy as np

from brainlike._validate import as_2d_float, check_same_rows

# Bytes of intermediates a target batch may hold (Z, predictions, ...); bounds memory for 100k+ targets.
BATCH_BYTES = 256 * 2**20


def _dense(arr, name):
    if hasattr(arr, "toarray") or hasattr(arr, "tocsr"):
        raise TypeError(f"{name}: sparse input is not supported; pass a dense array (e.g. {name}.toarray())")
    a = np.asarray(arr)
    if np.iscomplexobj(a):
        raise ValueError(f"Complex data not supported ({name} has dtype {a.dtype})")
    return a


def _x_2d(X):
    X = _dense(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (samples, features); got shape {X.shape}. Reshape your data "
                         "with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample")
    if X.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required (X has no features)")
    return X


def check_xy(X, Y, dtype, estimator=None):
    """Validate X (samples, features) and Y (samples,) or (samples, targets); return X, Y (2-D), y_was_1d."""
    X = as_2d_float(_x_2d(X), "X", dtype=dtype)
    Y, y1d = check_y(Y, dtype, estimator)
    check_same_rows(X, Y, "X", "Y")
    if X.shape[0] < 2:
        name = type(estimator).__name__ if estimator is not None else "the estimator"
        raise ValueError(f"X and Y have {X.shape[0]} sample(s) (n_samples = {X.shape[0]}); fitting {name} needs at "
                         "least 2 samples")
    return X, Y, y1d


def check_y(Y, dtype, estimator=None):
    """Validate Y (samples,) or (samples, targets); return Y (2-D), y_was_1d."""
    if Y is None:
        name = type(estimator).__name__ if estimator is not None else "This"
        raise ValueError(f"{name} estimator requires y to be passed, but the target y is None (Y)")
    y_arr = _dense(Y, "Y")
    y1d = y_arr.ndim == 1
    if y1d:
        y_arr = y_arr.reshape(-1, 1)
    return as_2d_float(y_arr, "Y", dtype=dtype), y1d


def check_x(X, dtype):
    """Validate X (samples, features) alone."""
    return as_2d_float(_x_2d(X), "X", dtype=dtype)


def check_x_predict(est, X, dtype):
    X = as_2d_float(_x_2d(X), "X", dtype=dtype)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input (as in fit)")
    return X


def check_alpha(alpha, n_targets: int, name: str = "alpha") -> float | np.ndarray:
    """A scalar >= 0, or one value >= 0 per target."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        a = float(alpha)
        if not np.isfinite(a) or a < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {alpha!r}")
        return a
    arr = np.asarray(alpha, dtype=np.float64)
    if arr.ndim == 0:
        return check_alpha(float(arr), n_targets, name)
    if arr.shape != (n_targets,):
        raise ValueError(f"{name} must be a scalar or have shape ({n_targets},) (one per target); got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0 for every target; got min {np.nanmin(arr)!r}")
    return arr


def check_alphas(alphas) -> np.ndarray:
    arr = np.asarray(alphas, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("alphas must hold at least one value (an empty alpha grid was given)")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"alphas must be finite and > 0; got {alphas!r}")
    return arr


def batch_size(n_targets: int, per_target_values: int, itemsize: int, requested=None) -> int:
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"target_batch_size must be >= 1; got {requested!r}")
        return min(int(requested), max(n_targets, 1))
    return int(max(1, min(n_targets, BATCH_BYTES // max(1, per_target_values * itemsize))))


def make_splits(cv, n_samples: int, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """cv: int (KFold without shuffling, as scikit-learn and himalaya), a splitter, or (train, test) pairs."""
    from brainlike.folds import kfold

    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2 or cv > n_samples:
            raise ValueError(f"cv must be between 2 and the number of samples (n_samples={n_samples}); got {cv}")
        splits = kfold(n_samples, int(cv), seed=None)
    elif hasattr(cv, "split"):
        splits = list(cv.split(np.zeros((n_samples, 1)), groups=groups))
    else:
        try:
            splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv]
        except (TypeError, ValueError) as err:
            raise ValueError(f"cv must be an int, a splitter with .split, or (train, test) index pairs; got {cv!r}") from err
    if not splits:
        raise ValueError("cv produced no (train, test) split")
    out = []
    for i, (tr, te) in enumerate(splits):
        tr, te = np.asarray(tr), np.asarray(te)
        if tr.dtype == bool:
            tr = np.flatnonzero(tr)
        if te.dtype == bool:
            te = np.flatnonzero(te)
        if tr.size < 2 or te.size < 1:
            raise ValueError(f"cv split {i} needs >= 2 training and >= 1 test samples; got {tr.size} and {te.size}")
        if tr.max() >= n_samples or te.max() >= n_samples or tr.min() < 0 or te.min() < 0:
            raise ValueError(f"cv split {i} has indices outside [0, {n_samples})")
        out.append((tr.astype(np.int64), te.astype(np.int64)))
    return out
