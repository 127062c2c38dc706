"""Row-space (kernel) form of linear models: the one home of the Gram embedding in brainlike.

Ridge and PLS weights lie in the row space of the (centred) training features, so a fit on n
samples x p features (p >> n) equals a fit on n x rank coordinates. Two forms, one rule each:

- :func:`accumulate_gram` + :func:`embed_gram` (the BH pipeline's encoding): the Gram matrix of
  every row of a layer, its units z-scored with the statistics of the training rows
  (:mod:`brainlike._zscore`), accumulated over unit blocks in float64, then ``Z`` with
  ``Z @ Z.T == G``. Units constant over the training rows carry nothing a fit could use and are
  left out (BHscore's bdpy sets their z-scores to 0).
- :func:`row_space` (mapping studies): coordinates of any rows in an orthonormal basis of the row
  space of the centred fitting rows; features are centred here and z-scored (or not) by the caller.

Both keep the eigen-directions whose eigenvalue exceeds ``RTOL`` x the largest one.
"""

from __future__ import annotations

import logging

import numpy as np

from brainlike._zscore import train_stats

RTOL = 1e-10

__all__ = ["accumulate_gram", "embed_gram", "row_space", "RTOL"]


def _kept(w: np.ndarray, rtol: float) -> np.ndarray:
    """Eigenvalues counted as non-zero: > rtol x the largest (none when all are <= 0)."""
    if w.size == 0 or not w.max() > 0:
        return np.zeros(w.shape, dtype=bool)
    return w > rtol * w.max()


def accumulate_gram(blocks, train_rows: np.ndarray) -> np.ndarray:
    """Gram matrix (n_rows, n_rows), float64, of z-scored units, summed over unit ``blocks``.

    ``blocks`` yields (n_rows, k) arrays that together hold every unit once (in any order: the
    Gram does not depend on it). Units are z-scored with the mean/std (ddof 0) over ``train_rows``;
    units constant there contribute nothing.
    """
    gram = None
    for block in blocks:
        f = np.asarray(block, dtype=np.float64)
        if f.shape[1] == 0:
            continue
        st = train_stats(f[train_rows], what="units", level=logging.DEBUG)  # once per unit block
        keep = ~st.constant
        f = (f[:, keep] - st.mean[keep]) / st.scale[keep]
        g = f @ f.T
        gram = g if gram is None else gram + g
    if gram is None:
        raise ValueError("a layer must have units to build its kernel; got 0")
    return gram


def embed_gram(gram: np.ndarray, rtol: float = RTOL) -> np.ndarray:
    """``Z`` (n, rank) with ``Z @ Z.T == gram`` (eigen-decomposition, null space dropped)."""
    gram = (gram + gram.T) / 2
    w, v = np.linalg.eigh(gram)
    keep = _kept(w, rtol)
    if not keep.any():
        return np.zeros((gram.shape[0], 1))
    return v[:, keep] * np.sqrt(w[keep])


def row_space(X: np.ndarray, fit_idx: np.ndarray, rows: np.ndarray, chunk: int = 8192, rtol: float = RTOL):
    """Coordinates of ``X[rows]`` in an orthonormal basis of the row space of the centred ``X[fit_idx]``.

    Kernel form (never a p x n basis in memory): Gram of the fitting rows, accumulated over feature
    chunks in float64. Returns (Z (len(rows), rank), mean non-zero eigenvalue of the fitting Gram).
    """
    n_f = len(fit_idx)
    same = np.array_equal(rows, fit_idx)
    mu = X[fit_idx].mean(axis=0, dtype=np.float64)
    G = np.zeros((n_f, n_f))
    C = G if same else np.zeros((len(rows), n_f))
    # centred chunks multiplied in the features' precision (float32 GEMM is twice as fast, and centring
    # keeps it accurate), accumulated in float64
    work = np.float32 if X.dtype == np.float32 else np.float64
    for a in range(0, X.shape[1], chunk):
        sl = slice(a, a + chunk)
        F = (X[fit_idx, sl] - mu[sl]).astype(work, copy=False)
        G += F @ F.T
        if not same:
            C += (X[rows, sl] - mu[sl]).astype(work, copy=False) @ F.T
    s2, U = np.linalg.eigh(G)
    keep = _kept(s2, rtol)
    if not keep.any():
        raise ValueError("features are constant over the fitting samples: nothing to fit")
    U, s2 = U[:, keep], s2[keep]
    Z = C @ (U / np.sqrt(s2))  # row x of X -> V^T (x - mu), V = Xc^T U S^-1
    return Z, float(s2.mean())
