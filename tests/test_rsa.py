"""brainlike.metrics.rsa against rsatoolbox 0.3.2, scipy and brute force; planted structure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import pdist, squareform

from brainlike.metrics.rsa import (
    compare_rdms,
    kendall_tau_a,
    rdm,
    rdm_noise_ceiling,
    to_square,
    upper_triangle,
)

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.inference import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm  # noqa: E402
from rsatoolbox.rdm import compare as rsa_compare  # noqa: E402


def _tau_a_brute(x, y):
    s = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        s += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
    return s / (len(x) * (len(x) - 1) / 2)


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine", "cityblock"])
def test_rdm_matches_scipy_pdist(rng, metric):
    X = rng.normal(size=(12, 40)).astype(np.float32)
    got = rdm(X, metric)
    want = squareform(pdist(X.astype(np.float64), metric=metric))
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert got.dtype == np.float64 and np.all(np.diag(got) == 0) and np.array_equal(got, got.T)


def test_rdm_matches_rsatoolbox(rng):
    X = rng.normal(size=(10, 25))
    ds = Dataset(X)
    np.testing.assert_allclose(
        upper_triangle(rdm(X, "correlation"))[0], calc_rdm(ds, method="correlation").get_vectors()[0], atol=1e-12
    )
    # rsatoolbox's euclidean RDM is the squared distance divided by the number of channels
    np.testing.assert_allclose(
        upper_triangle(rdm(X, "sqeuclidean"))[0] / X.shape[1],
        calc_rdm(ds, method="euclidean").get_vectors()[0],
        atol=1e-12,
    )


def test_rdm_spearman_distance(rng):
    X = rng.normal(size=(6, 30))
    want = 1 - scipy.stats.spearmanr(X.T).statistic
    np.testing.assert_allclose(rdm(X, "spearman"), want - np.diag(np.diag(want)), atol=1e-12)


def test_rdm_planted_blocks(rng):
    """Two categories of patterns: within-category distances are small, between large."""
    protos = rng.normal(size=(2, 200))
    X = np.repeat(protos, 5, axis=0) + 0.1 * rng.normal(size=(10, 200))
    D = rdm(X)
    within = D[:5, :5][np.triu_indices(5, 1)]
    between = D[:5, 5:]
    assert within.max() < between.min()
    assert within.max() < 0.05 and between.min() > 0.6


def test_rdm_bad_input(rng):
    with pytest.raises(ValueError, match="metric"):
        rdm(rng.normal(size=(4, 3)), "mahalanobis_typo")
    X = rng.normal(size=(4, 3))
    X[2] = 1.0
    with pytest.raises(ValueError, match=r"row\(s\) \[2\]"):
        rdm(X, "correlation")
    with pytest.raises(ValueError, match="2-D"):
        rdm(np.zeros(5))


def test_kendall_tau_a_matches_bruteforce_and_rsatoolbox(rng):
    for trial in range(5):
        x = rng.integers(0, 4, size=25).astype(float)  # many ties
        y = rng.normal(size=25) if trial % 2 else rng.integers(0, 3, size=25).astype(float)
        want = _tau_a_brute(x, y)
        assert kendall_tau_a(x, y) == pytest.approx(want, abs=1e-12)
        ours = compare_rdms(x[:21], y[:21], "kendall_tau_a")
        theirs = rsa_compare(RDMs(x[None, :21]), RDMs(y[None, :21]), method="tau-a")[0, 0]
        assert ours == pytest.approx(theirs, abs=1e-12)
    assert kendall_tau_a(np.ones(6), np.arange(6.0)) == 0.0
    # without ties tau-a equals scipy's tau-b
    x, y = rng.normal(size=30), rng.normal(size=30)
    assert kendall_tau_a(x, y) == pytest.approx(scipy.stats.kendalltau(x, y).statistic, abs=1e-12)


def test_tau_a_does_not_reward_ties():
    """A categorical model predicting ties scores below 1 under tau-a even when perfectly ordered."""
    truth = np.arange(10.0)
    model = np.repeat([0.0, 1.0], 5)
    assert kendall_tau_a(model, truth) < scipy.stats.kendalltau(model, truth).statistic


@pytest.mark.parametrize(
    ("ours", "theirs"), [("spearman", "spearman"), ("pearson", "corr"), ("cosine", "cosine")]
)
def test_compare_rdms_matches_rsatoolbox(rng, ours, theirs):
    A = np.stack([rdm(rng.normal(size=(9, 20))) for _ in range(3)])
    B = np.stack([rdm(rng.normal(size=(9, 20))) for _ in range(2)])
    got = compare_rdms(A, B, ours)
    want = rsa_compare(RDMs(upper_triangle(A)), RDMs(upper_triangle(B)), method=theirs)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert compare_rdms(A[0], B[1], ours) == pytest.approx(want[0, 1], abs=1e-12)
    assert compare_rdms(A, B[1], ours).shape == (3,)


def test_compare_rdms_spearman_equals_scipy_and_handles_nan(rng):
    a, b = rdm(rng.normal(size=(8, 5))), rdm(rng.normal(size=(8, 5)))
    va, vb = upper_triangle(a)[0], upper_triangle(b)[0]
    assert compare_rdms(a, b) == pytest.approx(scipy.stats.spearmanr(va, vb).statistic, abs=1e-12)
    va_nan = va.copy()
    va_nan[[1, 7]] = np.nan
    keep = ~np.isnan(va_nan)
    assert compare_rdms(va_nan, vb) == pytest.approx(scipy.stats.spearmanr(va[keep], vb[keep]).statistic)


def test_compare_rdms_bad_input(rng):
    a, b = rdm(rng.normal(size=(8, 5))), rdm(rng.normal(size=(7, 5)))
    with pytest.raises(ValueError, match="same conditions; got 8 and 7"):
        compare_rdms(a, b)
    with pytest.raises(ValueError, match="method"):
        compare_rdms(a, a, "kendall")
    with pytest.raises(ValueError, match="n\\(n-1\\)/2"):
        compare_rdms(np.arange(5.0), np.arange(5.0))


def test_to_square_roundtrip(rng):
    D = rdm(rng.normal(size=(7, 4)))
    np.testing.assert_array_equal(to_square(upper_triangle(D)[0]), D)


@pytest.mark.parametrize(("ours", "theirs"), [("spearman", "spearman"), ("pearson", "corr"), ("kendall_tau_a", "tau-a")])
def test_noise_ceiling_matches_rsatoolbox(rng, ours, theirs):
    true = upper_triangle(rdm(rng.normal(size=(12, 30))))[0]
    subj = true + 0.5 * rng.normal(size=(5, true.size))
    lo, hi = rdm_noise_ceiling(subj, ours)
    with pytest.warns(UserWarning) if theirs == "tau-a" else _nothing():
        want = boot_noise_ceiling(RDMs(subj), method=theirs)
    assert lo == pytest.approx(want[0], abs=1e-10)
    assert hi == pytest.approx(want[1], abs=1e-10)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_noise_ceiling_brackets_the_true_model(rng):
    """Planted: subjects = true RDM + noise. The true RDM's mean correlation lies in [lower, upper]."""
    true = upper_triangle(rdm(rng.normal(size=(30, 50))))[0]
    subj = true + 0.05 * rng.normal(size=(6, true.size))
    lo, hi = rdm_noise_ceiling(subj)
    truth_score = compare_rdms(subj, true).mean()
    assert lo < truth_score < hi
    # more noise -> lower ceiling
    lo2, hi2 = rdm_noise_ceiling(true + 0.2 * rng.normal(size=(6, true.size)))
    assert hi2 < hi and lo2 < lo and lo2 < hi2


def test_noise_ceiling_bad_input(rng):
    with pytest.raises(ValueError, match="at least 2 subject"):
        rdm_noise_ceiling(rdm(rng.normal(size=(6, 3)))[None])
