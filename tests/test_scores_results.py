"""Scores as results: ScoreResult save/load, n_samples required, bootstrap intervals and permutation
p-values against independent references and on planted structure, the score registry."""

from __future__ import annotations

import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from brainlike import scores as S
from brainlike.scores import ScoreResult, bootstrap_ci, permutation_pvalue


def planted(rng, n_layers=4, n_units=80):
    """Units of layer k best predicted from ROI k (n_rois = n_layers), all significant at n = 50."""
    out = []
    for k in range(n_layers):
        a = rng.uniform(0.0, 0.2, size=(n_layers, n_units))
        a[k] = rng.uniform(0.5, 0.7, size=n_units)
        out.append(a)
    return out


def accuracies_of(categories, n_rois):
    """(n_rois, n_units) accuracies realising each unit's best ROI (-1: not significant)."""
    acc = np.zeros((n_rois, categories.size))
    kept = categories >= 0
    acc[categories[kept], np.flatnonzero(kept)] = 0.6
    return acc


# ------------------------------------------------------------------------------------------ result
def test_result_saves_and_loads(tmp_path):
    accs = planted(np.random.default_rng(0))
    boot = S.bootstrap_bh_score(accs, n_boot=40, seed=0, n_samples=50, ci_method="recentred")
    perm = S.permutation_bh_score(accs, n_perm=30, seed=0, n_samples=50)
    res = ScoreResult(boot.score, boot.ci_low, boot.ci_high, boot.level, boot.ci_method, perm.p_value, "greater",
                      samples=boot.samples, null=perm.null, n_test=50, n_units=320, n_used=320, n_kept=boot.n_kept,
                      name="bh_decoding", info={"pval": 0.05, "layers": ["a", "b"]},
                      arrays={"table": S.bh_table(accs, n_samples=50)})
    path = res.save(tmp_path / "r" / "bh.json")
    assert path.is_file() and (tmp_path / "r" / "bh.npz").is_file()
    back = ScoreResult.load(path)
    assert back.to_dict() == res.to_dict()
    np.testing.assert_array_equal(back.samples, res.samples)
    np.testing.assert_array_equal(back.null, res.null)
    np.testing.assert_array_equal(back.arrays["table"], res.arrays["table"])
    assert back.info == res.info and back.ci == (res.ci_low, res.ci_high, 0.95, "recentred")
    assert not list((tmp_path / "r").glob("*.tmp-*"))
    # the same result gives the same bytes (no time stamp in the npz)
    again = res.save(tmp_path / "r2" / "bh.json")
    assert again.read_bytes() == path.read_bytes()
    assert (tmp_path / "r2" / "bh.npz").read_bytes() == (tmp_path / "r" / "bh.npz").read_bytes()
    # a NaN score and its reason survive (JSON null)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nan = S.bh_score([np.full((3, 10), 0.1)] * 2, n_samples=50)
    back = ScoreResult.load(nan.save(tmp_path / "nan.json"))
    assert np.isnan(back.score) and back.reason == nan.reason != ""
    assert back.top_rois[0].size == 0


def test_damaged_or_missing_arrays_are_named(tmp_path):
    res = S.bh_score(planted(np.random.default_rng(1)), n_samples=50)
    path = res.save(tmp_path / "bh.json")
    npz = tmp_path / "bh.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bh\.npz: content does not match"):
        ScoreResult.load(path)
    npz.unlink()
    with pytest.raises(FileNotFoundError, match=r"bh\.npz"):
        ScoreResult.load(path)
    with pytest.raises(ValueError, match="must end in .json"):
        res.save(tmp_path / "bh.npz")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a score result"):
        ScoreResult.load(tmp_path / "other.json")


def test_repr_and_float():
    accs = planted(np.random.default_rng(2))
    res = S.bootstrap_bh_score(accs, n_boot=20, seed=0, n_samples=50)
    text = repr(res)
    assert text.startswith("<ScoreResult bh = 1") and "95% CI [" in text and "percentile" in text
    assert "n_test 50" in text and "kept 320" in text
    assert float(res) == res.score and f"{res:.2f}" == "1.00"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        nan = S.bh_score([np.full((3, 10), 0.1)] * 2, n_samples=40)
    assert "NaN because: no unit is significantly decoded (p < 0.05 with 40 test images)" in repr(nan)


