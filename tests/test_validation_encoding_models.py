"""v4-encoding-models: fwRF, GNet and brainlike's ridge on the same folds (real data: a few images)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike import validation
from brainlike.validation.encoding_models import layer_prefilter, ridge_out_of_fold


def test_ridge_out_of_fold_matches_scikit_learn_per_neuron():
    from sklearn.linear_model import RidgeCV as SkRidgeCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 40))
    W = rng.standard_normal((40, 3)) * np.array([1.0, 0.1, 0.0])  # planted: strong, weak, no signal
    Y = X @ W + rng.standard_normal((60, 3))
    folds = [(np.setdiff1d(np.arange(60), te), te) for te in np.array_split(rng.permutation(60), 4)]
    alphas = np.logspace(-1, 4, 6)
    ours = ridge_out_of_fold(X, Y, folds, alphas, inner_cv=3)
    ref = np.zeros_like(Y)
    for tr, te in folds:  # independent reference: scikit-learn, one neuron at a time, the same z-scoring (ddof=0)
        mu, sd = X[tr].mean(0), X[tr].std(0, ddof=0)
        for j in range(3):
            m = SkRidgeCV(alphas=alphas, cv=3).fit((X[tr] - mu) / sd, Y[tr, j])
            ref[te, j] = m.predict((X[te] - mu) / sd)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    r = [np.corrcoef(ours[:, j], Y[:, j])[0, 1] for j in range(3)]
    assert r[0] > 0.8 and r[0] > r[2]


def test_layer_prefilter_equals_efficientnet_stem_and_first_blocks():
    import torch

    from brainlike import models
    from brainlike.encoding.gnet import efficientnet_prefilter

    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ref = efficientnet_prefilter(n_blocks=5, pretrained=False)  # seed 0, through models.load
    ours = layer_prefilter(models.load("efficientnet_lite0", pretrained=False, seed=0), "block4")
    with torch.no_grad():
        a = ref(ref.preprocess(images))
        b = ours(ours.preprocess(images))
    assert a.shape == b.shape and a.dim() == 4
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="must give feature maps"):
        p = layer_prefilter(models.load("torchvision:alexnet", pretrained=False), "fc7")
        with torch.no_grad():
            p(p.preprocess(images))


def test_bad_model_list():
    with pytest.raises(ValueError, match="run must name models among"):
        validation.run_benchmark("v4-encoding-models", "torchvision:alexnet", ["conv2"], run=("svm",))


@pytest.mark.realdata
def test_fwrf_gnet_ridge_on_a_second_network(mirror, tmp_path, monkeypatch):
    from threadpoolctl import threadpool_limits

    from brainlike import folds

    made = []
    real = folds.kfold
    monkeypatch.setattr(folds, "kfold", lambda *a, **k: made.append((k.get("unit"), real(*a, **k))) or made[-1][1])
    from brainlike.encoding import rf_grid

    with threadpool_limits(1):  # the eigendecompositions of fwRF: one thread on a shared machine
        res = validation.run_benchmark(
            "v4-encoding-models", "torchvision:alexnet", ["conv2", "conv5"], weights="random", seed=0,
            sessions=("190923",), n_images=64, n_folds=2, inner_cv=3, candidates=rf_grid(n_sizes=2, min_spacing=2.5),
            gnet_params=dict(max_epochs=1, width=4), out_dir=tmp_path)
    outer = [f for unit, f in made if unit == "images"]  # the others: RidgeCV's inner folds
    assert len(outer) == 1 and len(outer[0]) == 2  # one set of folds per session, shared by the three models
    t = res.table
    assert list(t["model"]) == ["fwRF", "ridge (best layer)", "GNet8j"] and (t["n_neurons"] == 33).all()
    assert t.loc[t["model"] == "ridge (best layer)", "detail"].iloc[0] in ("conv2", "conv5")
    assert len(res.per_neuron) == 3 * 33 and np.isfinite(res.per_neuron["r"]).all()
    cmp = res.comparison.set_index("figure")
    assert np.isfinite(cmp.loc["190923 ridge (best layer) (random weights): mean r", "this network"])
    assert cmp.loc["190923 ridge (best layer): mean r", "EfficientNet-Lite0"] == 0.529
    assert all(e.ok is None for e in res.expectations if "lowest" not in e.quantity)
    assert (tmp_path / "per_neuron.csv").is_file() and (tmp_path / "v4_encoding_models.png").stat().st_size > 5_000
