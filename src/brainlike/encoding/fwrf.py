"""Feature-weighted receptive field (fwRF) encoding model (St-Yves & Naselaris 2018; St-Yves et al. 2022).

Every voxel sees the feature maps of one or more network layers through one isotropic
Gaussian pooling field (x, y, sigma), chosen from a fixed grid of candidates; the pooled
features (optionally compressed and z-scored) are mapped to the voxel by ridge regression.
Field and ridge penalty are chosen per voxel on a holdout split.

The expensive part is shared: for a batch of candidate fields the pooled features of all
images are computed once (the maps read once per batch), each field's Gram matrix is factored
once per penalty (Cholesky; or diagonalised once for all penalties), and then every voxel and
every penalty is scored with matrix products (all voxels of a batch at once). Memory stays
bounded by the candidate, sample and voxel batch sizes.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from brainlike._backend import get_backend
from brainlike._zscore import backend_train_stats
from brainlike._estimator import RenamedParams, TargetScoreMixin, accepts_renamed, renamed_attribute
from brainlike._validate import as_2d_float, check_choice, check_positive
from brainlike.encoding.fwrf_fields import (  # noqa: F401  (re-exported)
    NONLINEARITIES,
    _Maps,
    apply_nonlinearity,
    check_candidates,
    gaussian_fields,
    rf_grid,
)

DEFAULT_ALPHAS = tuple(np.logspace(0, 6, 9))


class FWRF(RenamedParams, TargetScoreMixin, BaseEstimator):
    """fwRF encoding model: per-voxel Gaussian pooling field + ridge over pooled features.

    Parameters
    ----------
    candidates : (n, 3) array of (x, y, sigma), default ``rf_grid()`` (875 fields).
    aperture : image width in the units of the candidates.
    alphas : ridge penalties tried per voxel (formerly ``lambdas``).
    holdout : fraction (0-1) or number of training samples held out to choose field and penalty.
    nonlinearity : None, "log1p", "sqrt", "logtanh" or a callable on pooled features.
    zscore : z-score pooled features with training statistics (per candidate).
    fit_intercept : unpenalised intercept (features and responses centred on the training part).
    refit : refit the chosen (field, penalty) on all samples (the paper keeps the training-part fit).
    backend, device, dtype : "numpy" or "torch"; device None = CUDA when present (``brainlike._backend``);
        float32 by default.
    solver : "auto", "cholesky" or "eigh": how each field's ridge problems are solved. "cholesky" factors
        (X'X + alpha I) once per penalty and solves the holdout features against it; "eigh"
        diagonalises X'X once for all penalties. Both are exact (equal up to rounding); "auto" takes
        Cholesky when every penalty is > 0 and there are at most 16 (a symmetric eigendecomposition
        runs far below the GEMM rate, so a few Cholesky factors are cheaper), else eigh. The Cholesky
        path holds candidate_batch_size x n_alphas factors (F x F) at a time.
    n_threads : BLAS/torch CPU threads during fit/predict (restored afterwards); 1 is fastest on a
        machine whose cores are already busy (threads then spin-wait).
    extractor : optional callable images -> list of feature maps (one (b, C, H, W) per layer); when
        set, ``fit``/``predict``/``score`` take images (uint8 (N, H, W, 3) or an ImageSet) instead of maps.
    candidate_batch_size, sample_batch_size, voxel_batch_size : bound the memory.
    random_state : seed of the random holdout split.

    ``score(X, Y)`` is the mean R² over voxels; ``score_targets(X, Y, scoring="r2"|"pearson")``
    one score per voxel. After fit: ``alpha_`` (per voxel), ``alphas_``, ``rf_x_``/``rf_y_``/
    ``rf_sigma_``, ``holdout_score_`` (R² on the holdout split), ``coef_``, ``intercept_``.
    """

    _renamed = {"lambdas": "alphas"}
    lambda_ = renamed_attribute("lambda_", "alpha_")
    lambdas_ = renamed_attribute("lambdas_", "alphas_")

    @accepts_renamed
    def __init__(
        self,
        candidates=None,
        *,
        aperture: float = 1.0,
        alphas=DEFAULT_ALPHAS,
        holdout=0.1,
        nonlinearity=None,
        zscore: bool = True,
        fit_intercept: bool = True,
        refit: bool = False,
        backend: str = "numpy",
        device=None,
        dtype=None,
        candidate_batch_size: int = 8,
        sample_batch_size: int = 512,
        voxel_batch_size: int = 2048,
        extent: float = 1.1,
        random_state=0,
        progress: bool = False,
        extractor=None,
        extractor_batch_size: int = 64,
        n_threads: int | None = None,
        solver: str = "auto",
    ):
        self.candidates = candidates
        self.aperture = aperture
        self.alphas = alphas
        self.holdout = holdout
        self.nonlinearity = nonlinearity
        self.zscore = zscore
        self.fit_intercept = fit_intercept
        self.refit = refit
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.candidate_batch_size = candidate_batch_size
        self.sample_batch_size = sample_batch_size
        self.voxel_batch_size = voxel_batch_size
        self.extent = extent
        self.random_state = random_state
        self.progress = progress
        self.extractor = extractor
        self.extractor_batch_size = extractor_batch_size
        self.n_threads = n_threads
        self.solver = solver

    # -- helpers ---------------------------------------------------------------------------
    def _inputs(self, X):
        """Feature maps: ``X`` itself, or the extractor's maps of the images ``X`` (computed once, in batches)."""
        if self.extractor is None:
            return _Maps(X)
        if not callable(self.extractor):
            raise ValueError(f"extractor must be callable (images -> list of feature maps); got {type(self.extractor).__name__}")
        images = X.array() if hasattr(X, "array") and hasattr(X, "ids") else X
        parts = []
        for i in range(0, len(images), self.extractor_batch_size):
            out = self.extractor(images[i : i + self.extractor_batch_size])
            out = [out] if hasattr(out, "shape") else list(out)
            parts.append([o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o) for o in out])
        if not parts:
            raise ValueError("X (images) is empty")
        return _Maps([np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))])

    def _check_params(self):
        check_positive(self.aperture, "aperture")
        lam = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if lam.ndim != 1 or lam.size == 0:
            raise ValueError(f"alphas must be a non-empty 1-D sequence; got {self.alphas!r}")
        check_positive(lam, "alphas", allow_zero=True)
        if not callable(self.nonlinearity):
            check_choice(self.nonlinearity, "nonlinearity", NONLINEARITIES)
        for name in ("candidate_batch_size", "sample_batch_size", "voxel_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        cand = rf_grid(aperture=self.aperture, extent=self.extent) if self.candidates is None else self.candidates
        cand = check_candidates(cand, self.aperture, self.extent)
        return cand, lam

    def _split(self, n, holdout_mask=None):
        if holdout_mask is not None:
            mask = np.asarray(holdout_mask, dtype=bool)
            if mask.shape != (n,):
                raise ValueError(f"holdout_mask must be a boolean array of shape ({n},); got shape {mask.shape}")
            ho = np.flatnonzero(mask)
        else:
            h = self.holdout
            if isinstance(h, (float, np.floating)) and 0 < h < 1:
                n_ho = int(math.ceil(h * n))
            elif isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1:
                n_ho = int(h)
            else:
                raise ValueError(f"holdout must be a fraction in (0, 1) or a positive integer; got {h!r}")
            rng = np.random.default_rng(self.random_state)
            ho = np.sort(rng.permutation(n)[:n_ho])
        tr = np.setdiff1d(np.arange(n), ho)
        if ho.size < 2 or tr.size < 2:
            raise ValueError(
                f"too few samples for the holdout split: {n} samples give {tr.size} for training and "
                f"{ho.size} held out; both need at least 2 (holdout={self.holdout!r})"
            )
        return tr, ho

    def _pool(self, be, maps: _Maps, fields, idx_all):
        """Pooled features (n_cand, n_samples, n_features) of the samples ``idx_all``."""
        k = fields[0].shape[1]
        out = []
        sb = self.sample_batch_size
        for start in range(0, len(idx_all), sb):
            idx = idx_all[start : start + sb]
            parts = []
            for m, g in zip(maps.batch(idx), fields):
                m = be.asarray(m)
                b, c = m.shape[0], m.shape[1]
                # (k, HW) @ (HW, b*C): the maps are read once, the result is already field-major
                parts.append((be.T(g) @ be.T(m.reshape((b * c, -1)))).reshape((k, b, c)))
            out.append(be.concat(parts, axis=2))  # (k, b, F)
        pooled = be.concat(out, axis=1) if len(out) > 1 else out[0]  # (k, n, F)
        return apply_nonlinearity(be, pooled, self.nonlinearity)

    def _fields(self, be, cand_rows, maps: _Maps):
        return [
            be.asarray(gaussian_fields(cand_rows, npix, self.aperture).reshape(len(cand_rows), -1).T)
            for npix in maps.n_pix
        ]

    def _standardise(self, be, P, rows):
        """Centre/scale (n_cand, n, F) with the statistics of ``rows``; returns (Z, mean, scale)."""
        ref = P[:, rows, :] if rows is not None else P
        if self.zscore:
            mu, sd = backend_train_stats(be, ref, axis=1, what="pooled features", level=logging.DEBUG)
        else:
            mu = be.mean(ref, axis=1, keepdims=True) if self.fit_intercept else be.zeros((P.shape[0], 1, P.shape[2]))
            sd = be.zeros((P.shape[0], 1, P.shape[2])) + 1.0
        return (P - mu) / sd, mu[:, 0, :], sd[:, 0, :]

    def _use_cholesky(self, lam) -> bool:
        check_choice(self.solver, "solver", ("auto", "cholesky", "eigh"))
        if self.solver == "auto":
            return bool(lam.min() > 0 and lam.size <= 16)
        return self.solver == "cholesky"

    def _cholesky_holdout(self, be, Xtr, Xho, lam):
        """Per field c and penalty l a solver of (G_c + lam_l I) (its Cholesky factor, kept to form the
        weights of the voxels it wins) and H[l, c] = Xho_c (G_c + lam_l I)^-1 (nl, kb, n_ho, F): the
        holdout predictions of penalty l are then H[l] @ X'Y (one batched GEMM per penalty)."""
        kb, n_ho, nf = Xho.shape
        H = be.zeros((len(lam), kb, n_ho, nf))
        solvers = {}
        for c in range(kb):
            G = be.gram(Xtr[c])
            xho_t = be.T(Xho[c])
            for li, a in enumerate(lam):
                solvers[c, li] = be.spd_solver(be.add_diag(G, float(a)))
                H[li, c] = be.T(solvers[c, li](xho_t))
        return solvers, H

    def _thread_scope(self):
        import contextlib

        if self.n_threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        n = int(self.n_threads)
        stack = contextlib.ExitStack()
        stack.enter_context(threadpool_limits(limits=n))
        if self.backend == "torch":
            import torch

            old = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, old)
        return stack

    # -- fit -------------------------------------------------------------------------------
    def fit(self, X, Y, holdout_mask=None):
        """Choose a field and a penalty per voxel on the holdout split, fit the ridge weights.

        X : feature maps (n, C, H, W) or a list of them (one per layer), numpy/torch/LayerFeatures.
        Y : responses (n_samples, n_voxels).
        holdout_mask : optional boolean (n_samples,) overriding ``holdout``.
        """
        with self._thread_scope():
            return self._fit(X, Y, holdout_mask)

    def _fit(self, X, Y, holdout_mask=None):
        """See ``fit``."""
        cand, lam = self._check_params()
        be = get_backend(self.backend, self.device, self.dtype)
        maps = self._inputs(X)
        Y = as_2d_float(Y, "Y", dtype=be.dtype)
        if Y.shape[0] != maps.n:
            raise ValueError(f"X and Y must have the same number of samples; got {maps.n} and {Y.shape[0]}")
        n, nv = Y.shape
        tr, ho = self._split(n, holdout_mask)
        nf = int(sum(maps.channels))
        k_all = cand.shape[0]
        Yt = be.asarray(Y)
        tr_t = be.index(tr)
        ho_t = be.index(ho)
        Ytr, Yho = Yt[tr_t], Yt[ho_t]
        ymean = be.mean(Ytr, axis=0) if self.fit_intercept else be.zeros((nv,))
        Ytr_c, Yho_c = Ytr - ymean, Yho - ymean
        lam_t = be.asarray(lam)
        use_chol = self._use_cholesky(lam)

        best_loss = np.full(nv, np.inf)
        best_cand = np.full(nv, -1, dtype=np.int64)
        best_lam = np.full(nv, -1, dtype=np.int64)
        coef = np.zeros((nf, nv), dtype=be.dtype)
        cand_mean = np.zeros((k_all, nf), dtype=be.dtype)
        cand_scale = np.ones((k_all, nf), dtype=be.dtype)
        all_idx = np.arange(n)

        batches = list(range(0, k_all, self.candidate_batch_size))
        iterator = batches
        if self.progress:
            from brainlike._logging import progress_bar

            iterator = progress_bar(batches, desc="fwRF candidates", unit="batch")
        t_shared = t_voxels = 0.0
        for c0 in iterator:
            t0 = time.perf_counter()
            rows = cand[c0 : c0 + self.candidate_batch_size]
            kb = rows.shape[0]
            P = self._pool(be, maps, self._fields(be, rows, maps), all_idx)  # (kb, n, F)
            Z, mu, sd = self._standardise(be, P, tr_t)
            del P
            cand_mean[c0 : c0 + kb] = be.to_numpy(mu)
            cand_scale[c0 : c0 + kb] = be.to_numpy(sd)
            Xtr, Xho = Z[:, tr_t, :], Z[:, ho_t, :]
            del Z
            if use_chol:
                solvers, H = self._cholesky_holdout(be, Xtr, Xho, lam)  # H: (nl, kb, n_ho, F)
            else:
                s, V = be.batched_eigh(be.T(Xtr) @ Xtr)
                s = be.maximum_scalar(s, 0.0)
                A = Xho @ V  # (kb, n_ho, F)
            be.sync()
            t1 = time.perf_counter()
            t_shared += t1 - t0
            for v0 in range(0, nv, self.voxel_batch_size):
                vs = slice(v0, v0 + self.voxel_batch_size)
                XtY = be.T(Xtr) @ Ytr_c[:, vs]  # (kb, F, nvb)
                yho = Yho_c[:, vs]
                if not use_chol:
                    B = be.T(V) @ XtY
                losses = []
                for li in range(len(lam)):
                    err = H[li] @ XtY if use_chol else A @ (B / (s[:, :, None] + lam_t[li]))  # (kb, n_ho, nvb)
                    err -= yho[None]  # in place: the holdout errors are the largest arrays of the loop
                    err *= err
                    losses.append(be.sum(err, axis=1))  # (kb, nvb)
                L = be.to_numpy(be.concat([l_[None] for l_ in losses], axis=0)).astype(np.float64)  # (nl, kb, nvb)
                L = L.transpose(1, 0, 2).reshape(kb * len(lam), -1)  # candidate-major: (kb*nl, nvb)
                flat = np.argmin(L, axis=0)
                val = L[flat, np.arange(L.shape[1])]
                vidx = np.arange(v0, v0 + L.shape[1])
                imp = val < best_loss[vidx]
                if not imp.any():
                    continue
                ci, li = np.divmod(flat[imp], len(lam))
                vox = vidx[imp]
                best_loss[vox] = val[imp]
                best_cand[vox] = c0 + ci
                best_lam[vox] = li
                local = np.flatnonzero(imp)
                if use_chol:  # weights of the improved voxels: (G + lambda I)^-1 X'y with the kept factors
                    for c, l_ in {(int(a), int(b)) for a, b in zip(ci, li)}:
                        sel = (ci == c) & (li == l_)
                        w = solvers[c, l_](XtY[c][:, be.index(local[sel])])
                        coef[:, vox[sel]] = be.to_numpy(w).astype(be.dtype)
                    continue
                # weights of the improved voxels: V diag(1/(s+lambda)) V' X'y
                Bn = be.to_numpy(B)
                Vn, sn = be.to_numpy(V), be.to_numpy(s)
                for c in np.unique(ci):
                    sel = ci == c
                    cols = local[sel]
                    d = 1.0 / (sn[c][:, None] + lam[li[sel]][None, :])
                    coef[:, vox[sel]] = (Vn[c] @ (Bn[c][:, cols] * d)).astype(be.dtype)
            be.sync()
            t_voxels += time.perf_counter() - t1
        yho_np = be.to_numpy(Yho).astype(np.float64)
        ss = ((yho_np - yho_np.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(ss > 0, 1.0 - best_loss / ss, np.nan)

        self.candidates_ = cand
        # seconds in the voxel-independent part (pooling, Gram, eigh) and in the per-voxel part
        self.fit_timing_ = {"shared_s": t_shared, "voxels_s": t_voxels, "n_voxels": nv}
        self.alphas_ = lam
        self.n_features_in_ = nf
        self.layer_channels_ = list(maps.channels)
        self.layer_resolutions_ = list(maps.n_pix)
        self.candidate_index_ = best_cand
        self.rf_x_ = cand[best_cand, 0]
        self.rf_y_ = cand[best_cand, 1]
        self.rf_sigma_ = cand[best_cand, 2]
        self.alpha_ = lam[best_lam]
        self.holdout_loss_ = best_loss
        self.holdout_score_ = score
        self.train_index_ = tr
        self.holdout_index_ = ho
        self._cand_mean = cand_mean
        self._cand_scale = cand_scale
        self.coef_ = coef
        self.intercept_ = be.to_numpy(ymean).astype(be.dtype)
        if self.refit:
            self._refit_all(be, maps, Yt)
        return self

    def _refit_all(self, be, maps: _Maps, Yt):
        """Refit each voxel's chosen (field, penalty) on all samples."""
        n, nv = Yt.shape
        ymean = be.mean(Yt, axis=0) if self.fit_intercept else be.zeros((nv,))
        Yc = Yt - ymean
        all_idx = np.arange(n)
        for c in np.unique(self.candidate_index_):
            vox = np.flatnonzero(self.candidate_index_ == c)
            rows = self.candidates_[c : c + 1]
            P = self._pool(be, maps, self._fields(be, rows, maps), all_idx)
            Z, mu, sd = self._standardise(be, P, None)
            X = Z[0]
            s, V = be.batched_eigh(be.T(X) @ X)
            s = be.maximum_scalar(s, 0.0)
            vt = be.index(vox)
            B = be.to_numpy(be.T(V) @ (be.T(X) @ Yc[:, vt]))
            d = 1.0 / (be.to_numpy(s)[:, None] + self.alpha_[vox][None, :])
            self.coef_[:, vox] = (be.to_numpy(V) @ (B * d)).astype(self.coef_.dtype)
            self._cand_mean[c] = be.to_numpy(mu)[0]
            self._cand_scale[c] = be.to_numpy(sd)[0]
        self.intercept_ = be.to_numpy(ymean).astype(self.coef_.dtype)

    # -- predict / score ------------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, "coef_")

    def predict(self, X, voxels=None, feature_mask=None):
        """Predicted responses (n_samples, n_voxels) for feature maps ``X`` (images with an ``extractor``).

        voxels : optional indices of the voxels to predict.
        feature_mask : optional boolean (n_features,) keeping only some pooled features
            (the others' weights set to zero; used by the tuning analysis).
        """
        with self._thread_scope():
            return self._predict(X, voxels, feature_mask)

    def _predict(self, X, voxels=None, feature_mask=None):
        """See ``predict``."""
        self._check_fitted()
        be = get_backend(self.backend, self.device, self.dtype)
        maps = self._inputs(X)
        if list(maps.channels) != self.layer_channels_ or list(maps.n_pix) != self.layer_resolutions_:
            raise ValueError(
                f"X must have the layers seen in fit: channels {self.layer_channels_}, resolutions "
                f"{self.layer_resolutions_}; got {maps.channels}, {maps.n_pix}"
            )
        vox_all = np.arange(self.coef_.shape[1]) if voxels is None else np.asarray(voxels, dtype=np.int64)
        coef = self.coef_
        if feature_mask is not None:
            fm = np.asarray(feature_mask, dtype=bool)
            if fm.shape != (self.n_features_in_,):
                raise ValueError(f"feature_mask must be boolean of shape ({self.n_features_in_},); got {fm.shape}")
            coef = coef * fm[:, None]
        out = np.zeros((maps.n, vox_all.size), dtype=self.coef_.dtype)
        cidx = self.candidate_index_[vox_all]
        uniq = np.unique(cidx)
        all_idx = np.arange(maps.n)
        for c0 in range(0, uniq.size, self.candidate_batch_size):
            cs = uniq[c0 : c0 + self.candidate_batch_size]
            P = self._pool(be, maps, self._fields(be, self.candidates_[cs], maps), all_idx)
            mu = be.asarray(self._cand_mean[cs])[:, None, :]
            sd = be.asarray(self._cand_scale[cs])[:, None, :]
            Z = (P - mu) / sd
            for j, c in enumerate(cs):
                cols = np.flatnonzero(cidx == c)
                w = be.asarray(coef[:, vox_all[cols]])
                out[:, cols] = be.to_numpy(Z[j] @ w) + self.intercept_[vox_all[cols]]
        return out

    def score(self, X, Y, sample_weight=None, metric=None, multioutput=None):
        """Mean R² over voxels (scikit-learn's ``score``); ``score_targets`` gives one score per voxel.

        ``metric`` and ``multioutput`` are deprecated: use ``score_targets(X, Y, scoring=...)``.
        """
        if metric is None and multioutput is None:
            return super().score(X, Y, sample_weight)
        import warnings

        warnings.warn("FWRF.score(metric=, multioutput=) is deprecated: score() is the mean R² over voxels; use "
                      "score_targets(X, Y, scoring='r2'|'pearson') for one score per voxel", DeprecationWarning,
                      stacklevel=2)
        check_choice(multioutput or "uniform_average", "multioutput", ("uniform_average", "raw_values"))
        vals = self.score_targets(X, Y, scoring=metric or "r2")
        return vals if multioutput == "raw_values" else float(np.nanmean(vals))

    def feature_slices(self):
        """Slice of the pooled-feature axis belonging to each layer (for tuning analyses)."""
        self._check_fitted()
        out, start = [], 0
        for c in self.layer_channels_:
            out.append(slice(start, start + c))
            start += c
        return out


def column_score(y_true: np.ndarray, y_pred: np.ndarray, metric: str = "pearson") -> np.ndarray:
    """Per-column Pearson r or R² (:func:`brainlike.metrics.pearson` / :func:`~brainlike.metrics.r2`
    with ``nan_policy="propagate"``): NaN for constant columns, counted in one warning."""
    from brainlike.metrics.correlation import pearson, r2

    check_choice(metric, "metric", ("pearson", "r2"))
    if metric == "r2":
        return r2(y_true, y_pred, nan_policy="propagate")
    return pearson(y_true, y_pred, nan_policy="propagate")
