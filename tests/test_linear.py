"""brainlike.linear against scikit-learn and fastl2lir 0.11, on random and on planted data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cross_decomposition import PLSRegression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge as SkRidge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.model_selection import GroupKFold, KFold

from brainlike.linear import PLS, PLSCV, Ridge, RidgeCV, SelectiveRidge

BACKENDS = ["numpy", "torch"]
F64 = np.float64


def rel_err(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def data(rng, n, p, t, offset=3.0):
    X = rng.standard_normal((n, p)) + offset * rng.random(p)
    W = rng.standard_normal((p, t))
    Y = X @ W / np.sqrt(p) + rng.standard_normal((n, t)) + 2.0
    return X, Y


def fastl2lir_fit_predict(X, Y, Xt, alpha, n_feat):
    fastl2lir = pytest.importorskip("fastl2lir")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import io
        import contextlib

        with contextlib.redirect_stderr(io.StringIO()):
            model = fastl2lir.FastL2LiR().fit(X, Y, alpha=alpha, n_feat=n_feat)
    return model.predict(Xt), model


# ---------------------------------------------------------------- Ridge


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(60, 15), (25, 70)], ids=["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_matches_sklearn(rng, backend, shape, fit_intercept):
    X, Y = data(rng, *shape, t=4)
    Xt = rng.standard_normal((10, shape[1]))
    ours = Ridge(alpha=3.0, fit_intercept=fit_intercept, backend=backend, dtype=F64).fit(X, Y)
    ref = SkRidge(alpha=3.0, fit_intercept=fit_intercept).fit(X, Y)
    assert ours.coef_.shape == (shape[1], 4) and ours.intercept_.shape == (4,)
    assert rel_err(ours.coef_, ref.coef_.T) < 1e-6
    assert rel_err(ours.predict(Xt), ref.predict(Xt)) < 1e-6
    assert ours.score(X, Y) == pytest.approx(ref.score(X, Y), rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(60, 15), (25, 70)], ids=["primal", "dual"])
def test_ridge_per_target_alpha(rng, backend, shape):
    X, Y = data(rng, *shape, t=4)
    alphas = np.array([0.1, 1.0, 10.0, 1000.0])
    ours = Ridge(alpha=alphas, backend=backend, dtype=F64).fit(X, Y)
    for j, a in enumerate(alphas):
        ref = SkRidge(alpha=a).fit(X, Y[:, j])
        assert rel_err(ours.coef_[:, j], ref.coef_) < 1e-6
        assert ours.intercept_[j] == pytest.approx(ref.intercept_, rel=1e-6)


def test_ridge_float32_default_and_backends_agree(rng):
    X, Y = data(rng, 80, 30, 5)
    a = Ridge(alpha=2.0).fit(X, Y)
    b = Ridge(alpha=2.0, backend="torch").fit(X, Y)
    ref = Ridge(alpha=2.0, dtype=F64).fit(X, Y)
    assert a.coef_.dtype == np.float32 and a.predict(X).dtype == np.float32
    assert rel_err(a.predict(X), ref.predict(X)) < 1e-4
    assert rel_err(b.predict(X), ref.predict(X)) < 1e-4


def test_ridge_1d_target_and_inputs_untouched(rng):
    X, Y = data(rng, 40, 8, 1)
    X0, y = X.copy(), Y[:, 0].copy()
    m = Ridge(alpha=1.0, dtype=F64).fit(X, y)
    assert m.predict(X).shape == (40,)
    assert np.array_equal(X, X0) and np.array_equal(y, Y[:, 0])
    assert rel_err(m.predict(X), SkRidge(alpha=1.0).fit(X, y).predict(X)) < 1e-6


# ---------------------------------------------------------------- RidgeCV

ALPHAS = np.logspace(-2, 4, 9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(60, 15), (40, 90)], ids=["primal", "dual"])
def test_ridgecv_single_alpha_matches_sklearn_kfold(rng, backend, shape):
    X, Y = data(rng, *shape, t=5)
    ours = RidgeCV(alphas=ALPHAS, cv=5, alpha_per_target=False, backend=backend, dtype=F64).fit(X, Y)
    ref = SkRidgeCV(alphas=ALPHAS, cv=KFold(5)).fit(X, Y)
    assert ours.alpha_ == ref.alpha_
    assert rel_err(ours.predict(X), ref.predict(X)) < 1e-6
    assert ours.cv_scores_.shape == (ALPHAS.size, 5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(60, 15), (40, 90)], ids=["primal", "dual"])
def test_ridgecv_per_target_matches_per_target_sklearn(rng, backend, shape):
    n, p = shape
    X = rng.standard_normal((n, p)) + 1.0
    Y = X @ rng.standard_normal((p, 6)) + rng.standard_normal((n, 6)) * np.array([0.1, 0.5, 2, 5, 20, 60]) + 1
    ours = RidgeCV(alphas=ALPHAS, cv=5, backend=backend, dtype=F64, target_batch_size=4).fit(X, Y)
    Xt = rng.standard_normal((7, p))
    for j in range(6):
        ref = SkRidgeCV(alphas=ALPHAS, cv=KFold(5)).fit(X, Y[:, j])
        assert ours.best_alphas_[j] == ref.alpha_
        assert rel_err(ours.predict(Xt)[:, j], ref.predict(Xt)) < 1e-6
        assert rel_err(ours.coef_[:, j], ref.coef_) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(60, 15), (40, 90)], ids=["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridgecv_loo_matches_sklearn_and_brute_force(rng, backend, shape, fit_intercept):
    """cv=None: leave-one-out per target equals scikit-learn's RidgeCV(alpha_per_target=True) and an
    explicit refit without each sample in turn."""
    n, p = shape
    X = rng.standard_normal((n, p)) + 1.0
    Y = X @ rng.standard_normal((p, 6)) + rng.standard_normal((n, 6)) * np.array([0.1, 0.5, 2, 5, 20, 60]) + 1
    ours = RidgeCV(alphas=ALPHAS, cv=None, fit_intercept=fit_intercept, backend=backend, dtype=F64,
                   target_batch_size=4).fit(X, Y)
    ref = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_array_equal(ours.best_alphas_, ref.alpha_)
    Xt = rng.standard_normal((7, p))
    assert rel_err(ours.predict(Xt), ref.predict(Xt)) < 1e-6
    # the scores are R² of the held-out predictions of n refits
    for ai in (0, 3):
        held = np.empty((n, 6))
        for i in range(n):
            keep = np.arange(n) != i
            m = SkRidge(alpha=ALPHAS[ai], fit_intercept=fit_intercept).fit(X[keep], Y[keep])
            held[i] = m.predict(X[i:i + 1])[0]
        r2 = 1 - ((Y - held) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(ours.cv_scores_[ai], r2, rtol=1e-7, atol=1e-9)
    loo = RidgeCV(alphas=ALPHAS, cv="loo", fit_intercept=fit_intercept, backend=backend, dtype=F64).fit(X, Y)
    np.testing.assert_allclose(loo.cv_scores_, ours.cv_scores_, rtol=1e-10, atol=1e-12)


def test_ridgecv_loo_float32_pearson_and_planted_alpha(rng):
    """float32 leave-one-out agrees with float64; Pearson scores are held-out correlations; on planted
    noise levels it lands near the Bayes-optimal alpha (s²), in both forms."""
    X, Y = data(rng, 60, 200, 6)
    a = RidgeCV(alphas=ALPHAS, cv=None).fit(X, Y)
    c = RidgeCV(alphas=ALPHAS, cv=None, dtype=F64).fit(X, Y)
    assert np.array_equal(a.best_alphas_, c.best_alphas_)
    np.testing.assert_allclose(a.cv_scores_, c.cv_scores_, atol=1e-4)
    pr = RidgeCV(alphas=ALPHAS, cv=None, scoring="pearson", dtype=F64).fit(X, Y)
    assert np.all(np.abs(pr.cv_scores_) <= 1)
    n, per = 300, 20
    alphas = np.logspace(-3, 5, 17)
    # more inputs than samples: at low noise the held-out error is flat over small alphas (any CV
    # picks the smallest), so the dual form is planted at higher noise
    for p, levels in ((40, (0.3, 3.0, 30.0)), (600, (5.0, 30.0, 200.0))):
        noise = np.repeat(levels, per)
        X = rng.standard_normal((n, p))
        Y = X @ rng.standard_normal((p, noise.size)) + rng.standard_normal((n, noise.size)) * noise
        m = RidgeCV(alphas=alphas, cv=None, dtype=F64).fit(X, Y)
        med = [np.median(np.log10(m.best_alphas_[i * per:(i + 1) * per])) for i in range(3)]
        for got, s in zip(med, levels):
            assert abs(got - np.log10(s**2)) <= 0.75, (p, med, s)


def test_ridgecv_batching_splits_and_pearson(rng):
    X, Y = data(rng, 50, 120, 9)
    full = RidgeCV(alphas=ALPHAS, dtype=F64).fit(X, Y)
    batched = RidgeCV(alphas=ALPHAS, dtype=F64, target_batch_size=2).fit(X, Y)
    assert np.array_equal(full.best_alphas_, batched.best_alphas_)
    np.testing.assert_allclose(full.cv_scores_, batched.cv_scores_, rtol=1e-10, atol=1e-12)
    # cv as a splitter with groups, and as explicit index pairs, give the same result
    groups = np.repeat(np.arange(10), 5)
    a = RidgeCV(alphas=ALPHAS, cv=GroupKFold(5), dtype=F64, scoring="pearson").fit(X, Y, groups=groups)
    pairs = list(GroupKFold(5).split(X, groups=groups))
    b = RidgeCV(alphas=ALPHAS, cv=pairs, dtype=F64, scoring="pearson").fit(X, Y)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, rtol=1e-10)
    # pearson scores are correlations of out-of-fold predictions
    assert np.all(np.abs(a.cv_scores_) <= 1)


def test_ridgecv_float32_torch_agree(rng):
    X, Y = data(rng, 60, 200, 6)
    a = RidgeCV(alphas=ALPHAS).fit(X, Y)
    b = RidgeCV(alphas=ALPHAS, backend="torch").fit(X, Y)
    c = RidgeCV(alphas=ALPHAS, dtype=F64).fit(X, Y)
    assert np.array_equal(a.best_alphas_, c.best_alphas_) and np.array_equal(b.best_alphas_, c.best_alphas_)
    assert rel_err(a.predict(X), c.predict(X)) < 1e-4
    assert rel_err(b.predict(X), c.predict(X)) < 1e-4


def test_ridgecv_planted_noise_levels_choose_bayes_alpha(rng):
    """w ~ N(0, I), noise sd s: the Bayes-optimal ridge alpha is s² ; CV must land near it."""
    n, p, per = 400, 40, 30
    X = rng.standard_normal((n, p))
    noise = np.repeat([0.3, 3.0, 30.0], per)  # optimal alpha 0.09, 9, 900
    W = rng.standard_normal((p, noise.size))
    Y = X @ W + rng.standard_normal((n, noise.size)) * noise
    alphas = np.logspace(-3, 5, 17)
    m = RidgeCV(alphas=alphas, cv=5, dtype=F64).fit(X, Y)
    med = [np.median(np.log10(m.best_alphas_[i * per:(i + 1) * per])) for i in range(3)]
    for got, s in zip(med, (0.3, 3.0, 30.0)):
        assert abs(got - np.log10(s**2)) <= 0.75, (med, s)


# ---------------------------------------------------------------- SelectiveRidge vs FastL2LiR


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_feat", [0, 7, 500])
def test_selective_matches_fastl2lir(rng, backend, n_feat):
    n, p, t = (120, 640, 6) if n_feat == 500 else (80, 40, 6)
    X = rng.standard_normal((n, p)) + 5 * rng.random(p)
    Y = X[:, :20] @ rng.standard_normal((20, t)) + rng.standard_normal((n, t)) + 3
    Xt = rng.standard_normal((15, p)) + 5 * rng.random(p)
    ref, fl = fastl2lir_fit_predict(X, Y, Xt, alpha=10.0, n_feat=n_feat)
    ours = SelectiveRidge(alpha=10.0, n_feat=n_feat, backend=backend, dtype=F64, chunk_size=4).fit(X, Y)
    assert rel_err(ours.predict(Xt), ref) < 1e-6
    assert rel_err(ours.coef_, fl.W) < 1e-6
    assert rel_err(ours.intercept_, fl.b.ravel()) < 1e-6
    if 0 < n_feat < p:
        assert ours.selected_.shape == (t, n_feat) and ours.weights_.shape == (t, n_feat)
        np.testing.assert_array_equal(np.sort(np.flatnonzero(fl.W[:, 0])), ours.selected_[0])


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_gather_upper_kernel_fills_only_the_upper_triangle(rng, dtype):
    from brainlike._kernels import gather_upper

    gram = rng.standard_normal((23, 23)).astype(dtype)
    for ij in (np.sort(rng.choice(23, 7, replace=False)), rng.choice(23, 7, replace=False)):
        buf = np.full((7, 7), -99, dtype=dtype)
        gather_upper(gram.reshape(-1), 23, ij, buf)
        want = gram[np.ix_(ij, ij)]
        upper = np.triu(np.ones((7, 7), dtype=bool))
        np.testing.assert_array_equal(buf[upper], want[upper])
        assert np.all(buf[~upper] == -99)


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_gather_solve_fast_path_fallback_and_singular_blocks(rng, dtype, monkeypatch):
    """The GIL-free LAPACK path, scipy's wrappers (where the C entry points are missing) and the
    least-squares rescue of singular blocks all give the solution of gram[I, I] x = b."""
    import brainlike._backend as backend_mod

    A = rng.standard_normal((40, 30))
    gram = (A.T @ A + 0.5 * np.eye(30)).astype(dtype)
    idx = np.sort(np.stack([rng.choice(30, 8, replace=False) for _ in range(5)]), axis=1)
    rhs = rng.standard_normal((5, 8, 2)).astype(dtype)
    ref = np.stack([np.linalg.solve(gram[np.ix_(i, i)].astype(F64), b.astype(F64)) for i, b in zip(idx, rhs)])
    be = backend_mod.NumpyBackend(np.dtype(dtype))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert backend_mod._gil_free_cholesky(dtype) is not None  # scipy exposes cython_lapack here
    assert rel_err(be.gather_solve(gram, rhs, idx), ref) < tol
    monkeypatch.setattr(backend_mod, "_gil_free_cholesky", lambda dt: None)
    assert rel_err(be.gather_solve(gram, rhs, idx), ref) < tol
    monkeypatch.undo()
    if dtype == np.float32:
        return  # float32 rounding makes a rank-deficient block numerically (barely) definite
    # a rank-deficient Gram without ridge: Cholesky fails, least squares gives the minimum-norm answer
    B = rng.standard_normal((4, 30))
    singular = (B.T @ B).astype(dtype)
    got = be.gather_solve(singular, rhs, idx)
    for j in range(5):
        block = singular[np.ix_(idx[j], idx[j])].astype(F64)
        want = np.linalg.lstsq(block, rhs[j].astype(F64), rcond=None)[0]
        assert rel_err(block @ got[j], block @ want) < 1e-8


def test_selective_all_inputs_is_ridge_on_x_and_ones(rng):
    X, Y = data(rng, 50, 12, 3)
    X1 = np.hstack([X, np.ones((50, 1))])
    ref = SkRidge(alpha=5.0, fit_intercept=False).fit(X1, Y)
    ours = SelectiveRidge(alpha=5.0, n_feat=0, dtype=F64).fit(X, Y)
    assert rel_err(ours.predict(X), ref.predict(X1)) < 1e-6
    free = SelectiveRidge(alpha=5.0, n_feat=0, penalize_intercept=False, dtype=F64).fit(X, Y)
    assert rel_err(free.predict(X), SkRidge(alpha=5.0).fit(X, Y).predict(X)) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_selective_unpenalised_intercept_is_sklearn_ridge_on_selected(rng, backend):
    X, Y = data(rng, 70, 50, 4)
    m = SelectiveRidge(alpha=3.0, n_feat=9, penalize_intercept=False, backend=backend, dtype=F64).fit(X, Y)
    for j in range(4):
        ref = SkRidge(alpha=3.0).fit(X[:, m.selected_[j]], Y[:, j])
        assert rel_err(m.weights_[j], ref.coef_) < 1e-6
        assert m.intercept_[j] == pytest.approx(ref.intercept_, rel=1e-6)


def test_selective_planted_sparse_weights_recovered(rng):
    n, p, t, k = 400, 200, 8, 5
    X = rng.standard_normal((n, p)) + 2.0
    support = np.stack([rng.choice(p, k, replace=False) for _ in range(t)])
    w = rng.uniform(1, 2, (t, k)) * rng.choice([-1, 1], (t, k))
    Y = np.stack([X[:, support[j]] @ w[j] for j in range(t)], 1) + 0.05 * rng.standard_normal((n, t)) + 4.0
    for backend in BACKENDS:
        m = SelectiveRidge(alpha=1e-3, n_feat=k, penalize_intercept=False, backend=backend, dtype=F64).fit(X, Y)
        for j in range(t):
            order = np.argsort(support[j])
            np.testing.assert_array_equal(m.selected_[j], support[j][order])
            np.testing.assert_allclose(m.weights_[j], w[j][order], atol=0.02)
        np.testing.assert_allclose(m.intercept_, 4.0, atol=0.1)


def test_selective_float32_matches_float64_on_offset_data(rng):
    """float32 must select the same inputs as float64 even with large offsets (centring first)."""
    n, p, t = 300, 900, 20
    X = rng.standard_normal((n, p)) + 100.0
    Y = X[:, :50] @ rng.standard_normal((50, t)) + 10 * rng.standard_normal((n, t)) + 500.0
    a = SelectiveRidge(alpha=100.0, n_feat=100, dtype=F64).fit(X, Y)
    for backend in BACKENDS:
        b = SelectiveRidge(alpha=100.0, n_feat=100, backend=backend).fit(X, Y)
        assert np.mean(a.selected_ == b.selected_) > 0.99
        assert rel_err(b.predict(X), a.predict(X)) < 1e-3


def test_selective_constant_target_and_constant_input(rng):
    X, Y = data(rng, 60, 30, 3)
    X[:, 4] = 7.0  # constant input: correlation treated as 0, never selected first
    Y[:, 1] = 2.5  # constant target: FastL2LiR crashes; we fit the first n_feat inputs
    for pen in (True, False):
        m = SelectiveRidge(alpha=1.0, n_feat=5, penalize_intercept=pen, dtype=F64).fit(X, Y)
        assert np.all(np.isfinite(m.predict(X)))
        assert 4 not in m.selected_[0] and 4 not in m.selected_[2]
        np.testing.assert_array_equal(m.selected_[1], np.arange(5))
    np.testing.assert_allclose(m.predict(X)[:, 1], 2.5)  # unpenalised intercept reproduces the constant


def test_selective_coef_dense_and_predict_agree(rng):
    X, Y = data(rng, 40, 25, 4)
    m = SelectiveRidge(alpha=1.0, n_feat=6, dtype=F64).fit(X, Y)
    assert np.count_nonzero(m.coef_, axis=0).tolist() == [6] * 4
    np.testing.assert_allclose(m.predict(X), X @ m.coef_ + m.intercept_, rtol=1e-10)
    # both prediction paths: dense GEMM (n * n_feat >= n_features) and per-target gather (one sample)
    assert X.shape[0] * 6 >= X.shape[1]
    np.testing.assert_allclose(m.predict(X[:2]), X[:2] @ m.coef_ + m.intercept_, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_feat", [0, 6])
def test_selective_prepared_inputs_give_the_plain_fit_chunk_by_chunk(rng, backend, n_feat):
    """prepare(X) once, then fit(inputs, Y_chunk) per chunk == fit(X, Y) on all targets; the Gram
    is built once (by the first fit) and left unchanged by the fits."""
    X, Y = data(rng, 40, 25, 7)
    model = SelectiveRidge(alpha=3.0, n_feat=n_feat, backend=backend, dtype=F64)
    whole = clone(model).fit(X, Y)
    inputs = model.prepare(X)
    assert inputs.nbytes == 8 * 40 * 25  # the Gram waits for the first fit
    preds = []
    for lo, hi in [(0, 3), (3, 7)]:
        preds.append(model.fit(inputs, Y[:, lo:hi]).predict(X))
        gram = inputs.gram()
        gram_after = gram.numpy().copy() if backend == "torch" else gram.copy()
        if lo == 0:
            gram_first = gram_after
    np.testing.assert_array_equal(gram_after, gram_first)
    assert inputs.nbytes == 8 * (40 * 25 + 25 * 25)
    np.testing.assert_allclose(np.hstack(preds), whole.predict(X), rtol=1e-12, atol=1e-12)


def test_selective_prepared_inputs_must_match_the_estimator(rng):
    X, Y = data(rng, 30, 12, 2)
    inputs = SelectiveRidge(alpha=1.0, n_feat=4, dtype=F64).prepare(X)
    with pytest.raises(ValueError, match=r"X: these PreparedInputs.*alpha=1.0 \(prepared\) vs 2.0"):
        SelectiveRidge(alpha=2.0, n_feat=4, dtype=F64).fit(inputs, Y)
    with pytest.raises(ValueError, match="dtype='float64' \\(prepared\\) vs 'float32'"):
        SelectiveRidge(alpha=1.0, n_feat=4, dtype=np.float32).fit(inputs, Y)
    with pytest.raises(ValueError, match="X and Y must have the same number of samples; got 30 and 29"):
        SelectiveRidge(alpha=1.0, n_feat=4, dtype=F64).fit(inputs, Y[:29])
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        X[3, 2] = np.nan
        SelectiveRidge(alpha=1.0, n_feat=4, dtype=F64).prepare(X)


# ---------------------------------------------------------------- PLS


def test_pls_matches_sklearn_and_plscv_finds_latent_rank(rng):
    n, p, t = 200, 30, 6
    Z = rng.standard_normal((n, 3))
    X = Z @ rng.standard_normal((3, p)) + 0.3 * rng.standard_normal((n, p))
    Y = Z @ rng.standard_normal((3, t)) + 0.3 * rng.standard_normal((n, t))
    ours = PLS(n_components=3, dtype=F64).fit(X, Y)
    ref = PLSRegression(n_components=3).fit(X, Y)
    assert rel_err(ours.predict(X), ref.predict(X)) < 1e-6
    np.testing.assert_allclose(X @ ours.coef_ + ours.intercept_, ref.predict(X), rtol=1e-6, atol=1e-8)
    cv = PLSCV(n_components=(1, 2, 3, 5, 8), cv=5).fit(X, Y)
    assert cv.best_n_components_ in (3, 5)
    assert cv.cv_scores_.shape == (5, t)


@pytest.mark.parametrize("scale", [True, False])
def test_torch_pls_equals_sklearn(rng, scale):
    """The torch path (NIPALS written with the backend's operations) against scikit-learn's PLSRegression,
    with more features than samples, one target, and a constant target column."""
    for n, p, t in [(60, 12, 4), (30, 45, 3), (40, 8, 1)]:
        X = rng.standard_normal((n, p))
        Y = X[:, :3] @ rng.standard_normal((3, t)) + rng.standard_normal((n, t))
        if t > 1:
            Y[:, -1] = 2.5
        for nc in (1, 3):
            ref = PLSRegression(n_components=nc, scale=scale).fit(X, Y)
            ours = PLS(n_components=nc, scale=scale, backend="torch", device="cpu", dtype=F64).fit(X, Y)
            np.testing.assert_allclose(ours.predict(X), ref.predict(X).reshape(n, t), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-9, atol=1e-9)
            f32 = PLS(n_components=nc, scale=scale, backend="torch", device="cpu").fit(X, Y)
            assert rel_err(f32.predict(X), ours.predict(X)) < 1e-4
    a = PLSCV(n_components=(1, 2, 4), cv=3, dtype=F64).fit(X, Y)
    b = PLSCV(n_components=(1, 2, 4), cv=3, dtype=F64, backend="torch", device="cpu").fit(X, Y)
    np.testing.assert_allclose(b.cv_scores_, a.cv_scores_, rtol=1e-9, atol=1e-9)
    assert b.best_n_components_ == a.best_n_components_ and b.model_ is None


# ---------------------------------------------------------------- estimator API and bad input

ESTIMATORS = [Ridge(alpha=2.0), RidgeCV(alphas=(0.1, 10.0), cv=3), SelectiveRidge(alpha=2.0, n_feat=3),
              PLS(n_components=2), PLSCV(n_components=(1, 2), cv=3)]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_estimator_api(rng, est):
    X, Y = data(rng, 30, 8, 2)
    X0, Y0 = X.copy(), Y.copy()
    c = clone(est)
    assert c.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        c.predict(X)
    c.fit(X, Y)
    assert np.array_equal(X, X0) and np.array_equal(Y, Y0)
    assert c.predict(X).shape == (30, 2) and c.n_features_in_ == 8
    assert c.fit(X, Y[:, 0]).predict(X).shape == (30,)
    assert np.isfinite(c.score(X, Y[:, 0]))
    with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 8 features"):
        c.predict(X[:, :5])
    first = list(est.get_params())[0]
    assert c.set_params(**{first: est.get_params()[first]}) is c


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_bad_input(rng, est):
    X, Y = data(rng, 30, 8, 2)
    with pytest.raises(ValueError, match="same number of samples"):
        clone(est).fit(X, Y[:-1])
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN/inf"):
        clone(est).fit(Xn, Y)
    Yi = Y.copy()
    Yi[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"Y contains 1 NaN/inf"):
        clone(est).fit(X, Yi)


def test_bad_parameters(rng):
    X, Y = data(rng, 30, 8, 2)
    with pytest.raises(ValueError, match="n_feat must be an integer in \\[0, n_features=8\\]"):
        SelectiveRidge(n_feat=9).fit(X, Y)
    with pytest.raises(ValueError, match="empty alpha grid"):
        RidgeCV(alphas=[]).fit(X, Y)
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        RidgeCV(alphas=[1.0, -1.0]).fit(X, Y)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(2,\)"):
        Ridge(alpha=[1.0, 2.0, 3.0]).fit(X, Y)
    with pytest.raises(ValueError, match="backend must be one of"):
        Ridge(backend="jax").fit(X, Y)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        Ridge(dtype=np.float16).fit(X, Y)
    with pytest.raises(ValueError, match="scoring must be one of"):
        RidgeCV(scoring="mse").fit(X, Y)
    with pytest.raises(ValueError, match="cv must be between 2"):
        RidgeCV(cv=1).fit(X, Y)
    with pytest.raises(ValueError, match="cv='kfold' is not a CV scheme: give an int, None or 'loo'"):
        RidgeCV(cv="kfold").fit(X, Y)
    with pytest.raises(ValueError, match="leave-one-out CV needs at least 3 samples"):
        RidgeCV(cv=None).fit(X[:2], Y[:2])


def test_unavailable_cuda_is_a_clear_error(rng):
    import torch

    X, Y = data(rng, 30, 8, 2)
    if torch.cuda.is_available():
        m = Ridge(alpha=1.0, backend="torch", device="cuda", dtype=F64).fit(X, Y)
        assert rel_err(m.predict(X), SkRidge(alpha=1.0).fit(X, Y).predict(X)) < 1e-6
    else:
        with pytest.raises(ValueError, match="CUDA"):
            SelectiveRidge(backend="torch", device="cuda").fit(X, Y)
    with pytest.raises(ValueError, match="backend='numpy'"):
        Ridge(device="cuda").fit(X, Y)


def test_torch_missing_is_a_clear_error(rng, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    X, Y = data(rng, 30, 8, 2)
    with pytest.raises(ValueError, match="backend='torch' needs PyTorch"):
        Ridge(backend="torch").fit(X, Y)


@pytest.mark.slow
@pytest.mark.parametrize("est", [Ridge(dtype=F64), RidgeCV(alphas=(0.1, 1.0, 10.0), cv=3, dtype=F64),
                                 SelectiveRidge(alpha=1.0, n_feat=1, dtype=F64), PLS(n_components=1, dtype=F64)],
                         ids=lambda e: type(e).__name__)
def test_sklearn_check_estimator(est):
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
