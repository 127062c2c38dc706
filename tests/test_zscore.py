"""brainlike._zscore against scikit-learn's StandardScaler / scipy.stats.zscore, and its zero-variance rule."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats
from sklearn.preprocessing import StandardScaler

from brainlike._zscore import backend_train_stats, train_stats, zscore


def test_zscore_matches_standard_scaler_and_scipy(rng, monkeypatch):
    import brainlike._zscore as Z

    monkeypatch.setattr(Z, "_BLOCK", 20)  # several row blocks
    train = rng.normal(3.0, 2.0, (40, 6))
    test = rng.normal(3.0, 2.0, (9, 6))
    train[:, 2] = 5.0  # zero variance: scale 1, as StandardScaler
    sc = StandardScaler().fit(train)
    ztr, zte = zscore(train, test, dtype=np.float64)
    np.testing.assert_allclose(ztr, sc.transform(train), atol=1e-12)
    np.testing.assert_allclose(zte, sc.transform(test), atol=1e-12)
    assert np.all(ztr[:, 2] == 0.0)
    z1, = zscore(train[:, [0, 1, 3]], ddof=1, dtype=np.float64)
    np.testing.assert_allclose(z1, stats.zscore(train[:, [0, 1, 3]], axis=0, ddof=1), atol=1e-12)
    assert zscore(train.astype(np.float32))[0].dtype == np.float32


def test_zero_variance_counted_and_logged(rng, caplog):
    x = rng.standard_normal((10, 5))
    x[:, [1, 4]] = 0.25
    with caplog.at_level(logging.INFO, logger="brainlike"):
        st = train_stats(x, what="units")
    assert st.n_constant == 2 and st.constant.tolist() == [False, True, False, False, True]
    assert "2 of 5 units have zero variance" in caplog.text
    with pytest.raises(ValueError, match="at least 2 training row"):
        train_stats(x[:1], ddof=1)


def test_backend_stats_match_numpy(rng):
    from brainlike._backend import get_backend

    be = get_backend("numpy", dtype=np.float64)
    p = rng.standard_normal((3, 15, 4))
    p[1, :, 2] = -1.0
    mu, sd = backend_train_stats(be, be.asarray(p), axis=1)
    ref = train_stats(p.transpose(1, 0, 2).reshape(15, -1))
    np.testing.assert_allclose(be.to_numpy(mu)[:, 0, :].ravel(), ref.mean, atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(sd)[:, 0, :].ravel(), ref.scale, atol=1e-12)