def test_bh_score_result_fields():
    rng = np.random.default_rng(3)
    accs = planted(rng)
    accs[1][:, :5] = np.nan  # 5 units with no finite accuracy
    res = S.bh_score(accs, n_samples=50)
    assert res.n_units == 320 and res.n_used == 315 and res.n_kept == 315 and res.n_test == 50
    np.testing.assert_array_equal(res.arrays["table"], S.bh_table(accs, n_samples=50))
    assert [t.size for t in res.top_rois] == [80, 75, 80, 80]
    assert all((t == k).all() for k, t in enumerate(res.top_rois))


# ------------------------------------------------------------------------------- n_samples required
CALLS = {
    "bh_score": lambda a, **kw: S.bh_score(a, **kw),
    "bh_table": lambda a, **kw: S.bh_table(a, **kw),
    "best_rois": lambda a, **kw: S.best_rois(a[0], **kw),
    "bh_score_layer_select": lambda a, **kw: S.bh_score_layer_select(a, n_layers=3, n_repeat=2, **kw),
    "bh_score_encoding": lambda a, **kw: S.bh_score_encoding(a, **kw),
    "bootstrap_bh_score": lambda a, **kw: S.bootstrap_bh_score(a, n_boot=2, **kw),
    "permutation_bh_score": lambda a, **kw: S.permutation_bh_score(a, n_perm=2, **kw),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_n_samples_is_required(name):
    accs = planted(np.random.default_rng(4))
    with pytest.raises(TypeError, match="n_samples"):
        CALLS[name](accs)
    with pytest.raises(ValueError, match="n_samples is required: the number of test images"):
        CALLS[name](accs, n_samples=None)
    CALLS[name](accs, n_samples=50)  # and runs with it
    with pytest.raises(TypeError, match="n_samples"):
        S.correlation_pvalue(np.array([0.3]))
    with pytest.raises(ValueError, match="n_samples"):
        S.correlation_pvalue(np.array([0.3]), None)


def test_n_samples_changes_what_is_kept():
    """The test-set size is used: r = 0.3 is significant with 60 test images, not with 30."""
    acc = np.array([[0.3, 0.3], [0.0, 0.0]])
    assert S.best_rois(acc, 0.05, n_samples=60)[1].all()
    assert not S.best_rois(acc, 0.05, n_samples=30)[1].any()


# ---------------------------------------------------------------------- intervals and p-values
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_percentile_interval_equals_scipy_bootstrap(level):
    x = np.random.default_rng(5).gamma(2.0, size=60)
    ref = stats.bootstrap((x,), np.median, n_resamples=999, method="percentile", confidence_level=level,
                          random_state=0, vectorized=False)
    lo, hi = bootstrap_ci(ref.bootstrap_distribution, level, "percentile")
    assert lo == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=1e-12)


def _quantile_by_hand(values, q):
    v = sorted(values)
    pos = q * (len(v) - 1)
    i = int(np.floor(pos))
    return v[i] + (pos - i) * (v[min(i + 1, len(v) - 1)] - v[i])


def test_recentred_interval_against_a_loop():
    rng = np.random.default_rng(6)
    samples = list(rng.normal(0.3, 0.1, size=501)) + [float("nan")] * 4
    finite = [s for s in samples if s == s]
    point = 0.55
    med = _quantile_by_hand(finite, 0.5)
    expect = (point + _quantile_by_hand(finite, 0.025) - med, point + _quantile_by_hand(finite, 0.975) - med)
    assert bootstrap_ci(samples, 0.95, "recentred", point=point) == pytest.approx(expect, abs=1e-12)
    lo, hi = bootstrap_ci(samples, 0.95, "recentred", point=0.95, bounds=(-1, 1))
    assert hi == 1.0 and lo == pytest.approx(expect[0] + 0.4, abs=1e-12)
    assert np.isnan(bootstrap_ci(samples, 0.95, "recentred", point=float("nan"))[0])
    assert np.isnan(bootstrap_ci([float("nan")] * 3, 0.95)[1])
    with pytest.raises(ValueError, match="point"):
        bootstrap_ci(samples, 0.95, "recentred")
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(samples, 0.95, "bca")
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(samples, 95)


