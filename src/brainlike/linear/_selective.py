"""FastL2LiR-compatible ridge with per-target input selection (``SelectiveRidge``).

The model of BHscore and Horikawa et al. (fastl2lir 0.11): for every target, keep the ``n_feat``
inputs with the largest absolute Pearson correlation with it on the training data, then fit ridge
on ``[X_selected, 1]`` with the intercept penalised like the weights (FastL2LiR appends a column of
ones and shrinks it too). ``penalize_intercept=False`` gives the usual unpenalised intercept.

How it is fast (same answer as FastL2LiR, which rebuilds a float64 Gram per chunk and loops in
Python per target):
- the centred Gram ``Xc^T Xc + alpha I`` is built once;
- for a chunk of targets one GEMM ``Yc^T Xc`` gives both the correlations (selection by a partial
  sort along contiguous rows) and the right-hand sides;
- the penalised intercept is a rank-one update of the centred problem, solved exactly by
  Sherman-Morrison, so each target needs one ``n_feat``-sized Cholesky (batched) and the float32
  computation never forms the ill-conditioned uncentred ``[X, 1]^T [X, 1]``.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from brainlike._validate import check_same_rows
from brainlike.linear._common import check_alpha, check_x, check_y
from brainlike.linear._ridge import _LinearBase

# FastL2LiR gives inputs whose variance is below this a correlation of 0 (never selected first).
_CONSTANT_VAR = 1e-8


class PreparedInputs:
    """What a ``SelectiveRidge`` fit computes from X alone, kept for fits of further target chunks.

    Made by :meth:`SelectiveRidge.prepare`; pass it to ``fit`` in place of X. Holds the centred
    inputs (n x p) and, once a fit has needed it, the Gram ``Xc^T Xc + alpha I`` (p x p): a whole
    network decoded from one ROI in unit chunks then builds that Gram once instead of once per chunk.
    """

    def __init__(self, settings: tuple, be, Xc, xm, alpha: float):
        self.settings = settings
        self.n_samples, self.n_features = int(Xc.shape[0]), int(Xc.shape[1])
        self.Xc, self.xm, self.alpha = Xc, xm, alpha
        self._be = be
        self._gram = self._inv_xnorm = None

    def gram(self):
        """``Xc^T Xc + alpha I``, built on first use (the ranking weights come with it)."""
        if self._gram is None:
            be = self._be
            gram = be.gram(self.Xc)
            xss = be.to_numpy(be.diag(gram))  # column sums of squares of the centred inputs
            # Ranking inputs by |Pearson r| with one target = ranking |Xc^T yc| / ||xc||: the target's
            # norm is common to the column. Constant inputs get weight 0 (FastL2LiR's correlation of 0).
            inv_xnorm = np.zeros(self.n_features, dtype=be.dtype)
            keep = xss / self.n_samples >= _CONSTANT_VAR
            inv_xnorm[keep] = 1.0 / np.sqrt(xss[keep])
            self._inv_xnorm = be.asarray(inv_xnorm)
            self._gram = be.add_diag(gram, self.alpha, inplace=True)
        return self._gram

    def inv_xnorm(self):
        self.gram()
        return self._inv_xnorm

    @property
    def nbytes(self) -> int:
        """Memory held (centred inputs + Gram once built), for callers that cache several."""
        item = np.dtype(self._be.dtype).itemsize
        return item * (self.n_samples * self.n_features + (self.n_features**2 if self._gram is not None else 0))


class SelectiveRidge(_LinearBase):
    """Per-target input selection (top ``n_feat`` by |Pearson r|) + ridge, FastL2LiR-compatible.

    ``n_feat=0`` (or ``n_feat`` equal to the number of inputs) uses all inputs: ridge on
    ``[X, 1]`` without selection. After fit: ``selected_`` (n_targets, n_feat) input indices (None
    when all inputs are used), ``weights_`` (n_targets, n_feat), ``intercept_`` (n_targets,);
    ``coef_`` (n_features, n_targets) is built densely on access. Targets that are constant on the
    training data correlate with nothing: they use the first ``n_feat`` inputs (FastL2LiR crashes).
    For many target chunks on the same X, ``inputs = model.prepare(X)`` then ``model.fit(inputs,
    Y_chunk)`` builds the inputs' Gram once.
    """

    def __init__(self, alpha=100.0, n_feat=500, fit_intercept=True, penalize_intercept=True, backend="numpy",
                 device=None, dtype=None, chunk_size=512):
        self.alpha = alpha
        self.n_feat = n_feat
        self.fit_intercept = fit_intercept
        self.penalize_intercept = penalize_intercept
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size

    def _alpha(self) -> float:
        alpha = check_alpha(self.alpha, 1)
        return float(alpha[0]) if np.ndim(alpha) else alpha

    def _settings(self, be, alpha) -> tuple:
        return (("alpha", alpha), ("fit_intercept", bool(self.fit_intercept)), ("backend", self.backend),
                ("device", str(self.device)), ("dtype", np.dtype(be.dtype).name))

    def prepare(self, X) -> PreparedInputs:
        """Centre X once for several fits on it (the Gram is built by the first fit that needs it).

        The estimator's alpha, fit_intercept, backend, device and dtype must not change between
        ``prepare`` and ``fit``.
        """
        be = self._backend()
        X = check_x(X, be.dtype)
        alpha = self._alpha()
        Xb = be.asarray(X)
        xm = be.mean0(Xb) if self.fit_intercept else be.zeros(X.shape[1])
        Xc = Xb - xm if self.fit_intercept else Xb
        return PreparedInputs(self._settings(be, alpha), be, Xc, xm, alpha)

    def fit(self, X, Y):
        """X: (n_samples, n_features) array, or the :class:`PreparedInputs` of ``prepare(X)``."""
        be = self._backend()
        alpha = self._alpha()
        if isinstance(X, PreparedInputs):
            prep = X
            want = self._settings(be, alpha)
            if prep.settings != want:
                diff = [f"{a[0]}={a[1]!r} (prepared) vs {b[1]!r} (this estimator)"
                        for a, b in zip(prep.settings, want) if a != b]
                raise ValueError("X: these PreparedInputs were made with other settings: " + ", ".join(diff)
                                 + "; call prepare(X) on this estimator")
        else:
            prep = self.prepare(X)
        Y, self._y1d = check_y(Y, be.dtype, self)
        check_same_rows(prep.Xc, Y, "X", "Y")
        n, p = prep.n_samples, prep.n_features
        if n < 2:
            raise ValueError(f"X and Y have {n} sample(s) (n_samples = {n}); fitting {type(self).__name__} needs at "
                             "least 2 samples (it correlates inputs with targets)")
        t = Y.shape[1]
        k = int(self.n_feat)
        if k != self.n_feat or k < 0 or k > p:
            raise ValueError(f"n_feat must be an integer in [0, n_features={p}] (0 = all inputs); got {self.n_feat!r}")
        if int(self.chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1; got {self.chunk_size!r}")
        if k == 0:
            k = p
        self._dtype = be.dtype
        self.n_features_in_ = p
        Xc, xm = prep.Xc, prep.xm
        penal = self.fit_intercept and self.penalize_intercept

        if k == p:
            self._fit_all(be, prep, Y, alpha, penal, n)
            return self

        gram = prep.gram()
        inv_xnorm = prep.inv_xnorm()
        cs = int(self.chunk_size)
        selected = np.empty((t, k), dtype=np.int64)
        weights = np.empty((t, k), dtype=be.dtype)
        intercept = np.zeros(t, dtype=be.dtype)
        for lo in range(0, t, cs):
            hi = min(lo + cs, t)
            Yb = be.asarray(Y[:, lo:hi])
            ym = be.mean0(Yb) if self.fit_intercept else be.zeros(hi - lo)
            Yc = Yb - ym if self.fit_intercept else Yb
            Pt = Yc.T @ Xc  # (chunk, p): right-hand sides Xc^T yc, one target per contiguous row
            idx = be.top_k_rows(Pt, k, inv_xnorm)  # (chunk, k)
            const_y = be.to_numpy(be.sum0(Yc**2) == 0)
            if const_y.any():  # no input correlates: use the first k inputs (deterministic)
                idx_np = be.to_numpy(idx).copy()
                idx_np[const_y] = np.arange(k)
                idx = be.index(idx_np)
            rows = be.index(np.arange(hi - lo))
            rhs_q = Pt[rows[:, None], idx]  # (chunk, k): Xc_I^T yc
            if self.fit_intercept:
                rhs = be.asarray(np.stack([be.to_numpy(rhs_q), be.to_numpy(xm[idx])], axis=2))
            else:
                rhs = rhs_q[:, :, None]
            sol = be.gather_solve(gram, rhs, idx)  # (chunk, k, 1 or 2)
            q = sol[:, :, 0]
            if self.fit_intercept:
                u = sol[:, :, 1]
                m = xm[idx]
                mq = (m * q).sum(1)
                if penal:
                    # [X_I, 1] ridge with penalised intercept = centred problem + rank-one term (Sherman-Morrison)
                    mu = (m * u).sum(1)
                    c = n * (ym - mq) / (alpha + n * alpha * mu + n)
                    w = q + (alpha * c)[:, None] * u
                else:
                    c = ym - mq
                    w = q
            else:
                w, c = q, be.zeros(hi - lo)
            selected[lo:hi] = be.to_numpy(idx)
            weights[lo:hi] = be.to_numpy(w)
            intercept[lo:hi] = be.to_numpy(c)
        self.selected_ = selected
        self.weights_ = weights
        self.intercept_ = intercept
        self._dense = None
        return self

    def _fit_all(self, be, prep, Y, alpha, penal, n):
        """All inputs: one shared factorisation (primal or dual) for every target."""
        Xc, xm = prep.Xc, prep.xm
        p = Xc.shape[1]
        Yb = be.asarray(Y)
        ym = be.mean0(Yb) if self.fit_intercept else None
        Yc = Yb - ym if self.fit_intercept else Yb
        primal = p <= n
        if primal:
            chol_in = prep.gram()
            rhs = Xc.T @ Yc
            if self.fit_intercept:
                both = be.solve_spd(chol_in, be.asarray(np.concatenate(
                    [be.to_numpy(rhs), be.to_numpy(xm)[:, None]], axis=1)))
                q, u = both[:, :-1], both[:, -1]
            else:
                q = be.solve_spd(chol_in, rhs)
        else:
            Kr = be.add_diag(be.gram(Xc.T), alpha, inplace=True)
            if self.fit_intercept:
                xcm = Xc @ xm
                both = be.solve_spd(Kr, be.asarray(np.concatenate(
                    [be.to_numpy(Yc), be.to_numpy(xcm)[:, None]], axis=1)))
                q = Xc.T @ both[:, :-1]
                if alpha == 0:
                    raise ValueError("alpha must be > 0 when n_features > n_samples (the problem is singular)")
                u = (xm - Xc.T @ both[:, -1]) / alpha  # (Xc^T Xc + aI)^-1 m by the push-through identity
            else:
                q = Xc.T @ be.solve_spd(Kr, Yc)
        if self.fit_intercept:
            mq = xm @ q
            if penal:
                mu = xm @ u
                c = n * (ym - mq) / (alpha + n * alpha * mu + n)
                w = q + alpha * u[:, None] * c[None, :]
            else:
                c = ym - mq
                w = q
        else:
            w, c = q, be.zeros(Y.shape[1])
        self.selected_ = None
        self._dense = be.to_numpy(w)
        self.weights_ = self._dense.T
        self.intercept_ = be.to_numpy(c)

    @property
    def coef_(self):
        """Dense weights (n_features, n_targets), zero outside each target's selected inputs."""
        check_is_fitted(self, "intercept_")
        if self._dense is None:
            t, k = self.weights_.shape
            dense = np.zeros((self.n_features_in_, t), dtype=self.weights_.dtype)
            dense[self.selected_, np.arange(t)[:, None]] = self.weights_
            self._dense = dense
        return self._dense

    def _decision(self, X):
        if self.selected_ is None:
            return X @ self._dense + self.intercept_
        t, k = self.weights_.shape
        n, p = X.shape
        out = np.empty((n, t), dtype=self._dtype)
        if n * k >= p:
            # Many samples: scatter a chunk of targets' weights into a dense (p, chunk) block and use
            # one GEMM; gathering X[:, selected] would read n * k scattered values per target.
            step = max(1, int(2**24 // max(1, p)))
            block = np.zeros((p, min(step, t)), dtype=self.weights_.dtype)
            for lo in range(0, t, step):
                hi = min(lo + step, t)
                cols = np.arange(hi - lo)[:, None]
                block[:, : hi - lo] = 0
                block[self.selected_[lo:hi], cols] = self.weights_[lo:hi]
                np.matmul(X, block[:, : hi - lo], out=out[:, lo:hi])
            return out + self.intercept_
        step = max(1, int(2**26 // max(1, n * k)))
        for lo in range(0, t, step):
            hi = min(lo + step, t)
            sel = X[:, self.selected_[lo:hi]]  # (n, chunk, k)
            out[:, lo:hi] = np.einsum("nck,ck->nc", sel, self.weights_[lo:hi])
        return out + self.intercept_
