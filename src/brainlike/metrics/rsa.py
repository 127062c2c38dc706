"""Representational similarity analysis: RDMs, their comparison and the noise ceiling.

Conventions follow rsatoolbox (Nili et al. 2014, Kriegeskorte et al. 2008):

- An RDM is a symmetric (n_conditions, n_conditions) matrix with a zero diagonal; only the upper
  triangle (``np.triu_indices(n, 1)``, MATLAB ``squareform`` order) enters a comparison.
- ``rdm(X, "correlation")`` is 1 - Pearson r between condition patterns (rows of ``X``), computed by
  one GEMM so that it scales to hundreds of thousands of DNN units.
- ``compare_rdms`` rank-correlates (Spearman, Kendall's tau-a) or linearly correlates the upper
  triangles. Kendall's tau-a is the comparison Nili et al. recommend when a model predicts tied
  dissimilarities (categorical models); it is computed from scipy's O(n log n) tau-b.
- ``rdm_noise_ceiling`` gives the lower and upper bounds of the best achievable average correlation
  with the subject RDMs: the upper bound correlates each subject with the mean of all subjects
  (a model cannot do better on average), the lower bound with the mean of the other subjects
  (leave one subject out). RDMs are rank-transformed before averaging for rank-based methods
  and z-scored for Pearson, as in rsatoolbox's ``boot_noise_ceiling``.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from scipy.spatial.distance import pdist, squareform

from brainlike._validate import as_2d_float, check_choice

__all__ = [
    "COMPARE_METHODS",
    "RDM_METRICS",
    "compare_rdms",
    "kendall_tau_a",
    "rdm",
    "rdm_noise_ceiling",
    "to_square",
    "upper_triangle",
]

RDM_METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine", "cityblock", "spearman")
COMPARE_METHODS = ("spearman", "kendall_tau_a", "pearson", "cosine")


def rdm(X, metric: str = "correlation", *, dtype=None) -> np.ndarray:
    """Representational dissimilarity matrix of the rows of ``X`` (conditions, features).

    ``correlation`` = 1 - Pearson r, ``spearman`` = 1 - Spearman rho, ``euclidean``,
    ``sqeuclidean``, ``cosine`` (1 - cosine similarity), ``cityblock``. Computed in float64 for
    accuracy (the result has n² entries only) and returned as ``dtype`` (default float64).
    Constant rows make correlation/cosine distances undefined and raise.
    """
    check_choice(metric, "metric", RDM_METRICS)
    X = as_2d_float(X, "X", min_rows=2)
    n = X.shape[0]
    if metric == "spearman":
        X = scipy.stats.rankdata(X, axis=1)
        metric = "correlation"
    if metric in ("correlation", "cosine"):
        Z = np.array(X, dtype=np.float64)
        if metric == "correlation":
            Z -= Z.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", Z, Z))
        bad = np.flatnonzero(norms <= np.finfo(np.float64).tiny)
        if bad.size:
            what = "constant" if metric == "correlation" else "all-zero"
            raise ValueError(
                f"X row(s) {bad[:5].tolist()} are {what}: the {metric} distance is undefined for them"
            )
        Z /= norms[:, None]
        D = 1.0 - Z @ Z.T
    elif metric in ("euclidean", "sqeuclidean"):
        Z = np.array(X, dtype=np.float64)
        Z -= Z.mean(axis=0, keepdims=True)  # translation-invariant; reduces cancellation
        sq = np.einsum("ij,ij->i", Z, Z)
        D = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T), 0.0)
        if metric == "euclidean":
            D = np.sqrt(D)
    else:
        D = squareform(pdist(np.asarray(X, dtype=np.float64), metric=metric))
    D = 0.5 * (D + D.T)
    D[np.diag_indices(n)] = 0.0
    return D.astype(dtype or np.float64, copy=False)


def upper_triangle(rdms, name: str = "rdm") -> np.ndarray:
    """Upper-triangle vectors (k, n(n-1)/2) of an RDM (n, n), a stack (k, n, n) or vectors.

    A 1-D input is taken as one condensed vector; a 2-D non-square input as k condensed vectors.
    """
    return _vectors(rdms, name)[0]


def _vectors(rdms, name: str) -> tuple[np.ndarray, bool]:
    """(k, m) upper-triangle vectors and whether the input was a single RDM."""
    arr = np.asarray(rdms, dtype=np.float64)
    if arr.ndim == 1:
        _check_condensed_length(arr.shape[0], name)
        return arr[None, :], True
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and _looks_square(arr):
        single = True
        arr = arr[None]
    elif arr.ndim == 2:
        _check_condensed_length(arr.shape[1], name)
        return arr, False
    else:
        single = False
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(
            f"{name} must be an RDM (n, n), a stack of RDMs (k, n, n) or condensed vectors; got shape {arr.shape}"
        )
    n = arr.shape[1]
    if n < 3:
        raise ValueError(f"{name} needs at least 3 conditions to compare; got {n}")
    iu = np.triu_indices(n, 1)
    return arr[:, iu[0], iu[1]], single


def to_square(vectors) -> np.ndarray:
    """Inverse of :func:`upper_triangle`: (k, m) or (m,) condensed vectors -> (k, n, n) or (n, n)."""
    v = np.asarray(vectors, dtype=np.float64)
    single = v.ndim == 1
    v2 = v[None] if single else v
    n = _check_condensed_length(v2.shape[1], "vectors")
    out = np.zeros((v2.shape[0], n, n))
    iu = np.triu_indices(n, 1)
    out[:, iu[0], iu[1]] = v2
    out[:, iu[1], iu[0]] = v2
    return out[0] if single else out


def _looks_square(arr: np.ndarray) -> bool:
    return bool(np.allclose(arr, arr.T, equal_nan=True) and np.allclose(np.diag(arr), 0.0))


def _check_condensed_length(m: int, name: str) -> int:
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m or n < 3:
        raise ValueError(
            f"{name}: a condensed RDM vector has n(n-1)/2 entries for n >= 3 conditions; got length {m}"
        )
    return n


def kendall_tau_a(x, y) -> float:
    """Kendall's tau-a: (concordant - discordant) / (n(n-1)/2), ties not corrected.

    Unlike tau-b it does not reward a model for predicting ties (Nili et al. 2014). Derived
    from scipy's O(n log n) tau-b by undoing its tie correction.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length; got {x.size} and {y.size}")
    n = x.size
    n0 = n * (n - 1) / 2.0
    if n < 2:
        raise ValueError(f"kendall_tau_a needs at least 2 values; got {n}")
    tx = _tied_pairs(x)
    ty = _tied_pairs(y)
    if tx == n0 or ty == n0:  # one side constant: no concordant or discordant pair
        return 0.0
    tau_b = scipy.stats.kendalltau(x, y, variant="b").statistic
    c_minus_d = tau_b * np.sqrt((n0 - tx) * (n0 - ty))
    return float(np.clip(c_minus_d / n0, -1.0, 1.0))


