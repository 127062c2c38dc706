"""BH score: equal to the published recipe, right on planted structure, sane CIs and nulls."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr, t

from brainlike.scores import (
    bh_score,
    bh_score_average,
    bh_score_encoding,
    bh_score_layer_select,
    bh_table,
    bootstrap_bh_score,
    bootstrap_bh_score_images,
    correlation_pvalue,
    permutation_bh_score,
    spearman_from_table,
)

# ----------------------------------------------------------------------------------------------
# An independent, literal re-implementation of the published recipe (KamitaniLab/BHscore,
# bhscore.py): NaN -> 0, best ROI per unit, keep when p < threshold and r > 0 with the
# reference statistic r * sqrt((n - 2) * (1 - r^2)), Spearman(layer number, best ROI) with scipy.


def published_bh(predacc_list, pval=0.05, n=50):
    layer_numbers, best = [], []
    for i, predacc in enumerate(predacc_list):
        predacc = predacc.copy()
        predacc[np.isnan(predacc)] = 0
        pred_max = np.max(predacc, axis=0)
        pred_max_ind = np.argmax(predacc, axis=0)
        tmp = pred_max * np.sqrt((n - 2) * (1 - pred_max**2))
        pv = 2 * (1 - t.cdf(tmp, df=n - 2))
        sel = np.logical_and(pv < pval, pred_max > 0)
        layer_numbers.extend([i + 1] * int(sel.sum()))
        best.extend(pred_max_ind[sel])
    return spearmanr(layer_numbers, best)[0]


def published_layerselect(predacc_list, pval=0.05, n_layers=5, n_repeat=100, n=50):
    out = np.zeros(n_repeat)
    for i in range(n_repeat):
        idx = np.sort(np.random.choice(np.arange(1, len(predacc_list) - 1), size=n_layers - 2, replace=False))
        sub = [predacc_list[0]] + [predacc_list[j] for j in idx] + [predacc_list[-1]]
        out[i] = published_bh(sub, pval, n)
    return out


def random_accuracies(rng, n_layers=6, n_rois=5, n_units=(40, 300), scale=0.25, nan_frac=0.02):
    accs = []
    for _ in range(n_layers):
        a = np.clip(rng.normal(0.15, scale, size=(n_rois, rng.integers(*n_units))), -0.99, 0.99)
        a[rng.random(a.shape) < nan_frac] = np.nan
        accs.append(a)
    return accs


def planted(rng, n_layers=5, n_units=200, noise=0.05):
    """Units of layer k are best predicted from ROI k (n_rois = n_layers)."""
    accs = []
    for k in range(n_layers):
        a = rng.uniform(0.0, 0.2, size=(n_layers, n_units))
        a[k] = rng.uniform(0.5, 0.7, size=n_units) + noise * rng.normal(size=n_units)
        accs.append(a)
    return accs


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [50, 120])
def test_equals_published_recipe(seed, n):
    rng = np.random.default_rng(seed)
    accs = random_accuracies(rng)
    before = [a.copy() for a in accs]
    ref = published_bh(accs, 0.05, n)
    ours = bh_score(accs, pval=0.05, n_samples=n).score
    assert abs(ours - ref) < 1e-12
    for a, b in zip(accs, before):  # inputs untouched (NaN still there)
        np.testing.assert_array_equal(a, b)


def test_pval_threshold_is_used():
    rng = np.random.default_rng(3)
    accs = random_accuracies(rng)
    for p in (0.005, 0.05, 0.2):
        assert abs(bh_score(accs, pval=p, n_samples=50).score - published_bh(accs, p)) < 1e-12
    assert bh_score(accs, pval=0.005, n_samples=50).score != bh_score(accs, pval=0.2, n_samples=50).score


def test_top_rois_match_recipe():
    rng = np.random.default_rng(1)
    accs = random_accuracies(rng, n_layers=3)
    res = bh_score(accs, n_samples=50)
    tops = res.top_rois
    with pytest.warns(DeprecationWarning, match="return_top_rois"):
        score, old = bh_score(accs, n_samples=50, return_top_rois=True)
    assert score == res.score and all(np.array_equal(a, b) for a, b in zip(old, tops))
    assert res.n_kept == sum(len(x) for x in tops) and res.n_test == 50
    for a, top in zip(accs, tops):
        a = np.nan_to_num(a, nan=0.0)
        m = a.max(0)
        pv = 2 * (1 - t.cdf(m * np.sqrt(48 * (1 - m**2)), df=48))
        np.testing.assert_array_equal(top, a.argmax(0)[(pv < 0.05) & (m > 0)])


def test_planted_hierarchy_and_shuffle():
    rng = np.random.default_rng(0)
    accs = planted(rng)
    assert bh_score(accs, n_samples=50).score > 0.99
    # reversed hierarchy -> -1
    assert bh_score(accs[::-1], n_samples=50).score < -0.99
    # shuffle each unit's ROI accuracies independently: no relation to layer
    shuffled = [rng.permuted(a, axis=0) for a in accs]
    assert abs(bh_score(shuffled, n_samples=50).score) < 0.08


def test_spearman_from_table_equals_scipy():
    rng = np.random.default_rng(5)
    table = rng.integers(0, 30, size=(7, 4)).astype(float)
    table[2] = 0  # an empty layer
    rows = np.repeat(np.repeat(np.arange(7), 4), table.ravel().astype(int))
    cols = np.repeat(np.tile(np.arange(4), 7), table.ravel().astype(int))
    assert abs(spearman_from_table(table) - spearmanr(rows, cols)[0]) < 1e-12
    batch = np.stack([table, table[::-1]])
    np.testing.assert_allclose(spearman_from_table(batch), [spearmanr(rows, cols)[0], -spearmanr(rows, cols)[0]])


def test_significance_textbook_ttest():
    r = np.array([0.1, 0.28, 0.3, 0.5])
    from scipy.stats import pearsonr

    # textbook: equals scipy's exact p-value of a Pearson r (t distribution with n-2 df)
    x = np.random.default_rng(0).normal(size=50)
    for rv in r:
        y = rv * x + np.sqrt(1 - rv**2) * np.random.default_rng(1).normal(size=50)
        rr, p = pearsonr(x, y)
        assert abs(correlation_pvalue(rr, 50, "t-test") - p) < 1e-9
    # the reference statistic is more conservative
    assert np.all(correlation_pvalue(r, 50, "reference") >= correlation_pvalue(r, 50, "t-test"))
    rng = np.random.default_rng(2)
    accs = random_accuracies(rng)
    assert np.isfinite(bh_score(accs, n_samples=50, significance="t-test").score)


def test_layer_select_equals_reference_with_same_seed():
    rng = np.random.default_rng(7)
    accs = random_accuracies(rng, n_layers=9)
    np.random.seed(11)
    ref = published_layerselect(accs, n_repeat=30)
    ours = bh_score_layer_select(accs, n_layers=5, n_repeat=30, seed=11, n_samples=50)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    # deterministic and seed dependent
    np.testing.assert_array_equal(ours, bh_score_layer_select(accs, n_repeat=30, seed=11, n_samples=50))
    assert not np.array_equal(ours, bh_score_layer_select(accs, n_repeat=30, seed=12, n_samples=50))


def test_layer_select_first_last_always():
    rng = np.random.default_rng(0)
    accs = planted(rng, n_layers=7)
    scores, tops = bh_score_layer_select(accs, n_layers=4, n_repeat=10, seed=0, return_top_rois=True,
                                         n_samples=50)
    assert scores.shape == (10,) and np.all(scores > 0.98)
    for rep in tops:
        assert len(rep) == 4
        assert np.all(rep[0] == 0) and np.all(rep[-1] == 6)  # best ROI of layer 0 is ROI 0, last -> last


def test_encoding_bh_planted_and_reference():
    rng = np.random.default_rng(0)
    # 4 ROIs x 6 layers: voxels of ROI k best explained by layer ~1.5k, 3 subjects
    rois = []
    for k in range(4):
        subs = []
        for _ in range(3):
            a = rng.uniform(0.0, 0.2, size=(6, 1500))
            best = min(5, int(round(1.5 * k)) + rng.integers(0, 2))
            a[best] += 0.5
            subs.append(a)
        rois.append(subs)
    score = bh_score_encoding(rois, n_samples=50, n_voxels=1000, seed=0).score
    assert score > 0.9
    # with every voxel and pooled arrays: equals the published recipe with ROIs as "layers"
    pooled = [np.hstack(s) for s in rois]
    assert abs(bh_score_encoding(pooled, n_samples=50, n_voxels=None).score - published_bh(pooled)) < 1e-12
    # voxel subsampling: exactly 1000 per subject and ROI are used
    tops = bh_score_encoding(rois, n_samples=50, n_voxels=1000, seed=0).top_rois
    with pytest.warns(DeprecationWarning, match="return_top_layers"):
        _, old = bh_score_encoding(rois, n_samples=50, n_voxels=1000, seed=0, return_top_layers=True)
    assert all(np.array_equal(a, b) for a, b in zip(old, tops))
    assert all(len(tp) == 3000 for tp in tops)  # all voxels significant here
    assert bh_score_average(0.4, 0.2) == pytest.approx(0.3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="accuracies"):
        bh_score(np.zeros((3, 5, 10)), n_samples=50)
    with pytest.raises(ValueError, match=r"accuracies\[1\].*2-D"):
        bh_score([np.zeros((5, 3)), np.zeros(5)], n_samples=50)
    with pytest.raises(ValueError, match="same number of rows"):
        bh_score([np.zeros((5, 3)), np.zeros((4, 3))], n_samples=50)
    with pytest.raises(ValueError, match="n_samples"):
        bh_score([np.zeros((5, 3))] * 2, n_samples=2)
    with pytest.raises(ValueError, match="pval"):
        bh_score([np.zeros((5, 3))] * 2, pval=0, n_samples=50)
    with pytest.raises(ValueError, match="significance"):
        bh_score([np.zeros((5, 3))] * 2, significance="z", n_samples=50)
    with pytest.raises(ValueError, match="n_layers"):
        bh_score_layer_select([np.zeros((5, 3))] * 4, n_layers=5, n_samples=50)


def test_undefined_score_warns():
    accs = [np.zeros((3, 10)), np.zeros((3, 10))]
    with pytest.warns(RuntimeWarning, match="undefined"):
        res = bh_score(accs, n_samples=50)
    assert np.isnan(res.score) and "no unit is significantly decoded" in res.reason and "50 test images" in res.reason


def test_bootstrap_units_ci_contains_and_shrinks():
    rng = np.random.default_rng(0)
    accs = random_accuracies(rng, n_units=(300, 301))
    # weak planted hierarchy
    for k, a in enumerate(accs):
        a[min(k, 4)] = np.minimum(a[min(k, 4)] + 0.1, 1.0)  # accuracies stay correlations
    res = bootstrap_bh_score(accs, n_boot=400, seed=0, n_samples=50)
    assert res.ci_low < res.score < res.ci_high
    assert res.score == pytest.approx(bh_score(accs, n_samples=50).score, abs=1e-12)
    # more units -> narrower interval
    big = [np.tile(a, 8) for a in accs]
    res_big = bootstrap_bh_score(big, n_boot=400, seed=0, n_samples=50)
    assert (res_big.ci_high - res_big.ci_low) < 0.6 * (res.ci_high - res.ci_low)
    # layer-select statistic
    res_ls = bootstrap_bh_score(accs, n_boot=50, layer_select={"n_layers": 4, "n_repeat": 20, "seed": 0},
                                n_samples=50)
    assert res_ls.score == pytest.approx(np.nanmean(bh_score_layer_select(accs, 4, 20, 0, n_samples=50)), abs=1e-12)


def test_bootstrap_units_matches_explicit_resampling():
    """The multinomial shortcut has the same distribution as resampling unit columns."""
    rng = np.random.default_rng(4)
    accs = random_accuracies(rng, n_layers=4, n_units=(200, 201))
    fast = bootstrap_bh_score(accs, n_boot=600, seed=1, n_samples=50).samples
    slow = []
    r2 = np.random.default_rng(2)
    for _ in range(600):
        slow.append(bh_score([a[:, r2.integers(0, a.shape[1], a.shape[1])] for a in accs], n_samples=50).score)
    assert abs(np.mean(fast) - np.mean(slow)) < 0.01
    assert abs(np.std(fast) - np.std(slow)) < 0.25 * np.std(slow)


def test_bootstrap_images():
    rng = np.random.default_rng(0)
    n_img, n_rois, n_layers, n_units = 60, 4, 4, 60
    y_true, y_pred = [], []
    for k in range(n_layers):
        yt = rng.normal(size=(n_img, n_units))
        yp = np.stack([(0.9 if r == k else 0.2) * yt + rng.normal(size=yt.shape) for r in range(n_rois)])
        y_true.append(yt)
        y_pred.append(yp)
    res = bootstrap_bh_score_images(y_true, y_pred, n_boot=60, seed=0)
    from brainlike.scores import pearson_columns

    accs = [pearson_columns(yt[None], yp) for yt, yp in zip(y_true, y_pred)]
    assert res.score == pytest.approx(bh_score(accs, n_samples=n_img).score, abs=1e-12)
    assert 0.8 < res.ci_low <= res.score <= res.ci_high <= 1.0
    with pytest.raises(ValueError, match="y_pred"):
        bootstrap_bh_score_images(y_true, [p[:, :10] for p in y_pred], n_boot=2)


def test_permutation_null():
    rng = np.random.default_rng(0)
    accs = planted(rng, n_units=60)
    res = permutation_bh_score(accs, n_perm=300, seed=0, n_samples=50)
    assert res.score > 0.99 and res.p_value == pytest.approx(1 / 301)
    assert abs(np.mean(res.null)) < 0.05
    # null table keeps layer sizes and category totals: check by direct shuffling distribution
    shuffled = [rng.permuted(a, axis=0) for a in planted(rng, n_units=60)]
    res0 = permutation_bh_score(shuffled, n_perm=300, seed=1, n_samples=50)
    assert res0.p_value > 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res_ls = permutation_bh_score(accs, n_perm=50, seed=0, layer_select={"n_layers": 3, "n_repeat": 10},
                                      n_samples=50)
    assert res_ls.p_value < 0.05
    table = bh_table(accs, n_samples=50)
    assert table.shape == (5, 5) and table.sum() == 300


def test_permutation_matches_explicit_shuffle():
    rng = np.random.default_rng(9)
    accs = random_accuracies(rng, n_layers=4, n_units=(100, 101))
    for k, a in enumerate(accs):
        a[k] += 0.05
    fast = permutation_bh_score(accs, n_perm=500, seed=0, n_samples=50).null
    pooled = np.hstack(accs)
    sizes = np.cumsum([a.shape[1] for a in accs])[:-1]
    r2 = np.random.default_rng(1)
    slow = [bh_score(np.split(pooled[:, r2.permutation(pooled.shape[1])], sizes, axis=1), n_samples=50).score
            for _ in range(500)]
    assert abs(np.mean(fast) - np.mean(slow)) < 0.01
    assert abs(np.std(fast) - np.std(slow)) < 0.2 * np.std(slow)


@pytest.mark.parametrize("significance", ["reference", "t-test"])
@pytest.mark.parametrize("n", [50, 1200])
def test_kept_set_exact_at_the_threshold(significance, n):
    """Units right at the critical correlation are decided exactly as the p-value formula says."""
    from scipy.optimize import brentq

    from brainlike.scores import best_rois

    def p_of(r):
        tt = r * np.sqrt((n - 2) * (1 - r**2)) if significance == "reference" else r * np.sqrt((n - 2) / (1 - r**2))
        return 2 * (1 - t.cdf(tt, df=n - 2))

    r_crit = brentq(lambda r: p_of(r) - 0.05, 0.01, 0.6)
    r = np.concatenate([r_crit + np.linspace(-1e-7, 1e-7, 2001), np.linspace(-0.99, 0.99, 2001)])
    acc = np.vstack([r, r - 0.5])
    best, kept = best_rois(acc, 0.05, n_samples=n, significance=significance)
    with np.errstate(invalid="ignore"):
        expect = (p_of(r) < 0.05) & (r > 0)
    np.testing.assert_array_equal(kept, expect)
    assert 0 < kept[:2001].sum() < 2001 and (best == 0).all()
