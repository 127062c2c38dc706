"""brainlike.metrics against scipy / scikit-learn, and noise ceilings on simulated signal + noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import r2_score

from brainlike.metrics import (
    ncsnr,
    ncsnr_to_noise_ceiling,
    normalize_by_ceiling,
    pearson,
    r2,
    spearman,
    split_half_reliability,
)


def test_columnwise_scores_match_scipy_sklearn(rng):
    a = rng.standard_normal((40, 7))
    b = 0.5 * a + rng.standard_normal((40, 7))
    b[:, 3] = np.round(b[:, 3])  # ties for Spearman
    np.testing.assert_allclose(pearson(a, b), [pearsonr(a[:, j], b[:, j])[0] for j in range(7)], rtol=1e-12)
    np.testing.assert_allclose(spearman(a, b), [spearmanr(a[:, j], b[:, j])[0] for j in range(7)], rtol=1e-12)
    np.testing.assert_allclose(r2(a, b), r2_score(a, b, multioutput="raw_values"), rtol=1e-12)
    assert pearson(a[:, 0], b[:, 0]) == pytest.approx(pearsonr(a[:, 0], b[:, 0])[0])
    assert pearson(a.astype(np.float32), b.astype(np.float32)).dtype == np.float64


def test_planted_correlation_recovered(rng):
    n, rho = 20000, np.array([0.0, 0.3, 0.8, -0.5])
    x = rng.standard_normal((n, 4))
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, 4))
    np.testing.assert_allclose(pearson(x, y), rho, atol=0.02)
    np.testing.assert_allclose(r2(x, x + 0.5 * rng.standard_normal((n, 4))), 0.75, atol=0.02)


@pytest.mark.parametrize("fn", [pearson, spearman, r2])
def test_constant_column_is_nan_with_warning(rng, fn):
    a = rng.standard_normal((10, 3))
    b = rng.standard_normal((10, 3))
    a[:, 1] = 2.0
    with pytest.warns(RuntimeWarning, match="1 of 3 column"):
        out = fn(a, b)
    assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))


def test_metric_bad_input(rng):
    a = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        pearson(a, a[:-1])
    with pytest.raises(ValueError, match="same number of columns"):
        r2(a, a[:, :2])
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="b contains 1 NaN"):
        spearman(a, bad)


@pytest.mark.parametrize("fn,ref", [(pearson, lambda x, y: pearsonr(x, y)[0]),
                                    (spearman, lambda x, y: spearmanr(x, y)[0]),
                                    (r2, lambda x, y: r2_score(x, y))])
def test_nan_policy_matches_reference_on_complete_pairs(rng, fn, ref):
    a = rng.standard_normal((30, 4))
    b = 0.6 * a + rng.standard_normal((30, 4))
    a[[1, 5], 0] = np.nan
    b[[2, 9, 11], 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(a, b)
    prop = fn(a, b, nan_policy="propagate")
    assert np.isnan(prop[[0, 2]]).all() and np.isfinite(prop[[1, 3]]).all()
    omit = fn(a, b, nan_policy="omit")
    for j in range(4):
        ok = np.isfinite(a[:, j]) & np.isfinite(b[:, j])
        assert omit[j] == pytest.approx(ref(a[ok, j], b[ok, j]), rel=1e-12)
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        fn(a, b, nan_policy="ignore")


def test_omit_min_samples_counted(rng):
    a = rng.standard_normal((6, 3))
    b = rng.standard_normal((6, 3))
    a[:4, 1] = np.nan  # 2 complete pairs left
    with pytest.warns(RuntimeWarning, match="1 of 3 column.*fewer than 3"):
        out = pearson(a, b, nan_policy="omit", min_samples=3)
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()


def test_batch_axes_broadcast_and_blocks(rng, monkeypatch):
    import brainlike.metrics.correlation as C

    y = rng.standard_normal((25, 9))
    p = y[None] + rng.standard_normal((3, 25, 9))
    monkeypatch.setattr(C, "_BLOCK", 100)  # several column blocks
    out = pearson(y[None], p)
    assert out.shape == (3, 9)
    for k in range(3):
        np.testing.assert_allclose(out[k], [pearsonr(y[:, j], p[k, :, j])[0] for j in range(9)], rtol=1e-12)
    np.testing.assert_allclose(r2(y[None], p)[1], r2_score(y, p[1], multioutput="raw_values"), rtol=1e-12)


def _simulate(rng, n_stim, n_targets, n_rep, signal_sd, noise_sd):
    signal = rng.standard_normal((n_stim, n_targets, 1)) * signal_sd
    return signal + rng.standard_normal((n_stim, n_targets, n_rep)) * noise_sd


def test_split_half_reliability_planted(rng):
    """Reliability of an R-repeat mean is s²/(s² + n²/R); Spearman–Brown must recover it."""
    n_rep = 6
    noise = np.array([0.5, 1.0, 2.0, 4.0])
    resp = np.concatenate([_simulate(rng, 2000, 1, n_rep, 1.0, s) for s in noise], axis=1)
    expected = 1 / (1 + noise**2 / n_rep)
    np.testing.assert_allclose(split_half_reliability(resp, n_splits=20), expected, atol=0.03)


def test_split_half_reliability_nan_padded_repeats(rng):
    resp = _simulate(rng, 3000, 3, 4, 1.0, 1.5)
    full = split_half_reliability(resp, n_splits=10)
    padded = np.concatenate([resp, np.full((3000, 3, 2), np.nan)], axis=2)
    np.testing.assert_allclose(split_half_reliability(padded, n_splits=10), full, atol=0.02)
    # half the stimuli lose two repeats: each split still halves what is there
    some = resp.copy()
    some[::2, :, 2:] = np.nan
    rel = split_half_reliability(some, n_splits=10)
    assert np.all((rel > 1 / (1 + 1.5**2 / 2) - 0.03) & (rel < full + 0.03))


def test_split_half_reliability_errors_and_constant(rng):
    with pytest.raises(ValueError, match="at least 2 repeats"):
        split_half_reliability(np.zeros((10, 2, 1)))
    with pytest.raises(ValueError, match=r"\(n_stimuli, n_targets, n_repeats\)"):
        split_half_reliability(np.zeros(10))
    resp = _simulate(rng, 50, 2, 4, 1.0, 1.0)
    resp[:, 1, :] = 3.0
    with pytest.warns(RuntimeWarning, match="1 target"):
        rel = split_half_reliability(resp, n_splits=3)
    assert np.isfinite(rel[0]) and np.isnan(rel[1])


def test_ncsnr_and_noise_ceiling_planted(rng):
    """signal sd 1, noise sd 2 -> ncsnr 0.5; averaging 3 trials -> NC = 100 * .25 / (.25 + 1/3)."""
    resp = _simulate(rng, 4000, 2, 3, 1.0, 2.0)
    snr = ncsnr(resp)
    np.testing.assert_allclose(snr, 0.5, atol=0.03)
    assert ncsnr_to_noise_ceiling(0.5, n_trials=3) == pytest.approx(100 * 0.25 / (0.25 + 1 / 3))
    # the ceiling is the variance fraction a perfect model explains in the trial-averaged data
    nc = ncsnr_to_noise_ceiling(snr, n_trials=3) / 100
    signal = rng.standard_normal((20000, 1))
    avg = signal + rng.standard_normal((20000, 3)).mean(1, keepdims=True) * 2.0
    np.testing.assert_allclose(pearson(signal, avg) ** 2, nc.mean(), atol=0.03)
    # ncsnr -> ceiling agrees with split-half reliability of the same data (both are s²/(s²+n²/R))
    np.testing.assert_allclose(split_half_reliability(_simulate(rng, 4000, 1, 4, 1.0, 2.0), n_splits=10),
                               ncsnr_to_noise_ceiling(0.5, n_trials=4) / 100, atol=0.03)
    with pytest.raises(ValueError, match="n_trials"):
        ncsnr_to_noise_ceiling(0.5, n_trials=0)


def test_normalize_by_ceiling():
    assert normalize_by_ceiling(0.4, 0.8) == pytest.approx(0.5)
    assert normalize_by_ceiling(0.4, 0.64, ceiling_kind="r2") == pytest.approx(0.5)
    assert normalize_by_ceiling(0.16, 0.8, score_kind="r2") == pytest.approx(0.25)
    with pytest.warns(RuntimeWarning, match="<= 0"):
        out = normalize_by_ceiling(np.array([0.2, 0.3]), np.array([0.5, 0.0]))
    assert out[0] == pytest.approx(0.4) and np.isnan(out[1])
    with pytest.raises(ValueError, match="percent"):
        normalize_by_ceiling(0.3, 45.0, ceiling_kind="r2")
    with pytest.raises(ValueError, match="ceiling_kind must be one of"):
        normalize_by_ceiling(0.3, 0.5, ceiling_kind="snr")


def test_selection_score_follows_sklearn_on_constant_fold_columns(rng):
    from brainlike._backend import get_backend
    from brainlike.metrics.correlation import selection_score

    be = get_backend("numpy")
    y = rng.standard_normal((12, 3))
    p = y + 0.3 * rng.standard_normal((12, 3))
    y[:, 1] = 1.5
    p[:, 2] = y[:, 2]
    got = selection_score("r2", y, p, be)
    np.testing.assert_allclose(got, r2_score(y, p, multioutput="raw_values"), rtol=1e-12)
    r = selection_score("pearson", y, p, be)
    assert r[1] == 0.0 and r[0] == pytest.approx(pearsonr(y[:, 0], p[:, 0])[0], rel=1e-12)
