"""StreamingSelectiveRidge against fastl2lir 0.11 (all inputs in memory), on planted structure, and
its memory bound (X read in column chunks)."""

from __future__ import annotations

import contextlib
import io
import tracemalloc
import warnings

import numpy as np
import pytest

from brainlike.linear import SelectiveRidge, StreamingSelectiveRidge


def fastl2lir_fit(X, Y, alpha, n_feat):
    fastl2lir = pytest.importorskip("fastl2lir")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fastl2lir.FastL2LiR().fit(X, Y, alpha=alpha, n_feat=n_feat)


def random_data(rng, n=90, p=400, t=9):
    X = rng.standard_normal((n, p)) + 3.0 * rng.random(p)  # uncentred: the penalised intercept matters
    Y = X[:, :30] @ rng.standard_normal((30, t)) / 5 + rng.standard_normal((n, t)) + 2.0
    return X, Y


class SineColumns:
    """A column source computed on demand (never held whole): X[i, j] = sin(a_i * j + b_i) + c_j."""

    def __init__(self, n, p, seed=0):
        rng = np.random.default_rng(seed)
        self.a, self.b = rng.random(n) * 0.1, rng.random(n) * 6.0
        self.shape = (n, p)
        self.reads = 0

    def read(self, cols):
        cols = np.arange(self.shape[1])[cols] if isinstance(cols, slice) else np.asarray(cols)
        self.reads += 1
        return np.sin(np.outer(self.a, cols) + self.b[:, None]) + 0.01 * (cols % 7)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("chunk_size", [37, 4096])
@pytest.mark.parametrize("memory_mb", [1024, 0.05], ids=["one-group", "target-groups"])
def test_matches_fastl2lir(rng, dtype, tol, chunk_size, memory_mb):
    X, Y = random_data(rng)
    Xt = rng.standard_normal((12, X.shape[1])) + 3.0
    ref = fastl2lir_fit(X, Y, alpha=10.0, n_feat=40)
    m = StreamingSelectiveRidge(alpha=10.0, n_feat=40, chunk_size=chunk_size, memory_mb=memory_mb, dtype=dtype)
    m.fit(X, Y, test_rows=np.arange(5))
    scale = np.abs(ref.W).max()
    assert np.abs(m.coef_ - ref.W).max() / scale < tol
    assert np.abs(m.intercept_ - ref.b.ravel()).max() < tol * 10
    assert np.abs(m.predict(Xt) - ref.predict(Xt)).max() < tol * 100
    assert np.abs(m.test_predictions_ - ref.predict(X[:5])).max() < tol * 100
    assert m.selected_.shape == (Y.shape[1], 40) and np.all(np.diff(m.selected_, axis=1) > 0)


def test_union_gram_path_matches_fastl2lir(rng):
    """Targets sharing their inputs: one Gram of the shared inputs, blocks gathered per target."""
    n, p, t = 120, 60, 40
    X = rng.standard_normal((n, p)) + 2.0
    Y = X[:, :20] @ rng.standard_normal((20, t)) + rng.standard_normal((n, t))
    ref = fastl2lir_fit(X, Y, alpha=5.0, n_feat=20)
    m = StreamingSelectiveRidge(alpha=5.0, n_feat=20, chunk_size=64, dtype=np.float64).fit(X, Y)
    assert np.unique(m.selected_).size ** 2 <= t * 20 * 20  # the shared-Gram path was taken
    assert np.abs(m.coef_ - ref.W).max() / np.abs(ref.W).max() < 1e-10
    assert np.abs(m.intercept_ - ref.b.ravel()).max() < 1e-9


def test_rows_equal_expanded_inputs(rng):
    """X holds each stimulus once, Y repeated trials: same fit as FastL2LiR on X[rows]."""
    X, _ = random_data(rng, n=40, p=200)
    rows = np.concatenate([np.arange(40), np.arange(40), rng.integers(0, 40, 17)])  # unbalanced repeats
    Y = X[rows, :10] @ rng.standard_normal((10, 6)) + rng.standard_normal((rows.size, 6)) + 1.0
    ref = fastl2lir_fit(X[rows], Y, alpha=20.0, n_feat=25)
    m = StreamingSelectiveRidge(alpha=20.0, n_feat=25, chunk_size=50, dtype=np.float64).fit(X, Y, rows=rows)
    assert np.abs(m.coef_ - ref.W).max() / np.abs(ref.W).max() < 1e-10
    assert np.abs(m.intercept_ - ref.b.ravel()).max() < 1e-9