def _tied_pairs(v: np.ndarray) -> float:
    _, counts = np.unique(v, return_counts=True)
    return float((counts * (counts - 1) // 2).sum())


def _prepare(vectors: np.ndarray, method: str) -> np.ndarray:
    """Rows transformed so that the comparison is a cosine of centred rows."""
    if method == "spearman":
        vectors = scipy.stats.rankdata(vectors, axis=1)
    if method in ("spearman", "pearson"):
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return vectors / norms


def compare_rdms(a, b, method: str = "spearman"):
    """Similarity between RDMs (upper triangles only).

    ``a`` and ``b``: an RDM (n, n), a stack (k, n, n) or condensed vectors. Returns a float when
    both are single RDMs, else a (k_a, k_b) array (a single side gives a 1-D array).
    Methods: ``spearman``, ``kendall_tau_a``, ``pearson``, ``cosine``. NaN entries (missing
    pairs) are dropped pairwise. A constant RDM gives NaN for correlation-type methods.
    """
    check_choice(method, "method", COMPARE_METHODS)
    va, single_a = _vectors(a, "a")
    vb, single_b = _vectors(b, "b")
    if va.shape[1] != vb.shape[1]:
        na, nb = _check_condensed_length(va.shape[1], "a"), _check_condensed_length(vb.shape[1], "b")
        raise ValueError(f"a and b must describe the same conditions; got {na} and {nb} conditions")
    has_nan = np.isnan(va).any() or np.isnan(vb).any()
    if method == "kendall_tau_a" or has_nan:
        out = np.empty((va.shape[0], vb.shape[0]))
        for i, x in enumerate(va):
            for j, y in enumerate(vb):
                ok = ~(np.isnan(x) | np.isnan(y))
                out[i, j] = _compare_pair(x[ok], y[ok], method)
    else:
        with np.errstate(invalid="ignore"):
            out = _prepare(va, method) @ _prepare(vb, method).T
    if single_a and single_b:
        return float(out[0, 0])
    if single_a:
        return out[0]
    if single_b:
        return out[:, 0]
    return out


def _compare_pair(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if x.size < 3:
        return np.nan
    if method == "kendall_tau_a":
        return kendall_tau_a(x, y)
    with np.errstate(invalid="ignore"):
        return float((_prepare(x[None], method) @ _prepare(y[None], method).T)[0, 0])


def _pool(vectors: np.ndarray, method: str) -> np.ndarray:
    """Best single RDM for the average of ``method`` over the given subjects."""
    if method in ("spearman", "kendall_tau_a"):
        vectors = scipy.stats.rankdata(vectors, axis=1)
    elif method == "pearson":
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
        vectors = vectors / vectors.std(axis=1, keepdims=True)
    elif method == "cosine":
        vectors = vectors / np.sqrt(np.mean(vectors**2, axis=1, keepdims=True))
    return vectors.mean(axis=0)


def rdm_noise_ceiling(subject_rdms, method: str = "spearman") -> tuple[float, float]:
    """Noise ceiling (lower, upper) of the mean RDM correlation with subjects (Nili et al. 2014).

    ``subject_rdms``: (n_subjects, n, n) or (n_subjects, n(n-1)/2), at least 2 subjects.
    Upper bound: mean over subjects of the similarity of each subject RDM with the average of
    all (itself included). Lower bound: the same with the average of the other subjects.
    For rank methods the RDMs are rank-transformed before averaging; for Kendall's tau-a this
    average is an approximation of the true upper bound (which Nili et al. find iteratively).
    """
    check_choice(method, "method", COMPARE_METHODS)
    v = upper_triangle(subject_rdms, "subject_rdms")
    if v.shape[0] < 2:
        raise ValueError(f"subject_rdms needs at least 2 subject RDMs for a noise ceiling; got {v.shape[0]}")
    if np.isnan(v).any():
        raise ValueError("subject_rdms contains NaN; remove the missing conditions first")
    upper_ref = _pool(v, method)
    lower, upper = [], []
    for i in range(v.shape[0]):
        others = np.delete(v, i, axis=0)
        lower.append(compare_rdms(v[i], _pool(others, method), method))
        upper.append(compare_rdms(v[i], upper_ref, method))
    return float(np.mean(lower)), float(np.mean(upper))
