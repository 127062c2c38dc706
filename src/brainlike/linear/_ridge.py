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
from brainlike._estimator import TargetScoreMixin
from brainlike._validate import check_choice
from brainlike.metrics.correlation import selection_score as _score_columns
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


class _LinearBase(TargetScoreMixin, MultiOutputMixin, RegressorMixin, BaseEstimator):
    """``score`` = mean R² over targets (scikit-learn's); ``score_targets(X, Y, scoring="r2"|"pearson")``."""

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


def _eigh_without_constant(be, K):
    """Eigenpairs of a doubly centred kernel K (K 1 = 0) on the complement of the constant vector.

    A Householder reflector P (P 1/sqrt(n) = e_1) rotates the constant direction onto the first
    coordinate; the eigendecomposition of (P K P)[1:, 1:] then gives an orthonormal basis
    W = P[:, 1:] Q of 1^perp with K = W diag(s) W^T. In float32 the kernel's null eigenvalue is
    only zero to rounding; deflating it exactly keeps leave-one-out errors right at small alphas.
    """
    n = K.shape[0]
    v = be.asarray(np.full(n, 1.0 / np.sqrt(n)) - np.eye(1, n)[0])
    beta = 2.0 / float(be.to_numpy(v @ v))
    Kv = K @ v
    vKv = float(be.to_numpy(v @ Kv))
    PKP = K - beta * (v[:, None] * Kv[None, :] + Kv[:, None] * v[None, :]) + (beta * beta * vKv) * (v[:, None] * v[None, :])
    s, Q = be.eigh(PKP[1:, 1:], overwrite=True)
    W = (-beta) * v[:, None] * (v[1:] @ Q)[None, :]
    W[1:] += Q
    return W, s


class _Refit:
    """Final weights of a RidgeCV, filled one batch of targets at a time.

    ``targets(cols, solve)`` centres those targets, solves the centred problem with
    ``solve(rhs, cols)`` (dual: rhs = Yc; primal: rhs = Xc^T Yc) and derives the intercepts.
    """

    def __init__(self, est, be, Y, Xb, xm, dual):
        n, p = Xb.shape
        t = Y.shape[1]
        self.be, self.Y, self.Xb, self.dual, self.centre = be, Y, Xb, dual, est.fit_intercept
        self.coef_like = np.empty((n if dual else p, t), dtype=be.dtype)
        self.intercept = np.zeros(t, dtype=be.dtype)
        # intercept = mean(y) - mean(x) . w; in the dual form w = Xc^T c, so mean(x) . w = (Xc mean(x)) . c
        self.mean_map = (Xb @ xm if dual else xm) if est.fit_intercept else None

    def targets(self, cols, solve):
        be = self.be
        Yb = be.asarray(self.Y[:, cols])
        ym = be.mean0(Yb) if self.centre else None
        Yc = Yb - ym if self.centre else Yb
        sol = solve(Yc if self.dual else self.Xb.T @ Yc, cols)
        self.coef_like[:, cols] = be.to_numpy(sol)
        if self.centre:
            self.intercept[cols] = be.to_numpy(ym - self.mean_map @ sol)


