"""One estimator contract for Ridge, RidgeCV, SelectiveRidge, StreamingSelectiveRidge, PLS, PLSCV,
FWRF and GNet, on every backend (numpy; torch on the CPU; torch on CUDA, skipped with its reason
where there is none).

1. scikit-learn's own estimator checks (``parametrize_with_checks``) for the estimators that take
   tabular X (n_samples, n_features): all 53 checks, in float64 (the checks compare at float64
   tolerances) and, for the production settings, in the float32 default. Expected to fail in
   float32 only, by design: ``check_regressor_multioutput`` (asks for float64 predictions; float32
   is the default precision of brainlike's estimators) and ``check_methods_sample_order_invariance``
   (compares at rtol 1e-7, below float32 rounding of a reordered BLAS sum).
2. FWRF takes feature maps (n, C, H, W) and GNet images (n, H, W, 3): scikit-learn's checks that
   fit generate tabular X and cannot fit them, so they run only the checks that need no data
   (``API_CHECKS``: attributes in ``__init__``, get/set_params, default construction, clone,
   repr, unfitted prediction); fitting is tested below on their own inputs.
3. For all eight, on their own inputs and every backend: ``clone``, ``NotFittedError`` before fit,
   fit leaves the parameters untouched and returns self, ``score`` is the mean R² over targets
   (scikit-learn's ``r2_score``), ``score_targets`` gives R² or Pearson r per target, the renamed
   parameters still work with a DeprecationWarning naming the new one, and the one device rule.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.utils import estimator_checks as skc

from brainlike._backend import resolve_device
from brainlike.encoding import FWRF, GNet, ImagePreprocess, make_prefilter, rf_grid
from brainlike.linear import PLS, PLSCV, Ridge, RidgeCV, SelectiveRidge, StreamingSelectiveRidge

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device here (torch.cuda.is_available() is False)"
F64 = np.float64

# ---------------------------------------------------------------------------------------------
# 1. scikit-learn's estimator checks (tabular estimators)
# ---------------------------------------------------------------------------------------------
TABULAR = [
    Ridge(dtype=F64), RidgeCV(dtype=F64), SelectiveRidge(n_feat=0, dtype=F64), SelectiveRidge(n_feat=1, dtype=F64),
    StreamingSelectiveRidge(n_feat=1, dtype=F64), PLS(n_components=1, dtype=F64),
    PLSCV(n_components=(1,), cv=2, dtype=F64),
    Ridge(dtype=F64, backend="torch", device="cpu"), RidgeCV(dtype=F64, backend="torch", device="cpu"),
    SelectiveRidge(n_feat=1, dtype=F64, backend="torch", device="cpu"),
    PLS(n_components=1, dtype=F64, backend="torch", device="cpu"),
    PLSCV(n_components=(1,), cv=2, dtype=F64, backend="torch", device="cpu"),
    # float32, the default precision
    Ridge(), SelectiveRidge(n_feat=1), StreamingSelectiveRidge(n_feat=1),
]
if CUDA:
    TABULAR += [Ridge(dtype=F64, backend="torch", device="cuda"), RidgeCV(dtype=F64, backend="torch", device="cuda"),
                SelectiveRidge(n_feat=1, dtype=F64, backend="torch", device="cuda"),
                PLS(n_components=1, dtype=F64, backend="torch", device="cuda")]

FLOAT32_BY_DESIGN = {
    "check_regressor_multioutput": "float32 predictions: float32 is the default precision (dtype=float64 passes)",
    "check_methods_sample_order_invariance": "rtol=1e-7 is below float32 rounding of a reordered sum",
}


def _expected_failures(est):
    return FLOAT32_BY_DESIGN if est.dtype is None else {}


@skc.parametrize_with_checks(TABULAR, expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(estimator)


def test_cuda_estimator_checks_ran_or_skipped_with_reason():
    if not CUDA:
        pytest.skip(f"scikit-learn checks on torch CUDA: {NO_CUDA}")
    assert any(getattr(e, "device", None) == "cuda" for e in TABULAR)


# ---------------------------------------------------------------------------------------------
# 2. FWRF and GNet: the checks that need no tabular data
# ---------------------------------------------------------------------------------------------
API_CHECKS = [skc.check_no_attributes_set_in_init, skc.check_get_params_invariance, skc.check_set_params,
              skc.check_parameters_default_constructible, skc.check_estimator_cloneable, skc.check_estimator_repr,
              skc.check_do_not_raise_errors_in_init_or_set_params, skc.check_estimators_unfitted]


def _tiny_prefilter():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU())
    return make_prefilter(conv, ImagePreprocess((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), "tiny")


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("make", [lambda: FWRF(alphas=[1.0, 10.0]), lambda: GNet(_tiny_prefilter(), progress=False)],
                         ids=["FWRF", "GNet"])
def test_sklearn_api_checks_without_data(make, check):
    est = make()
    check(type(est).__name__, est)


# ---------------------------------------------------------------------------------------------
# 3. the contract on each estimator's own inputs, every backend
# ---------------------------------------------------------------------------------------------
BACKENDS = [
    pytest.param(("numpy", None), id="numpy"),
    pytest.param(("torch", "cpu"), id="torch-cpu"),
    pytest.param(("torch", "cuda"), id="torch-cuda", marks=pytest.mark.skipif(not CUDA, reason=NO_CUDA)),
]


def _tabular(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((80, 12))
    W = rng.standard_normal((12, 3))
    Y = X @ W + 0.3 * rng.standard_normal((80, 3))
    return X[:60], Y[:60], X[60:], Y[60:]


def _maps(seed=1):
    """Feature maps with each voxel reading one Gaussian field of one channel (planted)."""
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((160, 3, 8, 8))
    cand = rf_grid(n_sizes=2, min_size=0.15, max_size=0.3)
    from brainlike.encoding import gaussian_fields

    g = gaussian_fields(cand[[0, 5]], 8)
    Y = np.stack([(maps[:, 0] * g[0]).sum((1, 2)), (maps[:, 2] * g[1]).sum((1, 2))], axis=1)
    Y += 0.05 * rng.standard_normal(Y.shape)
    return [maps[:120]], Y[:120], [maps[120:]], Y[120:], cand


def _images(seed=2):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(48, 12, 12, 3), dtype=np.uint8)
    Y = rng.standard_normal((48, 2)).astype(np.float32) + images.mean((1, 2))[:, :2] / 64.0
    return images[:36], Y[:36], images[36:], Y[36:]


def _numpy_only(backend, name, why):
    if backend[0] != "numpy":
        pytest.skip(f"{name} runs on numpy only ({why})")


def case_ridge(backend):
    return Ridge(alpha=1.0, backend=backend[0], device=backend[1]), _tabular()


def case_ridgecv(backend):
    return RidgeCV(alphas=(0.1, 1.0, 10.0), cv=3, backend=backend[0], device=backend[1]), _tabular()


def case_selective(backend):
    return SelectiveRidge(alpha=1.0, n_feat=6, backend=backend[0], device=backend[1]), _tabular()


def case_streaming(backend):
    _numpy_only(backend, "StreamingSelectiveRidge", "it streams column chunks through numpy")
    return StreamingSelectiveRidge(alpha=1.0, n_feat=6, chunk_size=5), _tabular()


def case_pls(backend):
    return PLS(n_components=3, backend=backend[0], device=backend[1]), _tabular()


def case_plscv(backend):
    return PLSCV(n_components=(1, 3), cv=3, backend=backend[0], device=backend[1]), _tabular()


def case_fwrf(backend):
    Xtr, Ytr, Xte, Yte, cand = _maps()
    est = FWRF(cand, alphas=[0.1, 1.0, 10.0], holdout=0.25, backend=backend[0], device=backend[1], n_threads=1)
    return est, (Xtr, Ytr, Xte, Yte)


def case_gnet(backend):
    if backend[0] == "numpy":
        pytest.skip("GNet is a torch network: its backends are torch on the CPU and on CUDA")
    return GNet(_tiny_prefilter(), width=2, batch_size=12, max_epochs=2, patience=2, dropout=0.0, device=backend[1],
                progress=False, n_threads=1), _images()


CASES = [case_ridge, case_ridgecv, case_selective, case_streaming, case_pls, case_plscv, case_fwrf, case_gnet]
PLANTED = {case_ridge, case_ridgecv, case_selective, case_streaming, case_pls, case_plscv, case_fwrf}
case_ids = [c.__name__[5:] for c in CASES]


@pytest.fixture(scope="module")
def fitted():
    """One fit per (case, backend), shared by the tests below."""
    cache = {}

    def get(case, backend):
        key = (case, backend)
        if key not in cache:
            est, (Xtr, Ytr, Xte, Yte) = case(backend)
            before = est.get_params(deep=False)
            hashes = {k: joblib.hash(v) for k, v in before.items() if isinstance(v, (np.ndarray, list, tuple))}
            out = est.fit(Xtr, Ytr)
            cache[key] = (est, out, before, hashes, (Xtr, Ytr, Xte, Yte))
        return cache[key]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_not_fitted_error_before_fit(case, backend):
    est, (Xtr, Ytr, Xte, Yte) = case(backend)
    for call in (lambda: est.predict(Xte), lambda: est.score(Xte, Yte), lambda: est.score_targets(Xte, Yte)):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_clone_and_untouched_parameters(case, backend, fitted):
    est, returned, before, hashes, _ = fitted(case, backend)
    assert returned is est
    after = est.get_params(deep=False)
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert after[k] is v, f"fit replaced the parameter {k!r}"
    for k, h in hashes.items():
        assert joblib.hash(after[k]) == h, f"fit modified the parameter {k!r} in place"
    twin = clone(est)
    assert type(twin) is type(est)
    assert twin.get_params(deep=False).keys() == before.keys()
    assert repr(twin) == repr(est)
    assert not [a for a in vars(twin) if a.endswith("_") and not a.startswith("_")], "clone kept fitted attributes"
    with pytest.raises(NotFittedError):
        twin.predict(fitted(case, backend)[4][2])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_score_is_mean_r2_over_targets(case, backend, fitted):
    est, _, _, _, (Xtr, Ytr, Xte, Yte) = fitted(case, backend)
    pred = np.asarray(est.predict(Xte), dtype=F64)
    y = np.asarray(Yte, dtype=F64)
    assert pred.shape == y.shape
    per_target = r2_score(y, pred, multioutput="raw_values")
    assert est.score(Xte, Yte) == pytest.approx(float(per_target.mean()), rel=1e-9, abs=1e-12)
    assert est.score(Xte, Yte) == pytest.approx(r2_score(y, pred), rel=1e-9, abs=1e-12)
    got = est.score_targets(Xte, Yte)
    assert got.shape == (y.shape[1],)
    np.testing.assert_allclose(got, per_target, rtol=1e-9, atol=1e-12)
    r = est.score_targets(Xte, Yte, scoring="pearson")
    np.testing.assert_allclose(r, [pearsonr(y[:, j], pred[:, j])[0] for j in range(y.shape[1])], rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="scoring must be one of"):
        est.score_targets(Xte, Yte, scoring="accuracy")
    if case in PLANTED:  # planted linear structure: a real fit, not just a consistent one
        assert est.score(Xte, Yte) > 0.5


def test_one_dimensional_target_scores_like_sklearn():
    Xtr, Ytr, Xte, Yte = _tabular()
    m = Ridge(alpha=1.0).fit(Xtr, Ytr[:, 0])
    pred = m.predict(Xte).astype(F64)
    assert m.score(Xte, Yte[:, 0]) == pytest.approx(r2_score(Yte[:, 0], pred))
    np.testing.assert_allclose(m.score_targets(Xte, Yte[:, 0]), [r2_score(Yte[:, 0], pred)])


# ---------------------------------------------------------------------------------------------
# one set of parameter names; the former names still work for one release
# ---------------------------------------------------------------------------------------------
RENAMED = [
    (FWRF, {"lambdas": [1.0, 2.0]}, {"alphas": [1.0, 2.0]}),
    (GNet, {"l1": 0.5}, {"alpha": 0.5}),
    (GNet, {"seed": 3}, {"random_state": 3}),
    (GNet, {"num_threads": 2}, {"n_threads": 2}),
]


@pytest.mark.parametrize("cls, old, new", RENAMED, ids=lambda v: getattr(v, "__name__", None) or str(list(v)[0]))
def test_former_parameter_names_warn_and_map(cls, old, new):
    (old_name, value), (new_name, _) = next(iter(old.items())), next(iter(new.items()))
    with pytest.warns(DeprecationWarning, match=f"'{old_name}' is renamed '{new_name}'"):
        est = cls(**old)
    assert est.get_params()[new_name] == value and old_name not in est.get_params()
    assert clone(est).get_params()[new_name] == value
    with pytest.warns(DeprecationWarning, match=f"'{new_name}'"):
        cls().set_params(**old)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        cls(bogus=1)


def test_former_fitted_attribute_names_warn():
    Xtr, Ytr, _, _, cand = _maps()
    m = FWRF(cand[:3], alphas=[1.0, 10.0]).fit(Xtr, Ytr)
    with pytest.warns(DeprecationWarning, match="lambda_ is renamed alpha_"):
        np.testing.assert_array_equal(m.lambda_, m.alpha_)
    with pytest.warns(DeprecationWarning, match="lambdas_ is renamed alphas_"):
        np.testing.assert_array_equal(m.lambdas_, m.alphas_)


def test_shared_parameter_names():
    """Penalty, seed, threads, metric and device are spelled the same wherever they exist."""
    forbidden = {"lambdas", "l1", "seed", "num_threads", "metric", "method"}
    for cls in (Ridge, RidgeCV, SelectiveRidge, StreamingSelectiveRidge, PLS, PLSCV, FWRF, GNet):
        names = set(cls().get_params())
        assert not names & forbidden, (cls.__name__, names & forbidden)
        if cls is not GNet:  # GNet trains in float32 (torch)
            assert "dtype" in names
        if cls is not StreamingSelectiveRidge:
            assert "device" in names, cls.__name__
    for cls in (RidgeCV, PLSCV):
        assert "scoring" in cls().get_params()
    assert "random_state" in FWRF().get_params() and "random_state" in GNet().get_params()
    assert "n_threads" in FWRF().get_params() and "n_threads" in GNet().get_params()


# ---------------------------------------------------------------------------------------------
# one backend module, one device rule
# ---------------------------------------------------------------------------------------------
def test_one_device_rule():
    assert resolve_device(None).type == ("cuda" if CUDA else "cpu")
    assert resolve_device(None, "numpy") == "cpu"
    with pytest.raises(ValueError, match="device must be None or 'cpu' with backend='numpy'"):
        resolve_device("cuda", "numpy")
    with pytest.raises(ValueError, match="device must be None, 'cpu' or 'cuda"):
        resolve_device("tpu")
    Xtr, Ytr, _, _ = _tabular()
    for est in (Ridge(), SelectiveRidge(n_feat=2), PLS(n_components=1)):
        with pytest.raises(ValueError, match="device must be None or 'cpu' with backend='numpy'"):
            est.set_params(device="cuda").fit(Xtr, Ytr)
    if not CUDA:
        maps, Y, _, _, cand = _maps()
        images, Yi, _, _ = _images()
        for est, (X, y) in ((Ridge(backend="torch", device="cuda"), (Xtr, Ytr)),
                            (RidgeCV(backend="torch", device="cuda"), (Xtr, Ytr)),
                            (SelectiveRidge(n_feat=2, backend="torch", device="cuda"), (Xtr, Ytr)),
                            (PLS(n_components=1, backend="torch", device="cuda"), (Xtr, Ytr)),
                            (PLSCV(cv=2, backend="torch", device="cuda"), (Xtr, Ytr)),
                            (FWRF(cand, backend="torch", device="cuda"), (maps, Y)),
                            (GNet(_tiny_prefilter(), device="cuda", progress=False), (images, Yi))):
            with pytest.raises(ValueError, match="CUDA is not available on this machine"):
                est.fit(X, y)


def test_default_torch_device_follows_the_rule():
    Xtr, Ytr, _, _ = _tabular()
    be = Ridge(backend="torch")._backend()
    assert be.device == resolve_device(None)