def test_permutation_pvalue_against_a_loop():
    rng = np.random.default_rng(7)
    null = rng.normal(size=300)
    null[:3] = np.nan
    for observed in (-0.5, 0.0, 1.2, 3.5):
        finite = [v for v in null if v == v]
        hits = sum(1 for v in finite if v >= observed)
        assert permutation_pvalue(null, observed) == pytest.approx((1 + hits) / (1 + len(finite)), abs=1e-15)
        hits2 = sum(1 for v in finite if abs(v) >= abs(observed))
        assert permutation_pvalue(null, observed, "two-sided") == pytest.approx((1 + hits2) / (1 + len(finite)))
    assert np.isnan(permutation_pvalue(null, float("nan")))
    with pytest.raises(ValueError, match="alternative"):
        permutation_pvalue(null, 0.0, "less")


@pytest.mark.parametrize("method", ["percentile", "recentred"])
def test_unit_bootstrap_covers_the_population_score(method):
    """Planted population: per layer, fixed probabilities of each best ROI (and of not being kept).
    Its BH score is known (Spearman of the probability table); 95% intervals from samples of 150
    units per layer cover it about 95% of the time."""
    probs = np.array([[.40, .25, .15, .10, .10],   # last column: not significant
                      [.20, .30, .20, .10, .20],
                      [.10, .20, .30, .20, .20],
                      [.10, .10, .25, .35, .20]])
    truth = float(S.spearman_from_table(probs[:, :4] * 1e9))
    assert 0.2 < truth < 0.6
    rng = np.random.default_rng(8)
    n_trials, hits, scores = 200, 0, []
    for trial in range(n_trials):
        accs = [accuracies_of(rng.choice([0, 1, 2, 3, -1], size=150, p=p), 4) for p in probs]
        res = S.bootstrap_bh_score(accs, n_boot=300, seed=trial, n_samples=50, ci_method=method)
        hits += res.ci_low <= truth <= res.ci_high
        scores.append(res.score)
    assert abs(np.mean(scores) - truth) < 0.02  # the estimate is centred on the known score
    assert 0.90 <= hits / n_trials <= 0.99


def test_pipeline_interval_is_the_library_one():
    """brainlike run's decoding interval = bootstrap_ci(recentred) of its replicates; its p-value =
    permutation_pvalue of its null."""
    from brainlike.pipeline import scoring

    rng = np.random.default_rng(9)
    n_test, n_layers, n_rois = 30, 4, 4
    truths = [[rng.standard_normal((n_test, 40)) for _ in range(n_layers)]]
    preds = [[np.stack([(1.5 if r == k else 0.3) * t + rng.standard_normal(t.shape) for r in range(n_rois)])
              for k, t in enumerate(truths[0])]]
    sc = {"pval": 0.05, "n_layers": None, "n_repeat": 1, "n_boot": 40, "n_perm": 30, "ci": 0.9, "voxels_per_roi": None}
    inputs = S.registry.ScoreInputs(dnn="net", settings=sc, seed=1, decoding={"pred": preds, "truth": truths},
                                    layers=list("abcd"), rois=list("WXYZ"), subjects=["s1"])
    res = scoring.decoding_score(inputs)
    assert res.name == "bh_decoding" and res.n_test == n_test and res.n_boot == 40 and res.n_perm == 30
    assert res.ci == (*bootstrap_ci(res.samples, 0.9, "recentred", point=res.score, bounds=(-1, 1)), 0.9, "recentred")
    assert res.p_value == permutation_pvalue(res.null, res.score)
    accs = [S.pearson_columns(t[None], p) for t, p in zip(truths[0], preds[0])]
    assert res.score == pytest.approx(S.bh_score(accs, n_samples=n_test).score, abs=1e-12)


