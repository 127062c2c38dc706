"""FastL2LiR-compatible selective ridge over inputs too many to hold (``StreamingSelectiveRidge``).

The model is :class:`~brainlike.linear.SelectiveRidge`'s (for every target the ``n_feat`` inputs
with the largest |Pearson r| on the training samples, ridge on ``[X_selected, 1]`` with the
intercept penalised like the weights, as FastL2LiR 0.11 does), but X is read in chunks of input
columns, so a layer of millions of DNN units never sits in memory: BHscore's encoding recipe
predicts each voxel from 500 of all units of a layer (VGG19 ``conv1_1``: 3.2 million units).

- Pass 1, selection: for each chunk of inputs one GEMM gives every target's correlation with every
  input of the chunk; a streaming top-k per target keeps the ``n_feat`` best across chunks (only
  inputs above a target's current k-th best are merged).
- Pass 2, gathering: only the selected inputs' columns are read again (centred, weighted by how
  often each row is used), within ``memory_mb``; targets are split into groups when their selected
  inputs do not fit, each group reading the source once more.
- Solve: where the group's selected inputs overlap strongly, their Gram is built once and each
  target's block solved by the engine's GIL-free gather + Cholesky (``gather_solve``); otherwise
  each target's own ``n_feat`` x ``n_feat`` Gram is built and solved on worker threads. The
  penalised intercept is the same exact rank-one (Sherman-Morrison) term as in ``SelectiveRidge``.

Rows: X may hold each stimulus once while Y holds repeated trials (``rows`` maps each sample of Y
to its row of X): the fit equals FastL2LiR on the expanded ``X[rows]`` without building it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils.validation import check_is_fitted

from brainlike._backend import _gil_free_cholesky, _n_threads, _single_threaded_blas, get_backend
from brainlike.linear._common import _x_2d, check_alpha, check_y
from brainlike.linear._ridge import _LinearBase
from brainlike.linear._selective import _CONSTANT_VAR

logger = logging.getLogger("brainlike")


def _as_source(X):
    """A column source (``.shape`` + ``.read``) as is; an ndarray checked without a copy; any other
    array-like (a list, an object with ``__array__``) converted; sparse or non-2-D input refused."""
    if hasattr(X, "read") and hasattr(X, "shape") and not isinstance(X, np.ndarray):
        return X
    X = _x_2d(X)
    if X.shape[0] == 0:
        raise ValueError(f"X has 0 sample(s) (shape={X.shape}) while a minimum of 1 is required")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        X = np.asarray(X, dtype=np.float64)
    return X


def _source_shape(X) -> tuple[int, int]:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError("X must be a 2-D array (samples, features) or a column source with .shape (n_rows, "
                         f"n_features) and .read(columns); got {type(X).__name__} with shape {shape}")
    return int(shape[0]), int(shape[1])


def _read(X, cols, dtype) -> np.ndarray:
    """Columns ``cols`` (a slice or sorted indices) of an array or a source with ``.read``."""
    block = X.read(cols) if hasattr(X, "read") and not isinstance(X, np.ndarray) else np.asarray(X)[:, cols]
    return np.asarray(block, dtype=dtype)


def _check_finite(ss, lo) -> None:
    """NaN or inf anywhere in a column makes its sum of squares non-finite: one check per column."""
    bad = ~np.isfinite(ss)
    if bad.any():
        raise ValueError(f"X holds NaN or inf values (input column {lo + int(np.flatnonzero(bad)[0])}); "
                         "clean the inputs first")


class _TopK:
    """The k largest scores per target seen so far, merged chunk by chunk."""

    block = 1 << 22  # scores handled at once (targets x chunk inputs)

    def __init__(self, n_targets: int, k: int, dtype):
        self.k = k
        self.score = np.full((n_targets, k), -1.0, dtype=dtype)  # real scores are >= 0
        self.index = np.full((n_targets, k), -1, dtype=np.int64)
        self.threshold = np.full(n_targets, -1.0, dtype=dtype)

    def add(self, scores: np.ndarray, offset: int) -> None:
        """scores: (n_targets, n_cols) >= 0 for inputs ``offset + j``; blocks of targets at a time, so
        the candidates of a chunk (all of its inputs, before k are known) stay a few MB."""
        step = max(1, self.block // max(1, scores.shape[1]))
        for lo in range(0, scores.shape[0], step):
            self._add(slice(lo, lo + step), scores[lo:lo + step], offset)

    def _add(self, tg: slice, scores: np.ndarray, offset: int) -> None:
        rows, cols = np.nonzero(scores > self.threshold[tg, None])
        if rows.size == 0:
            return
        n = scores.shape[0]
        count = np.bincount(rows, minlength=n)
        width = int(count.max())
        start = np.cumsum(count) - count
        pos = np.arange(rows.size) - start[rows]
        cand_s = np.full((n, width), -1.0, dtype=self.score.dtype)
        cand_i = np.full((n, width), -1, dtype=np.int64)
        cand_s[rows, pos] = scores[rows, cols]
        cand_i[rows, pos] = cols + offset
        both_s = np.concatenate([self.score[tg], cand_s], axis=1)
        both_i = np.concatenate([self.index[tg], cand_i], axis=1)
        keep = np.argpartition(-both_s, self.k - 1, axis=1)[:, : self.k]
        self.score[tg] = np.take_along_axis(both_s, keep, axis=1)
        self.index[tg] = np.take_along_axis(both_i, keep, axis=1)
        self.threshold[tg] = self.score[tg].min(axis=1)


def _groups(selected: np.ndarray, max_cols: int) -> list[np.ndarray]:
    """Consecutive target ranges whose selected inputs (union) stay within ``max_cols`` columns."""
    out, start, members = [], 0, set()
    for v in range(selected.shape[0]):
        row = selected[v].tolist()
        members.update(row)
        if len(members) > max_cols and v > start:
            out.append(np.arange(start, v))
            start, members = v, set(row)
    out.append(np.arange(start, selected.shape[0]))
    return out


class StreamingSelectiveRidge(_LinearBase):
    """Per-target input selection (top ``n_feat`` by |Pearson r|) + ridge, FastL2LiR-compatible,
    with X streamed in column chunks (bounded memory for millions of inputs).

    ``fit(X, Y, rows=None, test_rows=None)``: X is an array (n_rows, n_features) or a source with
    ``.shape`` and ``.read(columns) -> (n_rows, k)`` (columns: a slice or sorted indices); ``rows``
    (n_samples,) maps each sample of Y to its row of X (default: row i for sample i); rows of X in
    ``test_rows`` are predicted during the fit (``test_predictions_``), so no further pass over X
    is needed. After fit: ``selected_`` (n_targets, n_feat) input indices (sorted),
    ``weights_`` (n_targets, n_feat), ``intercept_`` (n_targets,); ``coef_`` is built densely on
    access. ``predict(X)`` streams X again. Inputs whose variance on the training samples is
    below 1e-8 correlate with nothing (FastL2LiR's rule); targets that are constant use the
    first inputs reached.

    chunk_size: input columns read at a time; memory_mb: bound on the selected inputs' columns
    gathered at once (targets are processed in groups, each reading X again, beyond it).
    """

    def __init__(self, alpha=100.0, n_feat=500, penalize_intercept=True, chunk_size=4096, memory_mb=1024,
                 dtype=None):
        self.alpha = alpha
        self.n_feat = n_feat
        self.penalize_intercept = penalize_intercept
        self.chunk_size = chunk_size
        self.memory_mb = memory_mb
        self.dtype = dtype

    # ------------------------------------------------------------------ fit
    def fit(self, X, Y, rows=None, test_rows=None):
        dt = get_backend("numpy", None, self.dtype).dtype
        alpha = check_alpha(self.alpha, 1)
        X = _as_source(X)
        n_src, p = _source_shape(X)
        Y, self._y1d = check_y(Y, dt, self)
        n, t = Y.shape
        if n < 2:
            raise ValueError(f"Y has {n} sample(s) (n_samples = {n}); fitting {type(self).__name__} needs at least "
                             "2 samples (it correlates inputs with targets)")
        rows = np.arange(n_src) if rows is None else np.asarray(rows)
        if rows.ndim != 1 or rows.shape[0] != n or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be {n} integer row indices of X (one per sample of Y); got "
                             f"shape {rows.shape} dtype {rows.dtype}")
        if rows.size and (rows.min() < 0 or rows.max() >= n_src):
            raise ValueError(f"rows must index rows of X in [0, {n_src}); got values in [{rows.min()}, {rows.max()}]")
        k = int(self.n_feat)
        if k != self.n_feat or k < 1:
            raise ValueError(f"n_feat must be an integer >= 1; got {self.n_feat!r}")
        k = min(k, p)
        cs = int(self.chunk_size)
        if cs != self.chunk_size or cs < 1:
            raise ValueError(f"chunk_size must be an integer >= 1; got {self.chunk_size!r}")
        if not (isinstance(self.memory_mb, (int, float)) and self.memory_mb > 0):
            raise ValueError(f"memory_mb must be a number > 0; got {self.memory_mb!r}")
        test = None if test_rows is None else np.asarray(test_rows, dtype=np.int64)
        if test is not None and test.size and (test.min() < 0 or test.max() >= n_src):
            raise ValueError(f"test_rows must index rows of X in [0, {n_src})")

        uniq, inv = np.unique(rows, return_inverse=True)
        counts = np.bincount(inv).astype(np.float64)
        sqrt_c = np.sqrt(counts)
        all_rows = uniq.size == n_src  # uniq is sorted: every row used -> no gather needed
        ym = Y.mean(axis=0, dtype=np.float64)
        # per used row: sum of its samples' centred targets, scaled by 1/sqrt(count)
        import scipy.sparse

        per_row = scipy.sparse.csr_matrix((1.0 / sqrt_c[inv], (inv, np.arange(n))), shape=(uniq.size, n))
        T = np.asarray(per_row @ (Y - ym.astype(dt)), dtype=dt)

        counts_dt, sqrt_c_dt = counts.astype(dt), sqrt_c[:, None].astype(dt)

        def prepared(cols):
            """Used rows of the columns: weighted-centred and scaled by sqrt(count) (Us), their
            means, the raw test rows and the columns' sums of squares."""
            block = _read(X, cols, dt)
            xr = block if all_rows else block[uniq]
            xm = (counts_dt @ xr).astype(np.float64) / n  # a GEMV in the working precision, no float64 copy
            us = xr - xm.astype(dt)
            us *= sqrt_c_dt
            ss = np.einsum("ij,ij->j", us, us).astype(np.float64)
            return us, xm, (block[test] if test is not None else None), ss

        # pass 1: streaming top-k of |correlation| per target
        top = _TopK(t, k, dt)
        n_const = 0
        for lo in range(0, p, cs):
            hi = min(lo + cs, p)
            us, _, _, ss = prepared(slice(lo, hi))
            _check_finite(ss, lo)
            keep = ss / n >= _CONSTANT_VAR
            n_const += int((~keep).sum())
            inv_norm = np.zeros(hi - lo, dtype=dt)
            inv_norm[keep] = 1.0 / np.sqrt(ss[keep])
            us *= inv_norm
            scores = T.T @ us  # (t, chunk): correlations times each target's norm
            np.abs(scores, out=scores)
            top.add(scores, lo)
        if n_const:
            logger.info("StreamingSelectiveRidge: %d of %d inputs are constant on the training samples "
                        "(correlation 0)", n_const, p)
        selected = np.sort(top.index, axis=1)
        const_y = ~np.any(T != 0, axis=0)
        if const_y.any():  # no input correlates with a constant target: the first k inputs, as SelectiveRidge
            selected[const_y] = np.arange(k)

        # pass 2 + solve, per group of targets whose selected columns fit in memory_mb
        item = np.dtype(dt).itemsize
        max_cols = int(self.memory_mb * 2**20 // (item * (uniq.size + (test.size if test is not None else 0) + 2)))
        if max_cols < k:
            raise ValueError(f"memory_mb={self.memory_mb} holds {max_cols} input columns of {uniq.size} rows; "
                             f"need at least n_feat={k}")
        weights = np.empty((t, k), dtype=dt)
        intercept = np.empty(t, dtype=dt)
        preds = np.empty((test.size, t), dtype=dt) if test is not None else None
        groups = _groups(selected, max_cols)
        if len(groups) > 1:
            logger.info("StreamingSelectiveRidge: %d target groups (selected inputs over memory_mb=%s)",
                        len(groups), self.memory_mb)
        for g in groups:
            union = np.unique(selected[g])
            u = union.size
            U = np.empty((uniq.size, u), dtype=dt, order="F")  # columns contiguous: cheap per-target gathers
            xm_u = np.empty(u, dtype=np.float64)
            Xt = np.empty((test.size, u), dtype=dt) if test is not None else None
            for lo in range(0, p, cs):
                a, b = np.searchsorted(union, [lo, min(lo + cs, p)])
                if b > a:
                    us, xm, xt, _ = prepared(union[a:b])
                    if xt is not None and not np.isfinite(xt).all():
                        raise ValueError("X holds NaN or inf values in test_rows; clean the inputs first")
                    U[:, a:b], xm_u[a:b] = us, xm
                    if Xt is not None:
                        Xt[:, a:b] = xt
            loc = np.searchsorted(union, selected[g])
            q, uu = self._solve(U, np.asfortranarray(T[:, g]), xm_u.astype(dt), loc, float(alpha), dt)
            m = xm_u[loc]
            mq = (m * q).sum(1)
            if self.penalize_intercept:
                mu = (m * uu).sum(1)
                c = n * (ym[g] - mq) / (alpha + n * alpha * mu + n)
                w = q + (alpha * c)[:, None] * uu
            else:
                c, w = ym[g] - mq, q
            weights[g], intercept[g] = w, c
            if Xt is not None:
                step = max(1, 2**24 // max(1, test.size * k))
                for s in range(0, g.size, step):
                    sl = slice(s, s + step)
                    preds[:, g[sl]] = np.einsum("nvk,vk->nv", Xt[:, loc[sl]], w[sl].astype(dt)) + c[sl]
            del U, Xt
        self.selected_ = selected
        self.weights_ = weights
        self.intercept_ = intercept
        self.n_features_in_ = p
        self.n_constant_inputs_ = n_const
        self.test_predictions_ = preds
        self._dtype = dt
        self._dense = None
        return self

    def _solve(self, U, T, xm, loc, alpha, dt):
        """(q, u) per target: (G + alpha I)^-1 [U_I^T T_v, xm_I] with G = U_I^T U_I."""
        g, k = loc.shape
        u = U.shape[1]
        be = get_backend("numpy", None, dt)
        item = np.dtype(dt).itemsize
        rhs = np.empty((g, k, 2), dtype=dt)
        rhs[:, :, 1] = xm[loc]
        if u * u <= g * k * k and u * u * item <= self.memory_mb * 2**20:
            # strong overlap: the union's Gram once, each target's block gathered from it
            gram = be.add_diag(be.gram(U), alpha, inplace=True)
            step = max(1, 2**24 // max(1, u))
            for s in range(0, g, step):
                R = U.T @ T[:, s:s + step]  # (u, batch)
                rhs[s:s + step, :, 0] = np.take_along_axis(R, loc[s:s + step].T, axis=0).T
            sol = be.gather_solve(gram, rhs, loc)
            return sol[:, :, 0].astype(np.float64), sol[:, :, 1].astype(np.float64)
        sol = np.empty((g, k, 2), dtype=dt)
        lapack = _gil_free_cholesky(dt)

        def work(lo, hi):
            for v in range(lo, hi):
                A = U[:, loc[v]]
                r = A.T @ T[:, v]
                G = A.T @ A
                G[np.diag_indices(k)] += alpha
                b = np.empty((2, k), dtype=dt)  # column-major (k, 2) for LAPACK
                b[0], b[1] = r, rhs[v, :, 1]
                if lapack is not None and lapack.solve(G, b):  # G symmetric: its C order is LAPACK's
                    sol[v] = b.T
                else:  # not positive definite (alpha = 0 on rank-deficient inputs): least squares
                    G = A.T @ A
                    G[np.diag_indices(k)] += alpha
                    sol[v] = be.solve_spd(G, np.stack([r, rhs[v, :, 1]], axis=1))

        workers = min(_n_threads(), g)
        bounds = np.linspace(0, g, workers + 1).astype(int)
        with _single_threaded_blas():
            if workers <= 1:
                work(0, g)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(lambda ab: work(*ab), zip(bounds[:-1], bounds[1:])))
        return sol[:, :, 0].astype(np.float64), sol[:, :, 1].astype(np.float64)

    # ------------------------------------------------------------------ predict
    @property
    def coef_(self):
        """Dense weights (n_features, n_targets), zero outside each target's selected inputs."""
        check_is_fitted(self, "intercept_")
        if self._dense is None:
            t = self.weights_.shape[0]
            dense = np.zeros((self.n_features_in_, t), dtype=self.weights_.dtype)
            dense[self.selected_, np.arange(t)[:, None]] = self.weights_
            self._dense = dense
        return self._dense

    def predict(self, X):
        """X: an array (n, n_features) or a column source; read in chunks of ``chunk_size`` inputs."""
        import scipy.sparse

        check_is_fitted(self, "intercept_")
        X = _as_source(X)
        n, p = _source_shape(X)
        if p != self.n_features_in_:
            raise ValueError(f"X has {p} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input (as in fit)")
        t, k = self.weights_.shape
        W = scipy.sparse.csr_matrix(
            (self.weights_.ravel(), (self.selected_.ravel(), np.repeat(np.arange(t), k))), shape=(p, t))
        out = np.zeros((n, t), dtype=np.float64)
        cs = int(self.chunk_size)
        for lo in range(0, p, cs):
            hi = min(lo + cs, p)
            Wc = W[lo:hi]
            if Wc.nnz:
                block = _read(X, slice(lo, hi), self._dtype)
                if not np.isfinite(block).all():
                    raise ValueError("X holds NaN or inf values; clean the inputs first")
                out += np.asarray((Wc.T @ block.T).T)
        out = (out + self.intercept_).astype(self._dtype)
        return out[:, 0] if self._y1d else out
