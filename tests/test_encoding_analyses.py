"""Transfer matrix, tuning analysis, synthetic transfer and comparison: planted structure and references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainlike.encoding import (
    FWRF,
    GNet,
    alexnet_prefilter,
    bipartite_partitions,
    comparison_table,
    layer_partitions,
    plot_comparison,
    plot_transfer_matrix,
    rf_grid,
    synthetic_transfer,
    transfer_matrix,
    tuning_analysis,
)
from brainlike.encoding.analyses import n_readout_features


@pytest.fixture(scope="module")
def roi_setup():
    torch.manual_seed(0)
    pf = alexnet_prefilter(pretrained=False)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(160, 40, 40, 3), dtype=np.uint8)
    g = GNet(pf, device="cpu", n_threads=1, progress=False)
    pre = g.prefilter_images(images)
    m = pre.maps.numpy()
    Y = np.stack([m[:, c : c + 3].mean((1, 2, 3)) for c in (0, 20, 40, 100, 120, 140)], 1)
    Y = (Y - Y.mean(0)) / Y.std(0) + 0.3 * rng.standard_normal(Y.shape)
    rois = {"s0": {"A": np.array([1, 1, 1, 0, 0, 0], bool), "B": np.array([0, 0, 0, 1, 1, 1], bool)}}
    model = GNet(pf, width=8, batch_size=16, max_epochs=4, patience=4, lr=1e-2, dropout=0.0, mode="roi", device="cpu",
                 n_threads=1, progress=False).fit(_sub(pre, 120), Y[:120], rois=rois)
    return model, pre, Y.astype(np.float32), rois


def _sub(pre, n, start=0):
    from brainlike.encoding import PrefilteredImages

    return PrefilteredImages(pre.maps[start : start + n])


def test_transfer_matrix(roi_setup, tmp_path):
    model, pre, Y, _ = roi_setup
    res = transfer_matrix(model, _sub(pre, 120), Y[:120], _sub(pre, 40, 120), Y[120:])
    assert list(res.relative.index) == ["A", "B"] and list(res.relative.columns) == ["A", "B"]
    np.testing.assert_allclose(np.diag(res.relative.values), 1.0)
    # each entry is the mean transferred accuracy over the mean of the target's own accuracy
    num = np.nanmean(res.accuracy[("A", "B")]["s0"])
    den = np.nanmean(res.own["B"]["s0"])
    assert res.relative.loc["A", "B"] == pytest.approx(num / den)
    own_direct = np.array([np.corrcoef(Y[120:, v], model.predict(_sub(pre, 40, 120))[:, v])[0, 1] for v in (3, 4, 5)])
    np.testing.assert_allclose(res.own["B"]["s0"], own_direct, rtol=1e-5)
    out = plot_transfer_matrix(res, tmp_path / "transfer.png")
    assert out.exists() and out.stat().st_size > 1000
    with pytest.raises(ValueError, match="mode='roi'"):
        joint = GNet(model.prefilter, mode="joint")
        joint.groups_ = {"all": {}}
        transfer_matrix(joint, _sub(pre, 10), Y[:10], _sub(pre, 10), Y[:10])


def test_synthetic_transfer_runs_on_teacher_predictions(roi_setup):
    model, pre, _, _ = roi_setup
    res = synthetic_transfer(model, _sub(pre, 120), _sub(pre, 40, 120), noise=0.1, student_params={"max_epochs": 2})
    assert res.relative.shape == (2, 2)
    np.testing.assert_allclose(np.diag(res.relative.values), 1.0)
    assert np.isfinite(res.relative.values).all()
    student = res.models["student"]
    assert set(student.groups_) == {"A", "B"} and student.max_epochs == 2
    with pytest.raises(ValueError, match="noise must be >= 0"):
        synthetic_transfer(model, _sub(pre, 10), _sub(pre, 10), noise=-1)


def test_tuning_analysis_on_planted_fwrf(rng):
    n = 300
    maps = [rng.standard_normal((n, 5, 8, 8)), rng.standard_normal((n, 5, 4, 4))]
    cand = rf_grid(n_sizes=1, min_size=0.3, max_size=0.3)
    # voxels 0-2 read layer 1 only, voxels 3-4 layer 2 only
    from brainlike.encoding import gaussian_fields

    g1 = gaussian_fields(cand[:1], 8)[0]
    g2 = gaussian_fields(cand[:1], 4)[0]
    f1 = np.einsum("nchw,hw->nc", maps[0], g1)
    f2 = np.einsum("nchw,hw->nc", maps[1], g2)
    Y = np.concatenate([f1 @ rng.standard_normal((5, 3)), f2 @ rng.standard_normal((5, 2))], 1)
    Y = Y / Y.std(0) + 0.2 * rng.standard_normal(Y.shape)
    model = FWRF(cand, alphas=[1.0, 10.0], dtype="float64").fit(maps, Y)
    parts = layer_partitions(model)
    res = tuning_analysis(lambda m: model.predict(maps, feature_mask=m), Y, parts, n_readout_features(model))
    np.testing.assert_array_equal(res.preferred, [0, 0, 0, 1, 1])
    assert np.all(res.inclusion[0, :3] > 90) and np.all(res.inclusion[1, :3] < 5)
    assert np.all(res.exclusion[1, 3:] > 90)
    np.testing.assert_allclose(res.spread, 0.5)  # one of two partitions carries each voxel
    # inclusion r by hand: prediction with the other layer's weights zeroed
    coef = model.coef_.copy()
    coef[5:] = 0
    manual = FWRF(cand, alphas=[1.0], dtype="float64").fit(maps, Y)
    manual.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_") or k.startswith("_cand")})
    manual.coef_ = coef
    p = manual.predict(maps)
    np.testing.assert_allclose(res.inclusion_r[0], [np.corrcoef(Y[:, v], p[:, v])[0, 1] for v in range(5)], rtol=1e-10)
    tab = res.table()
    assert len(tab) == 10 and set(tab.partition) == {"layer1", "layer2"}
    bi = bipartite_partitions(model)
    np.testing.assert_array_equal(bi["early"], np.arange(5))
    with pytest.raises(ValueError, match="outside"):
        tuning_analysis(lambda m: model.predict(maps, feature_mask=m), Y, {"bad": np.array([11])}, 10)


def test_gnet_partitions(roi_setup):
    model = roi_setup[0]
    parts = layer_partitions(model)
    assert len(parts) == 6 and all(len(v) == 8 for v in parts.values())
    bi = bipartite_partitions(model)
    np.testing.assert_array_equal(bi["late"], np.arange(24, 48))


def test_comparison_table_and_figure(tmp_path, rng):
    acc = {"fwRF": {"V1": rng.uniform(0, 0.5, 30), "V2": rng.uniform(0, 0.4, 20)},
           "GNet8j": {"V1": rng.uniform(0.1, 0.6, 30), "V2": rng.uniform(0.1, 0.5, 20)}}
    t = comparison_table(acc)
    assert t.shape[0] == 4
    row = t[(t.model == "GNet8j") & (t.roi == "V2")].iloc[0]
    assert row.median_r == pytest.approx(np.median(acc["GNet8j"]["V2"]))
    assert row.n_voxels == 20
    p = plot_comparison(acc, tmp_path / "cmp.png")
    assert p.exists() and p.stat().st_size > 1000
    with pytest.raises(ValueError, match="accuracies is empty"):
        comparison_table({})
    assert isinstance(t, pd.DataFrame)


def test_compare_fwrf_gnet8j_gnet8r(roi_setup, tmp_path):
    """AlexNet-fwRF (conv2 maps of the same pre-filter) vs GNet8j vs GNet8r per ROI on planted voxels."""
    from brainlike.encoding import compare_encoding_models

    model, pre, Y, rois = roi_setup
    prefilter = model.prefilter
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(160, 40, 40, 3), dtype=np.uint8)  # the fixture's images

    def alexnet_maps(batch):
        with torch.no_grad():
            return [prefilter(prefilter.preprocess(batch))]

    fw = FWRF(rf_grid(n_sizes=2, min_size=0.15, max_size=0.4), alphas=np.logspace(0, 4, 5), extractor=alexnet_maps)

    def make(mode):
        return GNet(prefilter, width=8, batch_size=16, max_epochs=4, patience=4, lr=1e-2, dropout=0.0, mode=mode,
                    device="cpu", n_threads=1, progress=False)

    table, acc = compare_encoding_models(images[:120], Y[:120], images[120:], Y[120:], rois=rois, fwrf=fw,
                                         make_gnet=make, out_dir=tmp_path)
    assert set(table.model) == {"fwRF", "GNet8j", "GNet8r"} and set(table.roi) == {"A", "B"}
    assert all(acc[m][r].shape == (3,) for m in acc for r in ("A", "B"))
    # the planted voxels read whole-map channel means: the fwRF with the true features finds them
    assert table[table.model == "fwRF"].median_r.min() > 0.3
    assert (tmp_path / "comparison.png").exists() and (tmp_path / "comparison.csv").exists()