# -------------------------------------------------------------------------------------- registry
def test_registry_register_get_unregister():
    assert S.list_scores()[:3] == ["bh_decoding", "bh_encoding", "bh_average"]
    from brainlike.pipeline import scoring

    assert S.get("bh_decoding") is scoring.decoding_score

    def mine(inputs):
        return None

    S.register("my_score", mine)
    try:
        assert S.get("my_score") is mine and S.list_scores()[-1] == "my_score"
        assert S.registry.kind("my_score") == "my_score" and S.registry.kind("bh_average") == "average"
        with pytest.raises(ValueError, match="already registered"):
            S.register("my_score", mine)
        with pytest.raises(ValueError, match="already registered"):
            S.register("bh_decoding", mine)
    finally:
        S.unregister("my_score")
    assert "my_score" not in S.list_scores()
    with pytest.raises(KeyError, match="unknown score 'my_score'"):
        S.get("my_score")
    with pytest.raises(ValueError, match="name must be"):
        S.register("1 bad", mine)
    with pytest.raises(ValueError, match="fn must be callable"):
        S.register("ok", 3)
    with pytest.raises(KeyError, match="bh_decoding"):
        S.unregister("bh_decoding")


def test_importing_scores_has_no_side_effects():
    code = ("import sys, brainlike.scores as S; "
            "assert 'brainlike.pipeline.scoring' not in sys.modules and 'brainlike.pipeline' not in sys.modules; "
            "print(S.list_scores())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bh_decoding', 'bh_encoding', 'bh_average']"


def test_pipeline_loops_over_registered_scores(tmp_path):
    from brainlike.pipeline.run import compute_scores

    rng = np.random.default_rng(10)
    layers, rois = ["l1", "l2", "l3", "l4"], ["V1", "V2", "V3", "V4"]
    acc = [planted(rng, n_units=30)]  # one subject
    exp = SimpleNamespace(
        dnns={"net": SimpleNamespace(layers=layers)}, analyses=["decoding"], seed=0, rois=rois,
        scores={"pval": 0.05, "n_layers": None, "n_repeat": 1, "n_boot": 0, "n_perm": 0, "ci": 0.95,
                "voxels_per_roi": None})
    collected = {"decoding": {"net": {"acc": acc, "n_test": [50]}}, "encoding": {}, "rois": rois,
                 "subjects": ["s1"]}

    def best_accuracy(inputs):
        if inputs.decoding is None:
            return None
        best = np.mean([a.max(axis=0).mean() for a in inputs.decoding["acc"][0]])
        return ScoreResult(best, n_test=min(inputs.decoding["n_test"]), name="best_accuracy",
                           reason="" if inputs.results["bh_decoding"].n_kept else "nothing kept")

    S.register("best_accuracy", best_accuracy)
    try:
        df = compute_scores(exp, collected, save_dir=tmp_path / "scores")
    finally:
        S.unregister("best_accuracy")
    saved = {p.name for p in (tmp_path / "scores" / "net").iterdir()}
    assert saved == {"bh_decoding.json", "bh_decoding.npz", "best_accuracy.json", "best_accuracy.npz"}
    back = ScoreResult.load(tmp_path / "scores" / "net" / "bh_decoding.json")
    assert back.score == df.iloc[0]["score"] and back.n_kept == df.iloc[0]["n_kept"] and back.n_test == 50
    assert back.info["ci_low_percentile"] is None  # no replicates (n_boot 0): NaN saved as null
    assert list(df["kind"]) == ["decoding", "best_accuracy"]
    dec, mine = df.iloc[0], df.iloc[1]
    assert dec["score"] == pytest.approx(S.bh_score(acc[0], n_samples=50).score, abs=1e-12)
    assert mine["score"] == pytest.approx(np.mean([a.max(axis=0).mean() for a in acc[0]]))
    assert mine["reason"] == "" and dec["n_kept"] == 120
