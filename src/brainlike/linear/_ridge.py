"""Multi-target ridge regression: fixed alpha (``Ridge``) and cross-validated per-target alpha (``RidgeCV``).

Both pick the primal form (features x features Gram) or the dual/kernel form (samples x samples)
from the shapes, whichever is smaller. ``RidgeCV`` factorises once per fold (an eigendecomposition
shared by every alpha and every target), solves all targets of a batch with one GEMM per alpha and
keeps the intermediates of one target batch at a time, so memory stays bounded for 100k+ targets.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from brainlike._backend import get_backend
from brainlike._validate import check_choice
from brainlike.linear._common import (
    batch_size,
    check_alpha,
    check_alphas,
    check_x_predict,
    check_xy,
    make_splits,
)


def _solve(be, Xc, Yc, alpha):
    """Ridge weights (p, t) for centred data; scalar alpha -> Cholesky, per-target alpha -> eigh."""
    n, p = Xc.shape
    primal = p <= n
    M = be.gram(Xc) if primal else be.gram(Xc.T)
    rhs = Xc.T @ Yc if primal else Yc
    if np.ndim(alpha) == 0:
        sol = be.solve_spd(be.add_diag(M, float(alpha), inplace=True), rhs)
    else:
        s, V = be.eigh(M)
        sol = V @ ((V.T @ rhs) / (s[:, None] + be.asarray(alpha)[None, :]))
    return sol if primal else Xc.T @ sol


class _LinearBase(MultiOutputMixin, RegressorMixin, BaseEstimator):
    def _backend(self):
        return get_backend(self.backend, self.device, self.dtype)

    def predict(self, X):
        check_is_fitted(self, "intercept_")
        X = check_x_predict(self, X, self._dtype)
        out = self._decision(X)
        return out[:, 0] if self._y1d else out

    def _decision(self, X):
        return X @ self.coef_ + self.intercept_


class Ridge(_LinearBase):
    """Ridge regression for many targets at once; ``alpha`` scalar or one per target.

    The intercept (``fit_intercept=True``) is not penalised, as in scikit-learn: X and Y are centred.
    """

    def __init__(self, alpha=1.0, fit_intercept=True, backend="numpy", device=None, dtype=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y):
        be = self._backend()
        X, Y, self._y1d = check_xy(X, Y, be.dtype, self)
        alpha = check_alpha(self.alpha, Y.shape[1])
        self._dtype = be.dtype
        Xb, Yb = be.asarray(X), be.asarray(Y)
        if self.fit_intercept:
            xm, ym = be.mean0(Xb), be.mean0(Yb)
            Xb, Yb = Xb - xm, Yb - ym
        coef = _solve(be, Xb, Yb, alpha)
        self.coef_ = be.to_numpy(coef)
        if self.fit_intercept:
            self.intercept_ = be.to_numpy(ym - xm @ coef)
        else:
            self.intercept_ = np.zeros(Y.shape[1], dtype=be.dtype)
        self.n_features_in_ = X.shape[1]
        return self


def _score_columns(kind, y, pred, be):
    """Per-column CV score (numpy float64); a constant test column scores 0 (as scikit-learn's r2_score)."""
    if kind == "r2":
        ss_res = ((y - pred) ** 2).sum(0)
        yc = y - be.mean0(y)
        ss_tot = (yc**2).sum(0)
        ss_res, ss_tot = be.to_numpy(ss_res).astype(np.float64), be.to_numpy(ss_tot).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 - ss_res / ss_tot
        out[ss_tot == 0] = np.where(ss_res[ss_tot == 0] == 0, 1.0, 0.0)
        return out
    yc = y - be.mean0(y)
    pc = pred - be.mean0(pred)
    num = be.to_numpy((yc * pc).sum(0)).astype(np.float64)
    den = np.sqrt(be.to_numpy((yc**2).sum(0)).astype(np.float64) * be.to_numpy((pc**2).sum(0)).astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[~np.isfinite(out)] = 0.0
    return out


class RidgeCV(_LinearBase):
    """Ridge with alpha chosen by K-fold cross-validation, per target by default.

    Each fold is factorised once (eigendecomposition of the train Gram or kernel, LAPACK's
    divide-and-conquer driver), so every alpha and target costs one GEMM. ``cv_scores_`` holds the
    mean over folds of the per-target score (R² or Pearson r on each test fold). The final model is
    refitted on all samples with each target's best alpha. In the dual form (more features than
    samples) the weights are kept as ``dual_coef_`` and ``coef_`` is built on first access.
    """

    def __init__(self, alphas=tuple(np.logspace(-1, 6, 8)), cv=5, alpha_per_target=True, fit_intercept=True,
                 scoring="r2", backend="numpy", device=None, dtype=None, target_batch_size=None):
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.target_batch_size = target_batch_size

    def fit(self, X, Y, groups=None):
        alphas = check_alphas(self.alphas)
        check_choice(self.scoring, "scoring", ("r2", "pearson"))
        be = self._backend()
        X, Y, self._y1d = check_xy(X, Y, be.dtype, self)
        n, p = X.shape
        t = Y.shape[1]
        splits = make_splits(self.cv, n, groups)
        self._dtype = be.dtype
        n_max_tr = max(len(tr) for tr, _ in splits)
        dual = p > n
        r = min(n_max_tr, p)
        bs = batch_size(t, 2 * r + 3 * n, be.dtype.itemsize, self.target_batch_size)
        batches = [slice(i, min(i + bs, t)) for i in range(0, t, bs)]

        Xb = be.asarray(X)
        if self.fit_intercept:
            xm = be.mean0(Xb)
            Xb = Xb - xm  # global centring: keeps float32 kernels accurate; folds re-centre exactly below
        K = be.gram(Xb.T) if dual else None

        scores = np.zeros((alphas.size, t), dtype=np.float64)
        for tr, te in splits:
            tr_i, te_i = be.index(tr), be.index(te)
            if dual:
                Ktt = K[tr_i][:, tr_i]
                Kte = K[te_i][:, tr_i]
                if self.fit_intercept:
                    r_tr = be.mean0(Ktt)  # K symmetric: column means = row means
                    c = r_tr.mean()
                    Ktt = Ktt - r_tr[:, None] - r_tr[None, :] + c
                    Kte = Kte - Kte.mean(1)[:, None] - r_tr[None, :] + c
                s, U = be.eigh(Ktt)
                A, P = Kte @ U, U.T
                del Ktt, Kte
            else:
                Xtr, Xte = Xb[tr_i], Xb[te_i]
                if self.fit_intercept:
                    m = be.mean0(Xtr)
                    Xtr, Xte = Xtr - m, Xte - m
                s, V = be.eigh(be.gram(Xtr))
                A, P = Xte @ V, (Xtr @ V).T
            for sl in batches:
                Ytr = be.asarray(Y[tr, sl])
                Yte = be.asarray(Y[te, sl])
                ym = be.mean0(Ytr) if self.fit_intercept else 0.0
                Z = P @ (Ytr - ym)
                for ai, a in enumerate(alphas):
                    pred = A @ (Z / (s + float(a))[:, None]) + ym
                    scores[ai, sl] += _score_columns(self.scoring, Yte, pred, be)
        scores /= len(splits)
        self.cv_scores_ = scores
        self.alphas_ = alphas
        if self.alpha_per_target:
            best = np.argmax(scores, axis=0)
            self.best_alphas_ = alphas[best]
        else:
            self.alpha_ = float(alphas[int(np.argmax(scores.mean(axis=1)))])
            self.best_alphas_ = np.full(t, self.alpha_)

        # Refit on all samples: one more factorisation, then each batch with its own alphas.
        s, V = be.eigh(K if dual else be.gram(Xb))
        coef_like = np.empty((n if dual else p, t), dtype=be.dtype)
        intercept = np.zeros(t, dtype=be.dtype)
        for sl in batches:
            Yb = be.asarray(Y[:, sl])
            ym = be.mean0(Yb) if self.fit_intercept else None
            Yc = Yb - ym if self.fit_intercept else Yb
            rhs = Yc if dual else Xb.T @ Yc
            sol = V @ ((V.T @ rhs) / (s[:, None] + be.asarray(self.best_alphas_[sl])[None, :]))
            coef_like[:, sl] = be.to_numpy(sol)
            if self.fit_intercept:
                xm_w = (Xb @ xm) @ sol if dual else xm @ sol
                intercept[sl] = be.to_numpy(ym - xm_w)
        self._x_mean = be.to_numpy(xm) if self.fit_intercept else None
        if dual:
            self.dual_coef_ = coef_like
            self._X_fit = be.to_numpy(Xb)
            self._coef = None
        else:
            self._coef = coef_like
            self.dual_coef_ = None
        self.intercept_ = intercept
        self.n_features_in_ = p
        return self

    @property
    def coef_(self):
        """Weights (n_features, n_targets); in the dual form computed from ``dual_coef_`` on first access."""
        check_is_fitted(self, "intercept_")
        if self._coef is None:
            self._coef = self._X_fit.T @ self.dual_coef_
        return self._coef

    def _decision(self, X):
        if self._coef is not None:
            return X @ self._coef + self.intercept_
        Xc = X - self._x_mean if self._x_mean is not None else X
        out = (Xc @ self._X_fit.T) @ self.dual_coef_
        if self._x_mean is not None:
            out += (self.intercept_ + self._x_mean @ self._X_fit.T @ self.dual_coef_)
        return out
