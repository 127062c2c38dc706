"""BHscore's encoding recipe (pipeline.compute.encode_recipe) against its scripts' steps with
fastl2lir 0.11, and on planted structure."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest

from brainlike.pipeline.compute import ZScoredUnits, encode_recipe
from brainlike.pipeline.inputs import NpyLayer, to_npy_layer


def published_recipe(feats, train_rows, y_train, test_rows, y_test, alpha=100.0, n_feat=500, dtype=np.float64):
    """The steps of KamitaniLab/BHscore encoding/featenc_fastl2lir_train.py and _predict.py."""
    fastl2lir = pytest.importorskip("fastl2lir")
    train_imgs = np.unique(train_rows)
    x = feats[train_imgs].astype(np.float32)  # the training feature files, one per image
    x_mean = np.mean(x, axis=0)[np.newaxis, :]  # train.py: x_mean, x_norm (ddof=1) over the feature files
    x_norm = np.std(x, axis=0, ddof=1)[np.newaxis, :]
    y_mean = np.mean(y_train, axis=0)[np.newaxis, :]  # train.py: y_mean, y_norm over the training trials
    y_norm = np.std(y_train, axis=0, ddof=1)[np.newaxis, :]
    x_index = np.searchsorted(train_imgs, train_rows)  # train.py: X_sort index, feature row of each trial
    X = ((x - x_mean) / x_norm)[x_index]  # bdpy ModelTraining: normalise X, then sort it
    Y = (y_train - y_mean) / y_norm
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        model = fastl2lir.FastL2LiR().fit(X.astype(dtype), Y.astype(dtype), alpha=alpha, n_feat=n_feat, dtype=dtype)
    xt = (feats[test_rows] - x_mean) / x_norm  # predict.py: test features with the training statistics
    y_pred = model.predict(xt.astype(dtype), dtype=dtype) * y_norm + y_mean
    return np.array([np.corrcoef(y_pred[:, i], y_test[:, i])[0, 1] for i in range(y_test.shape[1])])


def planted(rng, n_img=60, n_rep=3, n_test=20, p=3000, t=25, noise=1.0):
    """Features of n_img training + n_test test images; each voxel driven by 5 units."""
    feats = (rng.standard_normal((n_img + n_test, p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p))
    drivers = rng.choice(p, size=(t, 5), replace=False)
    z = (feats - feats[:n_img].mean(0)) / feats[:n_img].std(0)
    signal = np.stack([z[:, d].sum(1) for d in drivers], axis=1)
    train_rows = np.tile(np.arange(n_img), n_rep)
    y_train = signal[train_rows] + noise * rng.standard_normal((train_rows.size, t)) + 5.0
    test_rows = np.arange(n_img, n_img + n_test)
    y_test = signal[test_rows] + 0.5 * noise * rng.standard_normal((n_test, t)) + 5.0
    return feats.astype(np.float32), train_rows, y_train, test_rows, y_test, drivers


# the scripts compute their statistics in float32 (x.astype(np.float32)): float64 agrees to ~1e-7
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-6), ("float32", 1e-4)])
def test_equals_the_published_recipe(rng, tmp_path, dtype, tol):
    feats, train_rows, y_train, test_rows, y_test, _ = planted(rng, noise=4.0)
    train_rows = np.concatenate([train_rows, rng.integers(0, 60, 13)])  # unbalanced repetitions too
    y_train = np.concatenate([y_train, rng.standard_normal((13, y_train.shape[1])) + 5.0])
    ref = published_recipe(feats, train_rows, y_train, test_rows, y_test, n_feat=50)
    handle = to_npy_layer(feats, tmp_path / "layer.npy")
    acc, pred, truth, n_const = encode_recipe(handle, train_rows, y_train, test_rows, y_test, n_feat=50,
                                              chunk_size=700, dtype=dtype)
    assert n_const == 0 and pred.shape == truth.shape == (20, 25)
    assert np.abs(acc - ref).max() < tol


def test_planted_voxels_are_encoded(rng, tmp_path):
    feats, train_rows, y_train, test_rows, y_test, drivers = planted(rng, n_img=300, p=1500, noise=0.5)
    acc, *_ = encode_recipe(feats, train_rows, y_train, test_rows, y_test, n_feat=5, chunk_size=512)
    assert acc.min() > 0.9
    # the same voxels from a layer of unrelated units: chance accuracy
    other = rng.standard_normal(feats.shape).astype(np.float32)
    acc0, *_ = encode_recipe(other, train_rows, y_train, test_rows, y_test, n_feat=5, chunk_size=512)
    assert abs(np.mean(acc0)) < 0.2


def test_zscored_units_match_the_scripts(rng, tmp_path):
    feats = rng.standard_normal((30, 40)).astype(np.float32) * 3 + 1
    feats[:, 7] = 2.0  # constant unit -> 0, as bdpy's inf -> 0
    rows = np.array([0, 0, 3, 5, 5, 5, 9, 12, 20])
    src = ZScoredUnits(NpyLayer(to_npy_layer(feats, tmp_path / "f.npy").path, feats.shape), rows, dtype="float64")
    imgs = np.unique(rows)
    with np.errstate(invalid="ignore"):
        ref = (feats - feats[imgs].mean(0)) / feats[imgs].std(0, ddof=1)
    ref[:, 7] = 0
    np.testing.assert_allclose(src.read(slice(5, 30)), ref[:, 5:30], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(src.read(np.array([1, 7, 33])), ref[:, [1, 7, 33]], rtol=1e-5, atol=1e-5)
