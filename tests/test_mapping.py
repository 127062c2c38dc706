"""brainlike.mapping: splits, ridge/PLS layer-to-ROI studies vs scikit-learn, planted structure, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge

from brainlike.datasets import BrainData
from brainlike.ids import IdMismatchError
from brainlike.mapping import inner_folds, make_splits, map_layers, repeat_tensor
from brainlike.mapping.plots import save_figures


# ---------------------------------------------------------------------------------------- splits
def test_kay_splits_heldout_and_validation():
    split = np.array(["train"] * 70 + ["test"] * 12)
    s = make_splits(82, split, n_heldout=10, seed=1)
    assert s.kind == "kay" and len(s.fits) == 1
    fit = s.fits[0].fit
    assert fit.size == 60 and set(s.evaluations) == {"heldout", "validation"}
    assert set(s.evaluations["validation"]) == set(range(70, 82))
    held = s.evaluations["heldout"]
    assert held.size == 10 and held.max() < 70
    assert not set(fit) & set(held) and not set(fit) & set(range(70, 82))
    # the default draw is reproducible, a fraction works too
    assert np.array_equal(make_splits(82, split, n_heldout=10, seed=1).evaluations["heldout"], held)
    assert make_splits(82, split, n_heldout=0.5).evaluations["heldout"].size == 35


def test_cv_splits_partition_the_samples():
    s = make_splits(23, cv=4)
    assert s.kind == "cv" and len(s.fits) == 4
    tests = np.concatenate([f.predict["cv"] for f in s.fits])
    assert np.array_equal(np.sort(tests), np.arange(23))
    for f in s.fits:
        assert not set(f.fit) & set(f.predict["cv"])
    assert make_splits(10, np.array(["train"] * 10)).kind == "cv"  # no test split, no held-out -> CV


def test_splits_bad_input():
    with pytest.raises(ValueError, match="cv=5 folds need at least 5 samples; got 3"):
        make_splits(3, cv=5)
    with pytest.raises(ValueError, match="n_heldout=20 leaves no training samples"):
        make_splits(20, n_heldout=20)
    with pytest.raises(ValueError, match="needs a validation set"):
        make_splits(20, scheme="kay")
    with pytest.raises(ValueError, match="split labels"):
        make_splits(3, np.array(["train", "val", "test"]))
    with pytest.raises(ValueError, match="scheme"):
        make_splits(10, scheme="loo")
    with pytest.raises(ValueError, match="inner_cv=5 folds need at least 5 fitting samples; got 4"):
        inner_folds(4, 5)


def test_repeat_tensor():
    resp = np.arange(10.0).reshape(5, 2)
    keys, t = repeat_tensor(resp, ["a", "b", "a", "c", "a"])
    assert keys == ["a", "b", "c"] and t.shape == (3, 2, 3)
    np.testing.assert_array_equal(t[0, 0], [0, 4, 8])
    assert np.isnan(t[1, 0, 1:]).all()


# ---------------------------------------------------------------------------------------- study
def _planted(rng, n_train=70, n_test=12, n_features=30, n_good=6, n_noise=4, n_rep=1, noise=0.3):
    """Responses = features @ W for the first n_good voxels (+ noise), pure noise for the others."""
    n = n_train + n_test
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    W = rng.normal(size=(n_features, n_good)) / np.sqrt(n_features)
    signal = np.column_stack([X @ W, np.zeros((n, n_noise))])
    ids = np.array([f"im{i:03d}" for i in range(n)])
    split = np.array(["train"] * n_train + ["test"] * n_test)
    reps = [signal + noise * rng.normal(size=signal.shape) for _ in range(n_rep)]
    responses = np.concatenate(reps) if n_rep > 1 else reps[0]
    v = n_good + n_noise
    rois = {"A": np.arange(v) < v // 2 + 1, "B": np.arange(v) >= v // 2 + 1}
    data = BrainData(responses, np.tile(ids, n_rep), rois=rois, split=np.tile(split, n_rep), subject="s1")
    return X, ids, data, n_good


def test_planted_voxels_are_predicted_and_noise_voxels_are_not(rng):
    X, ids, data, n_good = _planted(rng)
    res = map_layers({"L1": X}, data, feature_ids=ids, n_heldout=15, pls_components=(1, 2, 4, 8))
    v = res.voxels
    assert set(v["split"]) == {"heldout", "validation"} and set(v["method"]) == {"ridge", "pls"}
    good = v[v["voxel"] < n_good]
    bad = v[v["voxel"] >= n_good]
    assert good["r"].mean() > 0.8
    assert abs(bad["r"].mean()) < 0.35
    assert (good["r2"] > 0.4).mean() > 0.8
    tab = res.table("r", method="ridge", split="validation")
    assert list(tab.index) == ["L1"] and list(tab.columns) == ["A", "B"]
    assert res.roi_average.shape[0] == 2 * 2 * 2  # roi x method x split
    assert np.isnan(v["ceiling_r"]).all()  # no repeats -> no ceiling


def test_ridge_matches_sklearn_with_the_chosen_alphas(rng):
    """Independent reference: sklearn Ridge per voxel on the same standardised fitting set."""
    X, ids, data, _ = _planted(rng)
    res = map_layers({"L1": X}, data, feature_ids=ids, rois="A", methods=("ridge",), n_heldout=15)
    split = res.splits
    fit = split.fits[0].fit
    alphas = res.fitted[("plain", "L1", "A", "ridge")][0]
    mu, sd = X[fit].mean(0), X[fit].std(0)
    Xs = (X - mu) / sd
    Y = data.responses[:, data.rois["A"]].astype(np.float64)
    Y = np.column_stack([Y, Y.mean(1)])
    for name, idx in split.evaluations.items():
        pred = np.column_stack([
            Ridge(alpha=a).fit(Xs[fit], Y[fit, j]).predict(Xs[idx]) for j, a in enumerate(alphas)
        ])
        r = [np.corrcoef(Y[idx, j], pred[:, j])[0, 1] for j in range(Y.shape[1])]
        got = res.voxels[(res.voxels["split"] == name)]["r"].to_numpy()
        np.testing.assert_allclose(got, r[:-1], atol=2e-4)
        roi = res.roi_average[res.roi_average["split"] == name]["r"].iloc[0]
        assert roi == pytest.approx(r[-1], abs=2e-4)
        ss_res = ((Y[idx] - pred) ** 2).sum(0)
        ss_tot = ((Y[idx] - Y[idx].mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(res.voxels[res.voxels["split"] == name]["r2"], (1 - ss_res / ss_tot)[:-1],
                                   atol=5e-4)


def test_ridge_alpha_choice_matches_a_grid_search_reference(rng):
    X, ids, data, _ = _planted(rng, noise=1.0)
    alphas = np.logspace(-2, 4, 7)
    res = map_layers({"L1": X}, data, feature_ids=ids, rois="A", methods=("ridge",), n_heldout=15,
                     alphas=alphas)
    fit = res.splits.fits[0].fit
    Xs = (X[fit] - X[fit].mean(0)) / X[fit].std(0)  # same standardisation as the fitting set
    Y = data.responses[fit][:, data.rois["A"]].astype(np.float64)
    folds = inner_folds(len(fit), 5, 0)
    score = np.zeros((len(alphas), Y.shape[1]))  # mean over inner folds of each voxel's R²
    for tr, te in folds:
        for k, a in enumerate(alphas):
            p = Ridge(alpha=a).fit(Xs[tr], Y[tr]).predict(Xs[te])
            score[k] += 1 - ((Y[te] - p) ** 2).sum(0) / ((Y[te] - Y[te].mean(0)) ** 2).sum(0)
    want = alphas[score.argmax(0)]
    got = res.fitted[("plain", "L1", "A", "ridge")][0][:-1]
    assert np.mean(np.isclose(got, want)) >= 0.95


@pytest.mark.parametrize("n_features", [30, 300])  # 300 > fitting samples: the row-space reduction is at work
def test_pls_matches_sklearn_with_the_chosen_components(rng, n_features):
    X, ids, data, _ = _planted(rng, n_features=n_features)
    res = map_layers({"L1": X}, data, feature_ids=ids, rois="B", methods=("pls",), n_heldout=15,
                     pls_components=(1, 3, 6))
    fit = res.splits.fits[0].fit
    n_vox, n_avg = res.fitted[("plain", "L1", "B", "pls")][0]
    assert n_vox in (1, 3, 6) and n_avg in (1, 3, 6)
    # reference: sklearn PLS on the full feature space, features and responses z-scored on the fitting set
    Xs = (X - X[fit].mean(0)) / X[fit].std(0)
    Y = data.responses[:, data.rois["B"]].astype(np.float64)
    ref = PLSRegression(n_components=n_vox, scale=False).fit(Xs[fit], (Y[fit] - Y[fit].mean(0)) / Y[fit].std(0))
    idx = res.splits.evaluations["validation"]
    pred = ref.predict(Xs[idx]) * Y[fit].std(0) + Y[fit].mean(0)
    r = [np.corrcoef(Y[idx, j], pred[:, j])[0, 1] for j in range(Y.shape[1])]
    got = res.voxels[res.voxels["split"] == "validation"]["r"].to_numpy()
    np.testing.assert_allclose(got, r, atol=2e-3)


def test_noise_ceiling_from_repeats_separates_noisy_voxels(rng):
    X, ids, data, n_good = _planted(rng, n_test=60, n_rep=4, noise=0.6)
    assert data.n_samples == 4 * len(ids)
    res = map_layers({"L1": X}, data, feature_ids=ids, methods=("ridge",), n_heldout=15)
    v = res.voxels[res.voxels["split"] == "validation"]
    good, bad = v[v["voxel"] < n_good], v[v["voxel"] >= n_good]
    assert good["ceiling_r"].min() > 0.7
    assert (bad["ceiling_r"] ** 2).mean() < 0.15  # reliability of pure-noise voxels is ~0
    # normalised scores of good voxels approach 1 (the model is the generating one)
    assert 0.75 < good["r_norm"].median() < 1.3
    ra = res.roi_average
    a, b = ra[ra["roi"] == "A"], ra[ra["roi"] == "B"]  # A holds the planted voxels, B only noise voxels
    assert a["ceiling_r"].min() > 0.9 and (a["r_norm"] > 0.9).all()
    assert b["ceiling_r"].max() < a["ceiling_r"].min() and (b["r_norm"].fillna(0).abs() < 0.5).all()
    # the ceiling of a voxel equals sqrt of the split-half reliability of its repeats
    from brainlike.metrics import split_half_reliability

    sel = np.isin(data.stimulus_ids, ids[res.splits.evaluations["validation"]])
    _, rep = repeat_tensor(data.responses[sel][:, data.rois["A"]], data.stimulus_ids[sel])
    rel = split_half_reliability(rep)
    want = np.sqrt(np.clip(rel, 0, None))
    got = v[v["roi"] == "A"]["ceiling_r"].to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_cv_scheme_and_several_layers(rng, tmp_path):
    X, ids, data, n_good = _planted(rng, n_train=60, n_test=0)
    data = BrainData(data.responses, data.stimulus_ids, rois=data.rois)  # no split labels -> CV
    noise_layer = rng.normal(size=X.shape).astype(np.float32)
    res = map_layers({"signal": X, "noise": noise_layer}, data, feature_ids=ids, cv=3, inner_cv=3,
                     pls_components=(1, 2))
    assert set(res.voxels["split"]) == {"cv"}
    tab = res.table("r", method="ridge")
    assert list(tab.index) == ["signal", "noise"]
    assert tab.loc["signal"].mean() > tab.loc["noise"].mean() + 0.3
    assert len(res.fitted[("plain", "signal", "A", "ridge")]) == 3
    out = res.save(tmp_path / "res")
    for f in ("voxel_scores.csv", "voxel_scores.parquet", "roi_average_scores.csv", "summary.csv", "params.csv"):
        assert (out / f).is_file()
    paths = save_figures(res, tmp_path / "fig")
    assert len(paths) >= 3 and all(p.stat().st_size > 5000 for p in paths)
    assert not list((tmp_path / "fig").glob(".*tmp*"))


def test_features_are_aligned_by_stimulus_id(rng):
    X, ids, data, _ = _planted(rng)
    perm = rng.permutation(len(ids))
    a = map_layers({"L": X}, data, feature_ids=ids, methods=("ridge",), n_heldout=15)
    b = map_layers({"L": X[perm]}, data, feature_ids=ids[perm], methods=("ridge",), n_heldout=15)
    np.testing.assert_allclose(a.voxels["r"], b.voxels["r"], atol=1e-5)


def test_bad_input(rng):
    X, ids, data, _ = _planted(rng)
    with pytest.raises(ValueError, match=r"unknown layers \['conv9'\]; valid layers: \['L1'\]"):
        map_layers({"L1": X}, data, layers=["conv9"], feature_ids=ids, n_heldout=10)
    with pytest.raises(ValueError, match=r"unknown rois \['V9'\]; valid rois: \['A', 'B'\]"):
        map_layers({"L1": X}, data, rois="V9", feature_ids=ids, n_heldout=10)
    bad_ids = ids.copy()
    want = str(bad_ids[3])
    bad_ids[3] = "other"
    with pytest.raises(IdMismatchError, match=rf"stimulus ids do not match: 1 id\(s\) of the responses are missing "
                                              rf"from features\['L1'\], e.g. \['{want}'\]"):
        map_layers({"L1": X}, data, feature_ids=bad_ids, n_heldout=10)
    with pytest.raises(ValueError, match="pls_components \\[500\\] exceed the rank"):
        map_layers({"L1": X}, data, feature_ids=ids, n_heldout=10, pls_components=(2, 500))
    small = BrainData(data.responses[:4], ids[:4], rois=data.rois)
    with pytest.raises(ValueError, match="cv=5 folds need at least 5 samples; got 4"):
        map_layers({"L1": X[:4]}, small, feature_ids=ids[:4])
    with pytest.raises(ValueError, match="methods"):
        map_layers({"L1": X}, data, feature_ids=ids, methods=("lasso",), n_heldout=10)
    with pytest.raises(ValueError, match=r"features\['L1'\] is a plain array without stimulus ids"):
        map_layers({"L1": X}, data, n_heldout=10)  # even with one row per stimulus: never paired by position
    with pytest.raises(ValueError, match=r"features\['L1'\] has 10 rows but 82 stimulus ids"):
        map_layers({"L1": X[:10]}, data, feature_ids=ids, n_heldout=10)


def test_feature_set_carries_the_ids_in_any_order(rng):
    from brainlike.features import FeatureSet

    X, ids, data, _ = _planted(rng)
    a = map_layers({"L": X}, data, feature_ids=ids, methods=("ridge",), n_heldout=15)
    order = rng.permutation(len(ids))  # another order than the responses
    b = map_layers(FeatureSet({"L": X[order]}, ids=[ids[i] for i in order]), data, methods=("ridge",), n_heldout=15)
    np.testing.assert_allclose(a.voxels["r"], b.voxels["r"], atol=1e-5)


@pytest.mark.parametrize("standardize", ["all", "none"])
def test_shared_kernel_cv_matches_sklearn(rng, standardize):
    """One kernel for every fold (fold-independent features) gives sklearn's per-fold ridge exactly."""
    X, ids, data, _ = _planted(rng, n_train=48, n_test=0, n_features=120)
    data = BrainData(data.responses, data.stimulus_ids, rois=data.rois)
    res = map_layers({"L": X}, data, feature_ids=ids, rois="A", methods=("ridge",), cv=3, inner_cv=3,
                     standardize=standardize)
    Xs = (X - X.mean(0)) / X.std(0) if standardize == "all" else X.astype(np.float64)
    Y = data.responses[:, data.rois["A"]].astype(np.float64)
    pred = np.zeros_like(Y)
    for fit, alphas in zip(res.splits.fits, res.fitted[("plain", "L", "A", "ridge")]):
        te = fit.predict["cv"]
        for j in range(Y.shape[1]):
            pred[te, j] = Ridge(alpha=alphas[j]).fit(Xs[fit.fit], Y[fit.fit, j]).predict(Xs[te])
    r = [np.corrcoef(Y[:, j], pred[:, j])[0, 1] for j in range(Y.shape[1])]
    np.testing.assert_allclose(res.voxels["r"], r, atol=1e-6)
    # "auto" grid: 13 values around the mean eigenvalue of the fitting Gram
    med = res.params["median_alpha"]
    assert (med > 0).all() and res.params["frac_alpha_at_grid_edge"].between(0, 1).all()
