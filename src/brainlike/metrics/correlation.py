"""Column-wise scores between two arrays of samples: Pearson r, Spearman rho, R².

The one home of these scores in brainlike: every room calls them, none writes its own.

Shapes. Samples run along axis -2 and columns along axis -1 (for 2-D input: rows are samples);
leading batch axes broadcast (``pearson(y[None], pred_per_roi)`` scores every ROI at once). Two
1-D arrays give one float. Work is done in float64, a bounded block of columns at a time.

``nan_policy`` (as in scipy.stats):

- ``"raise"`` (default): NaN or inf in either input is a ``ValueError`` naming the argument;
- ``"propagate"``: a column holding NaN scores NaN;
- ``"omit"``: each column uses only the rows where both inputs are finite (pairwise complete);
  a column with fewer than ``min_samples`` such rows scores NaN.

Constant column: a column with zero variance (in either input for r/rho, in ``y_true`` for R²)
has no defined score. It gets NaN and one ``RuntimeWarning`` per call giving how many columns
were affected -- never a silent 0 and never a crash. Callers that need another value for such a
column (the BH recipe's 0) replace the NaN themselves, visibly, after the call.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata

from brainlike._validate import check_choice, check_finite

NAN_POLICIES = ("raise", "propagate", "omit")
_BLOCK = 1 << 22  # float64 values per input per block (32 MiB)


def _prepare(a, b, name_a, name_b, nan_policy, min_samples):
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    a = np.asarray(a)
    b = np.asarray(b)
    one_d = a.ndim == 1 and b.ndim == 1
    if one_d:
        a, b = a[:, None], b[:, None]
    for arr, name in ((a, name_a), (b, name_b)):
        if arr.ndim < 2:
            raise ValueError(f"{name} must be an array (samples, columns) or two 1-D arrays; got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == bool):
            raise ValueError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of samples (rows); "
                         f"got {a.shape[-2]} and {b.shape[-2]}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of columns; "
                         f"got {a.shape[-1]} and {b.shape[-1]}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"the leading (batch) axes of {name_a} {a.shape} and {name_b} {b.shape} do not broadcast") \
            from None
    if nan_policy != "omit" and a.shape[-2] < min_samples:
        raise ValueError(f"{name_a} needs at least {min_samples} samples (rows); got {a.shape[-2]}")
    if nan_policy == "raise":
        check_finite(a, name_a)
        check_finite(b, name_b)
    return a, b, one_d


def _blocks(n_rows, n_cols, batch):
    step = max(1, _BLOCK // max(1, n_rows * batch))
    for start in range(0, n_cols, step):
        yield slice(start, min(start + step, n_cols))


def _columnwise(kernel, a, b, nan_policy, min_samples, what, one_d):
    """Run ``kernel(a64, b64, ok) -> (score, constant)`` over column blocks; NaN + one counted warning."""
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-1],)
    batch = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    out = np.empty(shape, dtype=np.float64)
    n_const = n_few = 0
    for sl in _blocks(a.shape[-2], a.shape[-1], batch):
        x = np.asarray(a[..., sl], dtype=np.float64)
        y = np.asarray(b[..., sl], dtype=np.float64)
        x, y = np.broadcast_arrays(x, y)
        ok = None
        if nan_policy == "omit":
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            score, const = kernel(x, y, ok)
        if ok is not None:
            few = ok.sum(axis=-2) < min_samples
            score[few] = np.nan
            const &= ~few
            n_few += int(few.sum())
        score[const] = np.nan
        n_const += int(const.sum())
        out[..., sl] = score
    if n_const:
        warnings.warn(f"{n_const} of {out.size} column(s) are constant: {what} is undefined there (NaN)",
                      RuntimeWarning, stacklevel=3)
    if n_few:
        warnings.warn(f"{n_few} of {out.size} column(s) have fewer than {min_samples} finite pair(s): "
                      f"{what} is undefined there (NaN)", RuntimeWarning, stacklevel=3)
    return float(out.reshape(-1)[0]) if one_d else out


def _centre(x, ok):
    if ok is None:
        return x - x.mean(axis=-2, keepdims=True)
    n = ok.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = x.sum(axis=-2, keepdims=True) / n
    return np.where(ok, x - m, 0.0)


def _pearson_kernel(x, y, ok):
    x, y = _centre(x, ok), _centre(y, ok)
    vx = (x * x).sum(axis=-2)
    vy = (y * y).sum(axis=-2)
    r = (x * y).sum(axis=-2) / np.sqrt(vx * vy)
    const = (vx <= 0) | (vy <= 0)
    return np.clip(r, -1.0, 1.0), const


def _r2_kernel(y, p, ok):
    ss_res = ((y - p) ** 2).sum(axis=-2)
    yc = _centre(y, ok)
    ss_tot = (yc * yc).sum(axis=-2)
    return 1.0 - ss_res / ss_tot, ss_tot <= 0


def pearson(a, b, *, nan_policy: str = "raise", min_samples: int = 2):
    """Pearson r of each column of ``a`` with the same column of ``b``.

    Returns an array of the broadcast batch shape + (n_columns,), or a float for two 1-D inputs.
    See the module docstring for ``nan_policy`` and the constant-column rule (NaN + a counted warning).
    """
    a, b, one_d = _prepare(a, b, "a", "b", nan_policy, min_samples)
    return _columnwise(_pearson_kernel, a, b, nan_policy, min_samples, "Pearson r", one_d)


def spearman(a, b, *, nan_policy: str = "raise", min_samples: int = 2):
    """Spearman rho per column (Pearson r of the ranks, ties averaged as in scipy.stats.spearmanr)."""
    a, b, one_d = _prepare(a, b, "a", "b", nan_policy, min_samples)
    if nan_policy == "omit":
        ok = np.isfinite(a) & np.isfinite(b)
        a = np.where(ok, rankdata(np.where(ok, a, np.nan), axis=-2, nan_policy="omit"), np.nan)
        b = np.where(ok, rankdata(np.where(ok, b, np.nan), axis=-2, nan_policy="omit"), np.nan)
    else:
        a, b = rankdata(a, axis=-2), rankdata(b, axis=-2)
    return _columnwise(_pearson_kernel, a, b, nan_policy, min_samples, "Spearman rho", one_d)


def r2(y_true, y_pred, *, nan_policy: str = "raise", min_samples: int = 2):
    """Coefficient of determination per column, 1 - SS_res / SS_tot (scikit-learn's r2_score per output).

    A column whose ``y_true`` is constant gets NaN and is counted in one warning (scikit-learn
    would give 1.0 or 0.0 there; brainlike keeps one rule for every score).
    """
    y, p, one_d = _prepare(y_true, y_pred, "y_true", "y_pred", nan_policy, min_samples)
    return _columnwise(_r2_kernel, y, p, nan_policy, min_samples, "R²", one_d)


def selection_score(kind: str, y, pred, be):
    """Per-column score used *inside* cross-validated penalty selection (RidgeCV, PLSCV), on any backend.

    ``kind`` is ``"r2"`` or ``"pearson"``; ``y`` and ``pred`` are backend arrays (samples, columns); the
    sums run on the backend and the result is numpy float64. Unlike :func:`pearson` / :func:`r2`
    (reported scores: NaN for an undefined column), a column that is constant in one test fold must not
    veto every penalty when fold scores are summed, so it takes scikit-learn's ``r2_score`` value
    (R²: 1 if predicted exactly, else 0; r: 0). This is the only place that rule applies.
    """
    yc = y - be.mean0(y)
    ss_tot = be.to_numpy((yc**2).sum(0)).astype(np.float64)
    if kind == "r2":
        ss_res = be.to_numpy(((y - pred) ** 2).sum(0)).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 - ss_res / ss_tot
        out[ss_tot == 0] = np.where(ss_res[ss_tot == 0] == 0, 1.0, 0.0)
        return out
    pc = pred - be.mean0(pred)
    num = be.to_numpy((yc * pc).sum(0)).astype(np.float64)
    den = np.sqrt(ss_tot * be.to_numpy((pc**2).sum(0)).astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[~np.isfinite(out)] = 0.0
    return out


def spearman_from_table(table) -> np.ndarray:
    """Spearman correlation of (row index, column index) pairs given as a count table.

    ``table[..., i, j]`` = number of observations with row value i and column value j (rows and
    columns in increasing order). Ties get mid-ranks, so this equals ``scipy.stats.spearmanr``
    on the expanded pairs. Leading axes are batch axes. NaN where either variable is constant.
    """
    t = np.asarray(table, dtype=np.float64)
    rows = t.sum(axis=-1)
    cols = t.sum(axis=-2)
    n = rows.sum(axis=-1)
    mean = (n + 1.0) / 2.0
    ra = np.cumsum(rows, axis=-1) - (rows - 1.0) / 2.0 - mean[..., None]
    rb = np.cumsum(cols, axis=-1) - (cols - 1.0) / 2.0 - mean[..., None]
    cov = np.einsum("...i,...ij,...j->...", ra, t, rb)
    va = np.einsum("...i,...i,...i->...", rows, ra, ra)
    vb = np.einsum("...j,...j,...j->...", cols, rb, rb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(va * vb)
    degenerate = (va <= 1e-12 * np.maximum(n, 1) ** 3) | (vb <= 1e-12 * np.maximum(n, 1) ** 3)
    return np.where(degenerate, np.nan, rho)