def test_chunk_size_does_not_change_the_result(rng):
    X, Y = random_data(rng, n=60, p=500, t=12)
    fits = [StreamingSelectiveRidge(alpha=100.0, n_feat=30, chunk_size=cs).fit(X, Y) for cs in (1, 29, 500, 10**6)]
    for f in fits[1:]:
        np.testing.assert_array_equal(f.selected_, fits[0].selected_)
        np.testing.assert_allclose(f.weights_, fits[0].weights_, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(f.intercept_, fits[0].intercept_, rtol=1e-4, atol=1e-6)


def test_equals_selective_ridge(rng):
    X, Y = random_data(rng, n=70, p=150, t=8)
    a = SelectiveRidge(alpha=3.0, n_feat=20, dtype=np.float64).fit(X, Y)
    b = StreamingSelectiveRidge(alpha=3.0, n_feat=20, chunk_size=16, dtype=np.float64).fit(X, Y)
    np.testing.assert_array_equal(a.selected_, b.selected_)
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-10)
    a = SelectiveRidge(alpha=3.0, n_feat=20, penalize_intercept=False, dtype=np.float64).fit(X, Y)
    b = StreamingSelectiveRidge(alpha=3.0, n_feat=20, penalize_intercept=False, dtype=np.float64).fit(X, Y)
    np.testing.assert_allclose(b.intercept_, a.intercept_, atol=1e-10)


def test_planted_units_are_selected_and_predicted(rng):
    """Each voxel driven by 5 known units out of 20,000: those units selected, held-out r > 0.9."""
    n, p, t = 300, 20000, 12
    X = rng.standard_normal((n + 50, p)).astype(np.float32)
    drivers = rng.choice(p, size=(t, 5), replace=False)
    Y = np.stack([X[:, d].sum(1) for d in drivers], axis=1) + 0.3 * rng.standard_normal((n + 50, t))
    m = StreamingSelectiveRidge(alpha=1.0, n_feat=5, chunk_size=3000).fit(X[:n], Y[:n])
    np.testing.assert_array_equal(m.selected_, np.sort(drivers, axis=1))
    pred = m.predict(X[n:])
    r = [np.corrcoef(pred[:, v], Y[n:, v])[0, 1] for v in range(t)]
    assert min(r) > 0.9


def test_streams_a_column_source_in_flat_memory(rng):
    """Peak memory of a fit does not grow with the number of inputs (a 4x wider source)."""
    peaks = []
    for p in (20000, 80000):
        src = SineColumns(100, p)
        Y = src.read(np.array([5, 900, 7000]))[:, [0, 1, 2, 0]] + 0.1 * rng.standard_normal((100, 4))
        tracemalloc.start()
        m = StreamingSelectiveRidge(n_feat=10, chunk_size=2000).fit(src, Y)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert src.reads > p // 2000  # read chunk by chunk, never whole
        assert {5, 900, 7000} <= set(m.selected_.ravel().tolist())
    assert peaks[1] < 1.25 * peaks[0], peaks
    assert peaks[1] < 100 * 20000 * 4  # far below the 80,000-column source (32 MB in float32)


def test_constant_inputs_and_targets(rng):
    X, Y = random_data(rng, n=50, p=60, t=3)
    X[:, 3] = 1.5  # constant input: correlation 0 (FastL2LiR's rule)
    Y[:, 1] = 2.0  # constant target: no input correlates; the first n_feat inputs are used
    m = StreamingSelectiveRidge(alpha=10.0, n_feat=8, chunk_size=7, dtype=np.float64).fit(X, Y)
    assert m.n_constant_inputs_ == 1 and 3 not in m.selected_[[0, 2]]
    np.testing.assert_array_equal(m.selected_[1], np.arange(8))
    assert np.all(np.isfinite(m.predict(X)))


def test_streaming_top_k_equals_a_full_sort(rng, monkeypatch):
    from brainlike.linear._streaming_selective import _TopK

    monkeypatch.setattr(_TopK, "block", 50)  # a few targets at a time
    scores = rng.random((23, 1000)).astype(np.float32)
    top = _TopK(23, 40, np.float32)
    for lo in range(0, 1000, 64):
        top.add(scores[:, lo:lo + 64].copy(), lo)
    np.testing.assert_array_equal(np.sort(top.index, axis=1), np.sort(np.argsort(-scores, axis=1)[:, :40], axis=1))


def test_bad_arguments(rng):
    X, Y = random_data(rng, n=30, p=40, t=2)
    with pytest.raises(ValueError, match="rows must be 30 integer"):
        StreamingSelectiveRidge(n_feat=5).fit(X, Y, rows=np.arange(10))
    with pytest.raises(ValueError, match=r"rows must index rows of X in \[0, 30\)"):
        StreamingSelectiveRidge(n_feat=5).fit(X, Y, rows=np.arange(30) + 5)
    with pytest.raises(ValueError, match="n_feat must be an integer >= 1"):
        StreamingSelectiveRidge(n_feat=0).fit(X, Y)
    with pytest.raises(ValueError, match="memory_mb=1e-06 holds 0 input columns"):
        StreamingSelectiveRidge(n_feat=5, memory_mb=1e-6).fit(X, Y)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        StreamingSelectiveRidge(n_feat=5).fit(object(), Y)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf values \\(input column 0\\)"):
        StreamingSelectiveRidge(n_feat=5).fit(bad, Y)
    with pytest.raises(ValueError, match="NaN or inf values in test_rows"):
        bad[0] = np.inf  # a test row only
        StreamingSelectiveRidge(n_feat=5).fit(bad, Y[1:], rows=np.arange(1, 30), test_rows=[0])
    with pytest.raises(ValueError, match="NaN or inf values; clean"):
        StreamingSelectiveRidge(n_feat=5).fit(X, Y).predict(bad)