class RidgeCV(_LinearBase):
    """Ridge with alpha chosen by K-fold cross-validation, per target by default.

    Each fold is factorised once (eigendecomposition of the train Gram or kernel, LAPACK's
    divide-and-conquer driver), so every alpha and target costs one GEMM; the refit on all samples
    needs one Cholesky factorisation per alpha that was chosen. ``cv=None`` (or ``"loo"``) is
    leave-one-out, as scikit-learn's default, computed exactly from one eigendecomposition of all
    samples (no refit per sample or per fold). ``cv_scores_`` holds the
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
        self._dtype = be.dtype
        if isinstance(self.cv, str) and self.cv != "loo":
            raise ValueError(f"cv={self.cv!r} is not a CV scheme: give an int, None or 'loo' (leave-one-out), "
                             "a splitter with .split, or (train, test) index pairs")
        if self.cv is None or self.cv == "loo":
            return self._fit_loo(be, X, Y, alphas)
        splits = make_splits(self.cv, n, groups)
        n_max_tr = max(len(tr) for tr, _ in splits)
        dual = p > n
        r = min(n_max_tr, p)
        bs = batch_size(t, 2 * r + 3 * n, be.dtype.itemsize, self.target_batch_size)
        batches = [slice(i, min(i + bs, t)) for i in range(0, t, bs)]

        Xb = be.asarray(X)
        xm = be.mean0(Xb) if self.fit_intercept else None
        if self.fit_intercept:
            Xb = Xb - xm  # global centring: keeps float32 kernels accurate; folds re-centre exactly below
        K = be.gram(Xb.T) if dual else None

        scores = np.zeros((alphas.size, t), dtype=np.float64)
        for tr, te in splits:
            tr_i, te_i = be.index(tr), be.index(te)
            if dual:
                Ktt = K[tr_i[:, None], tr_i[None, :]]
                Kte = K[te_i[:, None], tr_i[None, :]]
                if self.fit_intercept:
                    r_tr = be.mean0(Ktt)  # K symmetric: column means = row means
                    c = r_tr.mean()
                    Ktt = Ktt - r_tr[:, None] - r_tr[None, :] + c
                    Kte = Kte - Kte.mean(1)[:, None] - r_tr[None, :] + c
                s, U = be.eigh(Ktt, overwrite=True)
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
        self._choose_alphas(alphas, scores)

        # Refit on all samples: one Cholesky factorisation per alpha that some target chose (cheaper
        # than an eigendecomposition, ~n^3/3 vs ~4n^3), then that alpha's targets in batches.
        M = K if dual else be.gram(Xb)
        refit = _Refit(self, be, Y, Xb, xm, dual)
        for a in np.unique(self.best_alphas_):
            solve = be.spd_solver(be.add_diag(M, float(a)))
            chosen = np.flatnonzero(self.best_alphas_ == a)
            for lo in range(0, chosen.size, bs):
                refit.targets(chosen[lo:lo + bs], lambda rhs, cols: solve(rhs))
            solve = None  # free this alpha's factor before the next one is built
        self._store(be, Xb, xm, refit.coef_like, refit.intercept, dual, p)
        return self

    def _choose_alphas(self, alphas, scores):
        self.cv_scores_ = scores
        self.alphas_ = alphas
        if self.alpha_per_target:
            self.best_alphas_ = alphas[np.argmax(scores, axis=0)]
        else:
            self.alpha_ = float(alphas[int(np.argmax(scores.mean(axis=1)))])
            self.best_alphas_ = np.full(scores.shape[1], self.alpha_)

    def _fit_loo(self, be, X, Y, alphas):
        """Exact leave-one-out CV for every alpha and target from one eigendecomposition.

        With an orthonormal basis W and spectrum s of the centred problem (eigenvectors of the
        kernel Xc Xc^T in the dual form; Xc V / sqrt(s) from the Gram's eigenvectors V in the primal
        form), the hat matrix is H = J/n + W diag(s / (s + alpha)) W^T and the leave-one-out error of
        sample i is r_i / (1 - H_ii), r = (I - H) y. In the dual form W is an orthonormal basis of
        the samples' space less the constant direction (deflated exactly when there is an intercept),
        so I - H = W diag(alpha / (s + alpha)) W^T is formed without cancellation at small alpha.
        The same decomposition then gives the final weights for each target's alpha.
        """
        n, p = X.shape
        t = Y.shape[1]
        if n < 3:
            raise ValueError(f"leave-one-out CV needs at least 3 samples; got {n}")
        dual = p > n
        Xb = be.asarray(X)
        xm = be.mean0(Xb) if self.fit_intercept else None
        if self.fit_intercept:
            Xb = Xb - xm
        if dual and self.fit_intercept:
            W, s = _eigh_without_constant(be, be.gram(Xb.T))
        else:
            s, W = be.eigh(be.gram(Xb.T) if dual else be.gram(Xb), overwrite=True)
        s_np = np.clip(be.to_numpy(s).astype(np.float64), 0.0, None)
        V = W  # eigenvectors: of the kernel (dual) or of the Gram (primal, replaced by the basis below)
        if dual:
            keep = np.ones(s_np.size, dtype=bool)
        else:  # left singular vectors of the non-null directions
            keep = s_np > s_np.max() * n * np.finfo(be.dtype).eps if s_np.max() > 0 else np.zeros(p, dtype=bool)
            kept = be.index(np.flatnonzero(keep))
            W = (Xb @ V[:, kept]) / be.sqrt(be.asarray(s_np[keep]))[None, :]
        sk = s_np[keep]
        # Diagonal of I - H per alpha, in float64 (n x n_alphas): sum_k W_ik^2 f_k(alpha) by row blocks.
        W2 = be.to_numpy(W)
        frac = (alphas[None, :] / (sk[:, None] + alphas[None, :])) if dual else (sk[:, None] / (sk[:, None] + alphas[None, :]))
        diag = np.empty((n, alphas.size))
        step = max(1, 2**24 // max(1, W2.shape[1]))
        for lo in range(0, n, step):
            blk = W2[lo:lo + step].astype(np.float64) ** 2
            diag[lo:lo + step] = blk @ frac
        del W2
        if dual:  # W spans the complement of the constant when there is an intercept: nothing to subtract
            one_minus_h = diag
        else:
            one_minus_h = 1.0 - diag - (1.0 / n if self.fit_intercept else 0.0)
        one_minus_h = np.maximum(one_minus_h, np.finfo(np.float64).tiny)

        bs = batch_size(t, 3 * n + W.shape[1], be.dtype.itemsize, self.target_batch_size)
        s = be.asarray(s_np)
        f64 = get_backend("numpy", dtype=np.float64)  # scores in float64 whatever the fit's backend
        scores = np.zeros((alphas.size, t), dtype=np.float64)
        for lo in range(0, t, bs):
            sl = slice(lo, min(lo + bs, t))
            Yb = be.asarray(Y[:, sl])
            Yc = Yb - be.mean0(Yb) if self.fit_intercept else Yb
            Z = W.T @ Yc
            y64 = be.to_numpy(Yb).astype(np.float64)
            for ai in range(alphas.size):
                f = be.asarray(frac[:, ai])[:, None]
                r = W @ (Z * f) if dual else Yc - W @ (Z * f)
                err = be.to_numpy(r).astype(np.float64) / one_minus_h[:, ai:ai + 1]
                scores[ai, sl] = _score_columns(self.scoring, y64, y64 - err, f64)  # held-out predictions
        self._choose_alphas(alphas, scores)

        # Final weights from the same decomposition: V diag(1 / (s + alpha_t)) V^T rhs per target.
        refit = _Refit(self, be, Y, Xb, xm, dual)
        for lo in range(0, t, bs):
            refit.targets(slice(lo, min(lo + bs, t)), lambda rhs, cols: V @ (
                (V.T @ rhs) / (s[:, None] + be.asarray(self.best_alphas_[cols])[None, :])))
        self._store(be, Xb, xm, refit.coef_like, refit.intercept, dual, p)
        return self

    def _store(self, be, Xb, xm, coef_like, intercept, dual, p):
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
