"""FWRF: against a straightforward per-voxel reference, on planted fields, and on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.linear_model import Ridge

from brainlike.encoding import FWRF, gaussian_fields, rf_grid


# ---------------------------------------------------------------------------------------------
# an independent, deliberately naive reference: loops over voxels, candidates and penalties
# ---------------------------------------------------------------------------------------------
def _ref_field(x, y, s, npix, aperture=1.0):
    edges = np.linspace(-aperture / 2, aperture / 2, npix + 1)
    g = np.zeros((npix, npix))
    for i in range(npix):  # row i: y from top to bottom
        y_hi, y_lo = edges[npix - i], edges[npix - i - 1]
        for j in range(npix):
            x_lo, x_hi = edges[j], edges[j + 1]
            g[i, j] = (norm.cdf(x_hi, x, s) - norm.cdf(x_lo, x, s)) * (norm.cdf(y_hi, y, s) - norm.cdf(y_lo, y, s))
    return g


def reference_fwrf(maps, Y, cand, lambdas, tr, ho):
    fields = {}
    nv = Y.shape[1]
    out_c = np.zeros(nv, int)
    out_l = np.zeros(nv, int)
    out_loss = np.zeros(nv)
    out_w = np.zeros((sum(m.shape[1] for m in maps), nv))
    for v in range(nv):
        best = np.inf
        for c, (x, y, s) in enumerate(cand):
            feats = []
            for m in maps:
                key = (c, m.shape[2])
                if key not in fields:
                    fields[key] = _ref_field(x, y, s, m.shape[2])
                feats.append(np.einsum("nchw,hw->nc", m, fields[key]))
            F = np.concatenate(feats, axis=1)
            mu, sd = F[tr].mean(0), F[tr].std(0)  # no zero-variance column here (brainlike._zscore: scale 1)
            Z = (F - mu) / sd
            ym = Y[tr, v].mean()
            Xtr, Xho = Z[tr], Z[ho]
            for li, lam in enumerate(lambdas):
                w = np.linalg.solve(Xtr.T @ Xtr + lam * np.eye(Xtr.shape[1]), Xtr.T @ (Y[tr, v] - ym))
                loss = np.sum((Y[ho, v] - ym - Xho @ w) ** 2)
                if loss < best:
                    best = loss
                    out_c[v], out_l[v], out_loss[v], out_w[:, v] = c, li, loss, w
    return out_c, out_l, out_loss, out_w


def _data(rng, n=60, nv=5):
    maps = [rng.standard_normal((n, 3, 8, 8)), rng.standard_normal((n, 4, 4, 4))]
    Y = rng.standard_normal((n, nv))
    return maps, Y


def test_gaussian_fields_match_naive_integral():
    cand = np.array([[0.1, -0.2, 0.07], [-0.3, 0.25, 0.2], [0.55, 0.55, 0.04]])
    g = gaussian_fields(cand, 7)
    for k, (x, y, s) in enumerate(cand):
        np.testing.assert_allclose(g[k], _ref_field(x, y, s, 7), atol=1e-12)
    # a centred field puts its peak in the middle pixel; +y is the top of the image
    up = gaussian_fields([[0.0, 0.3, 0.05]], 9)[0]
    assert np.unravel_index(up.argmax(), up.shape) == (1, 4)


def test_rf_grid_paper_size():
    grid = rf_grid()
    assert grid.shape == (875, 3)
    assert np.isclose(grid[:, 2].min(), 0.04) and np.isclose(grid[:, 2].max(), 0.4)
    assert np.abs(grid[:, :2]).max() <= 0.55 + 1e-12


@pytest.mark.parametrize("solver", ["cholesky", "eigh"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_identical_to_per_voxel_reference(rng, backend, solver):
    maps, Y = _data(rng)
    cand = rf_grid(n_sizes=2, min_size=0.1, max_size=0.3)
    lambdas = np.array([0.1, 3.0, 100.0])
    model = FWRF(cand, alphas=lambdas, holdout=0.25, dtype="float64", backend=backend, device="cpu",
                 candidate_batch_size=5, voxel_batch_size=2, sample_batch_size=17, solver=solver)
    model.fit(maps, Y)
    c, li, loss, w = reference_fwrf(maps, Y, cand, lambdas, model.train_index_, model.holdout_index_)
    np.testing.assert_array_equal(model.candidate_index_, c)
    np.testing.assert_array_equal(model.alpha_, lambdas[li])
    np.testing.assert_allclose(model.holdout_loss_, loss, rtol=1e-9)
    np.testing.assert_allclose(model.coef_, w, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.rf_x_, cand[c, 0])
    # predictions on the holdout reproduce the selection loss
    pred = model.predict(maps)
    np.testing.assert_allclose(((Y[model.holdout_index_] - pred[model.holdout_index_]) ** 2).sum(0), loss, rtol=1e-8)


def test_cholesky_and_eigh_solvers_agree_in_float32(rng):
    """The Cholesky path ("auto" with positive penalties) against the eigendecomposition path."""
    maps, Y = _data(rng, n=120, nv=40)
    maps = [m.astype(np.float32) for m in maps]
    cand = rf_grid(n_sizes=3, min_size=0.08, max_size=0.3)
    kw = dict(alphas=np.logspace(-1, 3, 6), candidate_batch_size=4, voxel_batch_size=16)
    a = FWRF(cand, **kw).fit(maps, Y)
    b = FWRF(cand, solver="eigh", **kw).fit(maps, Y)
    assert FWRF(cand, **kw)._use_cholesky(a.alphas_) and not FWRF(cand, alphas=[0.0, 1.0])._use_cholesky(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(a.candidate_index_, b.candidate_index_)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    np.testing.assert_allclose(a.holdout_loss_, b.holdout_loss_, rtol=1e-4)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="solver must be one of"):
        FWRF(cand, solver="qr").fit(maps, Y)


def test_float32_close_to_float64(rng):
    maps, Y = _data(rng, n=80, nv=4)
    cand = rf_grid(n_sizes=2, min_size=0.1, max_size=0.3)
    m64 = FWRF(cand, alphas=[1.0, 30.0], dtype="float64").fit(maps, Y)
    m32 = FWRF(cand, alphas=[1.0, 30.0]).fit([m.astype(np.float32) for m in maps], Y)
    assert m32.coef_.dtype == np.float32
    np.testing.assert_allclose(m32.holdout_loss_, m64.holdout_loss_, rtol=1e-3)


def test_refit_matches_sklearn_ridge(rng):
    maps, Y = _data(rng, n=70, nv=3)
    cand = rf_grid(n_sizes=2, min_size=0.1, max_size=0.3)
    model = FWRF(cand, alphas=[1.0, 10.0], refit=True, dtype="float64").fit(maps, Y)
    for v in range(Y.shape[1]):
        x, y, s = cand[model.candidate_index_[v]]
        F = np.concatenate([np.einsum("nchw,hw->nc", m, _ref_field(x, y, s, m.shape[2])) for m in maps], 1)
        Z = (F - F.mean(0)) / F.std(0)
        r = Ridge(alpha=model.alpha_[v]).fit(Z, Y[:, v])
        np.testing.assert_allclose(model.coef_[:, v], r.coef_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(model.intercept_[v], r.intercept_, rtol=1e-9)
    Z0 = _z_for(maps, cand[model.candidate_index_[0]])
    expected = Ridge(alpha=model.alpha_[0]).fit(Z0, Y[:, 0]).predict(Z0)
    np.testing.assert_allclose(model.predict(maps)[:, 0], expected, rtol=1e-6)


def _z_for(maps, field):
    x, y, s = field
    F = np.concatenate([np.einsum("nchw,hw->nc", m, _ref_field(x, y, s, m.shape[2])) for m in maps], 1)
    return (F - F.mean(0)) / F.std(0)


def test_planted_fields_are_recovered(rng):
    n, nv = 500, 12
    maps = [rng.standard_normal((n, 6, 12, 12)).astype(np.float32), rng.standard_normal((n, 4, 6, 6)).astype(np.float32)]
    cand = rf_grid(n_sizes=3, min_size=0.06, max_size=0.25)
    truth = rng.choice(len(cand), nv, replace=False)
    Y = np.zeros((n, nv))
    for v, c in enumerate(truth):
        x, y, s = cand[c]
        F = np.concatenate([np.einsum("nchw,hw->nc", m, _ref_field(x, y, s, m.shape[2])) for m in maps], 1)
        F = (F - F.mean(0)) / F.std(0)
        Y[:, v] = F @ rng.standard_normal(F.shape[1]) + 0.3 * rng.standard_normal(n)
    model = FWRF(cand, alphas=np.logspace(-1, 3, 5), holdout=0.2, nonlinearity=None).fit(maps, Y)
    np.testing.assert_array_equal(model.candidate_index_, truth)
    np.testing.assert_allclose(model.rf_sigma_, cand[truth, 2])
    assert np.all(model.holdout_score_ > 0.8)
    # a fresh set of images: predictions keep their accuracy
    assert model.score([m[:100] for m in maps], Y[:100]) > 0.8


def test_nonlinearity_and_voxel_subset(rng):
    maps, Y = _data(rng, n=50, nv=3)
    maps = [np.abs(m) for m in maps]
    cand = rf_grid(n_sizes=1, min_size=0.2, max_size=0.2)
    model = FWRF(cand, alphas=[1.0], nonlinearity="log1p", dtype="float64").fit(maps, Y)
    full = model.predict(maps)
    np.testing.assert_allclose(model.predict(maps, voxels=[2, 0]), full[:, [2, 0]])
    r = model.score_targets(maps, Y, scoring="pearson")
    assert r.shape == (3,)
    with pytest.warns(DeprecationWarning, match="score_targets"):
        np.testing.assert_allclose(model.score(maps, Y, metric="pearson", multioutput="raw_values"), r)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_non_square_maps_rejected(rng):
    with pytest.raises(ValueError, match=r"X\[0\] must have square maps.*H=8, W=6"):
        FWRF(rf_grid(n_sizes=1)).fit([rng.standard_normal((20, 2, 8, 6))], rng.standard_normal((20, 2)))


def test_field_outside_aperture_rejected(rng):
    with pytest.raises(ValueError, match="outside the aperture"):
        FWRF([[0.9, 0.0, 0.1]]).fit([rng.standard_normal((20, 2, 8, 8))], rng.standard_normal((20, 2)))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        FWRF([[0.0, 0.0, 0.0]]).fit([rng.standard_normal((20, 2, 8, 8))], rng.standard_normal((20, 2)))


def test_too_few_samples_for_holdout(rng):
    with pytest.raises(ValueError, match="too few samples for the holdout split"):
        FWRF(rf_grid(n_sizes=1), holdout=0.1).fit([rng.standard_normal((5, 2, 4, 4))], rng.standard_normal((5, 1)))


def test_shape_mismatches(rng):
    with pytest.raises(ValueError, match="same number of samples"):
        FWRF(rf_grid(n_sizes=1)).fit([rng.standard_normal((20, 2, 4, 4))], rng.standard_normal((19, 1)))
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        FWRF(rf_grid(n_sizes=1), nonlinearity="cube").fit([rng.standard_normal((20, 2, 4, 4))], rng.standard_normal((20, 1)))
    m = FWRF(rf_grid(n_sizes=1), alphas=[1.0]).fit([rng.standard_normal((20, 2, 4, 4))], rng.standard_normal((20, 1)))
    with pytest.raises(ValueError, match="layers seen in fit"):
        m.predict([rng.standard_normal((3, 3, 4, 4))])
    with pytest.raises(ValueError, match="not fitted"):
        FWRF().predict([rng.standard_normal((3, 3, 4, 4))])


def test_cuda_request_without_cuda(rng):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        FWRF(rf_grid(n_sizes=1), backend="torch", device="cuda").fit(
            [rng.standard_normal((20, 2, 4, 4))], rng.standard_normal((20, 1)))


def test_sklearn_params_roundtrip():
    from sklearn.base import clone

    m = FWRF(holdout=0.2, nonlinearity="sqrt")
    c = clone(m)
    assert c.get_params()["holdout"] == 0.2 and c.get_params()["nonlinearity"] == "sqrt"


def test_images_through_an_extractor(rng):
    """With an extractor, fit/predict take images; identical to fitting the extracted maps."""
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=2)

    def extractor(images):
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255
        with torch.no_grad():
            a = torch.relu(conv(x))
            return [a, torch.nn.functional.avg_pool2d(a, 2)]

    images = rng.integers(0, 256, (40, 17, 17, 3), dtype=np.uint8)
    Y = rng.standard_normal((40, 3))
    cand = rf_grid(n_sizes=1, min_size=0.2, max_size=0.2)
    a = FWRF(cand, alphas=[1.0, 10.0], dtype="float64", extractor=extractor, extractor_batch_size=16).fit(images, Y)
    maps = [m.numpy() for m in extractor(images)]
    b = FWRF(cand, alphas=[1.0, 10.0], dtype="float64").fit(maps, Y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10)
    np.testing.assert_allclose(a.predict(images[:5]), b.predict([m[:5] for m in maps]), rtol=1e-10)
    with pytest.raises(ValueError, match="extractor must be callable"):
        FWRF(cand, extractor="alexnet").fit(images, Y)


def test_thread_scope_restores_settings(rng):
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info()]
    maps, Y = _data(rng, n=30, nv=2)
    a = FWRF(rf_grid(n_sizes=1), alphas=[1.0], dtype="float64", n_threads=1).fit(maps, Y).predict(maps)
    b = FWRF(rf_grid(n_sizes=1), alphas=[1.0], dtype="float64").fit(maps, Y).predict(maps)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert [p["num_threads"] for p in threadpool_info()] == before
