"""Partial least squares behind the engine's interface (wraps scikit-learn's PLSRegression)."""

from __future__ import annotations

import numpy as np
from sklearn.cross_decomposition import PLSRegression
from sklearn.utils.validation import check_is_fitted

from brainlike.linear._common import check_x_predict, check_xy, make_splits
from brainlike.linear._ridge import _LinearBase, _score_columns
from brainlike._backend import NumpyBackend, get_backend


def _pls_backend(est):
    """PLS is computed by scikit-learn's PLSRegression (numpy); the backend rule is checked all the same."""
    if est.backend != "numpy":
        raise ValueError(f"backend={est.backend!r}: {type(est).__name__} computes with scikit-learn's "
                         "PLSRegression, on numpy only; use backend='numpy'")
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

    ``coef_`` is (n_features, n_targets) like the other estimators of ``brainlike.linear``.
    """

    def __init__(self, n_components=2, scale=True, backend="numpy", device=None, dtype=None):
        self.n_components = n_components
        self.scale = scale
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        dt = _pls_backend(self).dtype
        X, Y, self._y1d = check_xy(X, Y, dt, self)
        (nc,) = _check_components(self.n_components)
        if nc > min(X.shape):
            raise ValueError(f"n_components must be <= min(n_samples, n_features) = {min(X.shape)}; got {nc}")
        self._dtype = dt
        self.model_ = PLSRegression(n_components=nc, scale=self.scale).fit(X, Y)
        self.coef_ = np.asarray(self.model_.coef_.T, dtype=dt)
        # scikit-learn predicts (X - x_mean) @ coef + intercept_: fold the mean into the intercept
        self.intercept_ = np.asarray(self.model_.intercept_ - self.model_._x_mean @ self.model_.coef_.T,
                                     dtype=dt).reshape(-1)
        self.n_features_in_ = X.shape[1]
        return self

    def _decision(self, X):
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
        dt = _pls_backend(self).dtype
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
                m = PLSRegression(n_components=c, scale=self.scale).fit(X[tr], Y[tr])
                pred = np.asarray(m.predict(X[te]), dtype=np.float64).reshape(len(te), -1)
                scores[i] += _score_columns(self.scoring, Y[te].astype(np.float64), pred, be)
        scores /= len(splits)
        self.n_components_grid_ = np.asarray(grid)
        self.cv_scores_ = scores
        self.best_n_components_ = int(grid[int(np.argmax(scores.mean(axis=1)))])
        best = PLS(self.best_n_components_, scale=self.scale, dtype=dt).fit(X, Y)
        self.model_ = best.model_
        self.coef_, self.intercept_ = best.coef_, best.intercept_
        self._dtype = dt
        self.n_features_in_ = X.shape[1]
        return self

    def _decision(self, X):
        return np.asarray(self.model_.predict(X), dtype=self._dtype).reshape(X.shape[0], -1)
