"""Partial least squares behind the engine's interface.

numpy: scikit-learn's PLSRegression itself. torch (CPU or CUDA): the same algorithm — NIPALS with
the power method for each component's weights, regression deflation, ``x_rotations = W (P^T W)^+``
— written with the backend's operations (tested equal to scikit-learn's).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cross_decomposition import PLSRegression
from sklearn.utils.validation import check_is_fitted

from brainlike.linear._common import check_x_predict, check_xy, make_splits
from brainlike.linear._ridge import _LinearBase, _score_columns
from brainlike._backend import NumpyBackend, get_backend


def _col_absmax(be, A) -> np.ndarray:
    return be.to_numpy(be.abs(A)).max(axis=0)


def _first_weights(be, Xk, Yk, eps, max_iter=500, tol=1e-6):
    """First left/right singular vectors of Xk^T Yk by the power method (scikit-learn's, mode A), or
    None when every residual target is constant."""
    big = _col_absmax(be, Yk) > eps
    if not big.any():
        return None
    y_score = Yk[:, int(np.flatnonzero(big)[0])]
    old = None
    for _ in range(max_iter):
        xw = (Xk.T @ y_score) / (y_score @ y_score)
        xw = xw / (be.sqrt(xw @ xw) + eps)
        xs = Xk @ xw
        yw = (Yk.T @ xs) / (xs @ xs)
        y_score = (Yk @ yw) / ((yw @ yw) + eps)
        if Yk.shape[1] == 1 or (old is not None and float(be.to_numpy(((xw - old) ** 2).sum())) < tol):
            break
        old = xw
    return xw, yw


def _pls_fit(be, X, Y, n_components: int, scale: bool):
    """(coef (p, t), intercept (t,)) of PLS regression in the inputs' units, computed on backend ``be``."""
    Xk, Yk = be.asarray(X), be.asarray(Y)
    xm, ym = be.mean0(Xk), be.mean0(Yk)
    Xk, Yk = Xk - xm, Yk - ym
    n = X.shape[0]
    if scale:
        xs, ys = be.sqrt(be.sum0(Xk**2) / (n - 1)), be.sqrt(be.sum0(Yk**2) / (n - 1))
        xs, ys = be.where(xs == 0, 1.0, xs), be.where(ys == 0, 1.0, ys)
        Xk, Yk = Xk / xs, Yk / ys
    else:
        xs, ys = be.zeros(X.shape[1]) + 1.0, be.zeros(Y.shape[1]) + 1.0
    eps = float(np.finfo(be.dtype).eps)
    p, t = X.shape[1], Y.shape[1]
    W, P, Q = be.zeros((p, n_components)), be.zeros((p, n_components)), be.zeros((t, n_components))
    for k in range(n_components):
        tiny = np.flatnonzero(_col_absmax(be, Yk) < 10 * eps)  # columns close to zero set to zero
        if tiny.size:
            Yk[:, be.index(tiny)] = 0.0
        first = _first_weights(be, Xk, Yk, eps)
        if first is None:
            warnings.warn(f"y residual is constant at iteration {k}")
            break
        xw, yw = first
        i = int(be.to_numpy(be.abs(xw)).argmax())
        sign = 1.0 if float(be.to_numpy(xw[i])) >= 0 else -1.0
        xw = xw * sign
        x_scores = Xk @ xw
        ss = x_scores @ x_scores
        x_load = (x_scores @ Xk) / ss
        y_load = (x_scores @ Yk) / ss
        Xk = Xk - x_scores[:, None] * x_load[None, :]
        Yk = Yk - x_scores[:, None] * y_load[None, :]
        W[:, k], P[:, k], Q[:, k] = xw, x_load, y_load
    rot = W @ be.xp.linalg.pinv(P.T @ W)
    coef = (rot @ Q.T) * ys[None, :] / xs[:, None]
    intercept = ym - xm @ coef
    return be.to_numpy(coef), be.to_numpy(intercept)


def _pls_backend(est):
    """The estimator's backend (``brainlike._backend``'s one rule)."""
    return get_backend(est.backend, est.device, est.dtype)


def _check_components(n_components, name="n_components"):
    vals = np.atleast_1d(np.asarray(n_components))
    if vals.size == 0:
        raise ValueError(f"{name} must hold at least one value; got an empty grid")
    if not np.issubdtype(vals.dtype, np.integer) or np.any(vals < 1):
        raise ValueError(f"{name} must be integer(s) >= 1; got {n_components!r}")
    return [int(v) for v in vals]


class PLS(_LinearBase):
    """PLS regression with ``n_components`` latent components (scikit-learn's PLSRegression).

    ``coef_`` is (n_features, n_targets) like the other estimators of ``brainlike.linear``;
    ``model_`` is the fitted PLSRegression with ``backend="numpy"`` (None with torch).
    """

    def __init__(self, n_components=2, scale=True, backend="numpy", device=None, dtype=None):
        self.n_components = n_components
        self.scale = scale
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        be = _pls_backend(self)
        dt = be.dtype
        X, Y, self._y1d = check_xy(X, Y, dt, self)
        (nc,) = _check_components(self.n_components)
        if nc > min(X.shape):
            raise ValueError(f"n_components must be <= min(n_samples, n_features) = {min(X.shape)}; got {nc}")
        self._dtype = dt
        self.n_features_in_ = X.shape[1]
        if be.name != "numpy":
            self.model_ = None
            self.coef_, self.intercept_ = _pls_fit(be, X, Y, nc, self.scale)
            return self
        self.model_ = PLSRegression(n_components=nc, scale=self.scale).fit(X, Y)
        self.coef_ = np.asarray(self.model_.coef_.T, dtype=dt)
        # scikit-learn predicts (X - x_mean) @ coef + intercept_: fold the mean into the intercept
        self.intercept_ = np.asarray(self.model_.intercept_ - self.model_._x_mean @ self.model_.coef_.T,
                                     dtype=dt).reshape(-1)
        self.n_features_in_ = X.shape[1]
        return self

    def _decision(self, X):
        if self.model_ is None:
            return X @ self.coef_ + self.intercept_
        return np.asarray(self.model_.predict(X), dtype=self._dtype).reshape(X.shape[0], -1)


class PLSCV(_LinearBase):
    """PLS with the number of components chosen by K-fold CV (mean over targets and folds of R² or r).

    Grid values larger than a training fold allows are skipped.
    """

    def __init__(self, n_components=(1, 2, 4, 8, 16), cv=5, scale=True, scoring="r2", backend="numpy", device=None,
                 dtype=None):
        self.n_components = n_components
        self.cv = cv
        self.scale = scale
        self.scoring = scoring
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y, groups=None):
        from brainlike._validate import check_choice

        check_choice(self.scoring, "scoring", ("r2", "pearson"))
        fit_be = _pls_backend(self)
        dt = fit_be.dtype
        X, Y, self._y1d = check_xy(X, Y, dt, self)
        grid = _check_components(self.n_components)
        splits = make_splits(self.cv, X.shape[0], groups)
        limit = min(min(len(tr) for tr, _ in splits) - 1, X.shape[1])
        grid = [c for c in grid if c <= limit]
        if not grid:
            raise ValueError(f"n_components: every value exceeds what a training fold allows ({limit})")
        be = NumpyBackend(np.dtype(np.float64))
        scores = np.zeros((len(grid), Y.shape[1]))
        for tr, te in splits:
            for i, c in enumerate(grid):
                if fit_be.name == "numpy":
                    m = PLSRegression(n_components=c, scale=self.scale).fit(X[tr], Y[tr])
                    pred = np.asarray(m.predict(X[te]), dtype=np.float64).reshape(len(te), -1)
                else:
                    coef, icpt = _pls_fit(fit_be, X[tr], Y[tr], c, self.scale)
                    pred = (X[te] @ coef + icpt).astype(np.float64)
                scores[i] += _score_columns(self.scoring, Y[te].astype(np.float64), pred, be)
        scores /= len(splits)
        self.n_components_grid_ = np.asarray(grid)
        self.cv_scores_ = scores
        self.best_n_components_ = int(grid[int(np.argmax(scores.mean(axis=1)))])
        best = PLS(self.best_n_components_, scale=self.scale, backend=self.backend, device=self.device,
                   dtype=dt).fit(X, Y)
        self.model_ = best.model_
        self.coef_, self.intercept_ = best.coef_, best.intercept_
        self._dtype = dt
        self.n_features_in_ = X.shape[1]
        return self

    def _decision(self, X):
        if self.model_ is None:
            return X @ self.coef_ + self.intercept_
        return np.asarray(self.model_.predict(X), dtype=self._dtype).reshape(X.shape[0], -1)
