"""GNet: readout math vs numpy, learning planted voxels, reproducibility, checkpoint resume, modes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from brainlike.encoding import GNet, alexnet_prefilter, cross_validate_gnet
from brainlike.encoding.gnet import PrefilteredImages, _modules, logtanh_np

N_IMG = 300


@pytest.fixture(scope="module")
def prefilter():
    torch.manual_seed(0)
    return alexnet_prefilter(pretrained=False)


@pytest.fixture(scope="module")
def planted(prefilter):
    """Images and voxels that respond to the mean activity of a few pre-filter channels (plus noise)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(N_IMG, 40, 40, 3), dtype=np.uint8)
    model = GNet(prefilter, device="cpu", n_threads=1)
    pre = model.prefilter_images(images).maps.numpy()  # (N, 192, 5, 5)
    nv = 6
    Y = np.zeros((N_IMG, nv), np.float32)
    for v in range(nv):
        c = rng.choice(pre.shape[1], 3, replace=False)
        Y[:, v] = pre[:, c].mean((2, 3)).sum(1)
    Y = (Y - Y.mean(0)) / Y.std(0)
    Y += 0.3 * rng.standard_normal(Y.shape).astype(np.float32)
    return images, Y


def _gnet(prefilter, **kw):
    opts = dict(width=8, batch_size=16, max_epochs=20, patience=20, lr=1e-2, device="cpu", random_state=0, progress=False,
                n_threads=1, dropout=0.0)
    opts.update(kw)
    return GNet(prefilter, **opts)


def test_readout_matches_numpy_reference():
    _, _, Readout = _modules()
    torch.manual_seed(0)
    ro = Readout([(4, 5, 5), (3, 2, 2)], n_voxels=3)
    with torch.no_grad():
        for f in ro.fields:
            f.normal_()
    groups = [torch.randn(7, 4, 5, 5), torch.randn(7, 3, 2, 2)]
    out = ro(groups).detach().numpy()
    ref = np.zeros((7, 3))
    for v in range(3):
        feats = []
        for g, f in zip(groups, ro.fields):
            field = f.detach().numpy()[v]
            field = np.exp(field - field.max())
            field /= field.sum()
            m = logtanh_np(g.numpy().reshape(7, g.shape[1], -1))
            feats.append(m @ field)
        phi = logtanh_np(np.concatenate(feats, 1))
        ref[:, v] = phi @ ro.weight.detach().numpy()[v] + ro.bias.detach().numpy()[v]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_learns_planted_voxels_and_not_noise(prefilter, planted):
    images, Y = planted
    model = _gnet(prefilter).fit(images[:240], Y[:240])
    r = model.score_targets(images[240:], Y[240:], scoring="pearson")
    assert np.median(r) > 0.6, r
    shuffled = np.random.default_rng(0).permutation(Y[:240])
    control = _gnet(prefilter).fit(images[:240], shuffled).score_targets(images[240:], Y[240:], scoring="pearson")
    assert np.median(control) < 0.3, control
    assert np.median(r) > np.median(control) + 0.3
    r2 = model.score_targets(images[240:], Y[240:])
    ref = r2_score(Y[240:].astype(np.float64), model.predict(images[240:]).astype(np.float64), multioutput="raw_values")
    np.testing.assert_allclose(r2, ref, rtol=1e-12)
    assert model.score(images[240:], Y[240:]) == pytest.approx(r2.mean()) and r2.mean() > 0.3
    fields = model.pooling_fields()
    assert fields[0].shape[0] == Y.shape[1]
    np.testing.assert_allclose(fields[0].reshape(Y.shape[1], -1).sum(1), 1.0, rtol=1e-5)


def test_seeded_reproducibility(prefilter, planted):
    images, Y = planted
    a = _gnet(prefilter, max_epochs=2).fit(images[:64], Y[:64, :2]).predict(images[:10])
    b = _gnet(prefilter, max_epochs=2).fit(images[:64], Y[:64, :2]).predict(images[:10])
    c = _gnet(prefilter, max_epochs=2, random_state=1).fit(images[:64], Y[:64, :2]).predict(images[:10])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_interrupted_fit_resumes_to_identical_result(prefilter, planted, tmp_path):
    images, Y = planted
    pre = _gnet(prefilter).prefilter_images(images[:80])
    full = _gnet(prefilter, max_epochs=4, patience=4).fit(pre, Y[:80, :3])
    interrupted = _gnet(prefilter, max_epochs=4, patience=4, checkpoint_dir=tmp_path)
    interrupted._stop_after_epoch = 1
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(pre, Y[:80, :3])
    assert (tmp_path / "all.pt").exists() and not (tmp_path / "all.pt.tmp").exists()
    resumed = _gnet(prefilter, max_epochs=4, patience=4, checkpoint_dir=tmp_path).fit(pre, Y[:80, :3])
    assert [h["epoch"] for h in resumed.history_["all"]] == [0, 1, 2, 3]
    np.testing.assert_array_equal(resumed.predict(pre), full.predict(pre))
    # a finished checkpoint is reused without training
    again = _gnet(prefilter, max_epochs=4, patience=4, checkpoint_dir=tmp_path).fit(pre, Y[:80, :3])
    np.testing.assert_array_equal(again.predict(pre), full.predict(pre))
    with pytest.raises(ValueError, match="other data or settings"):
        _gnet(prefilter, max_epochs=4, patience=4, checkpoint_dir=tmp_path).fit(pre, Y[:80, :2])
    # the key covers every value: two responses swapped (same shape, same sum) are other data
    swapped = np.array(Y[:80, :3])
    swapped[[60, 61], 1] = swapped[[61, 60], 1]
    with pytest.raises(ValueError, match="other data or settings"):
        _gnet(prefilter, max_epochs=4, patience=4, checkpoint_dir=tmp_path).fit(pre, swapped)
    # the checkpoint holds only tensors and a JSON string: it loads with weights_only=True
    import json

    import torch

    saved = torch.load(tmp_path / "all.pt", weights_only=True)
    assert json.loads(saved["meta"])["done"] is True and set(saved["trunk"]) == set(resumed.groups_["all"]["trunk"]
                                                                                      .state_dict())


def test_multi_subject_joint_and_roi_modes(prefilter, planted):
    images, Y = planted
    pre = _gnet(prefilter).prefilter_images(images)
    responses = {"A": Y[:100, :4], "B": Y[50:150, 2:]}
    index = {"A": np.arange(100), "B": np.arange(50, 150)}
    joint = _gnet(prefilter, max_epochs=2).fit(pre, responses, image_index=index)
    assert joint.predict(pre, subject="A").shape == (N_IMG, 4)
    assert joint.predict(pre, subject="B").shape == (N_IMG, 4)
    rois = {"A": {"r1": np.array([1, 1, 0, 0], bool), "r2": np.array([0, 0, 1, 1], bool)},
            "B": {"r1": np.array([1, 0, 0, 0], bool), "r2": np.array([0, 1, 1, 1], bool)}}
    roiwise = _gnet(prefilter, max_epochs=2, mode="roi").fit(pre, responses, image_index=index, rois=rois)
    assert set(roiwise.groups_) == {"r1", "r2"}
    pa = roiwise.predict(pre, subject="A")
    assert pa.shape == (N_IMG, 4) and np.all(pa.std(0) > 0)
    assert all(np.isfinite(r).all() for r in roiwise.holdout_r_.values())


def test_cross_validation_per_voxel(prefilter, planted):
    images, Y = planted
    r = cross_validate_gnet(lambda: _gnet(prefilter, max_epochs=6, patience=6), images, Y[:, :3], n_folds=2)
    assert r["s0"].shape == (3,)
    assert np.median(r["s0"]) > 0.3


def test_bad_input(prefilter, planted):
    images, Y = planted
    with pytest.raises(ValueError, match="mode='roi' needs rois"):
        _gnet(prefilter, mode="roi").fit(images[:40], Y[:40])
    with pytest.raises(ValueError, match="image_index"):
        _gnet(prefilter).fit(images[:40], {"s": Y[:40]}, image_index={"s": np.arange(39)})
    with pytest.raises(ValueError, match="not fitted"):
        _gnet(prefilter).predict(images[:4])
    with pytest.raises(ValueError, match="mode must be one of"):
        _gnet(prefilter, mode="both").fit(images[:40], Y[:40])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            _gnet(prefilter, device="cuda").fit(images[:40], Y[:40])
    with pytest.raises(ValueError, match="images must be uint8"):
        _gnet(prefilter).prefilter_images(np.zeros((4, 8, 8)))
    assert isinstance(_gnet(prefilter).prefilter_images(images[:3]), PrefilteredImages)


def test_typed_subject_inputs_match_the_dict_form(prefilter, planted):
    """SubjectResponses and BrainData (paired with an ImageSet by stimulus id) train the same network
    as the dict form of arrays, index arrays and ROI masks."""
    from brainlike.datasets import BrainData
    from brainlike.encoding import SubjectResponses
    from brainlike.stimuli import ImageSet

    images, Y = planted
    imgs = ImageSet.from_array(images[:60], ids=[f"im{i:03d}" for i in range(60)])
    rows = {"A": np.arange(40), "B": np.arange(20, 60)[::-1]}  # B answers the images in reverse order
    resp = {"A": Y[rows["A"], :3], "B": Y[rows["B"], 1:5]}
    rois = {"A": {"r1": np.array([1, 1, 0], bool), "r2": np.array([0, 0, 1], bool)},
            "B": {"r1": np.array([1, 0, 0, 1], bool), "r2": np.array([0, 1, 1, 0], bool)}}
    kw = dict(max_epochs=2, patience=2, mode="roi")
    ref = _gnet(prefilter, **kw).fit(imgs, resp, image_index=rows, rois=rois)
    typed = _gnet(prefilter, **kw).fit(
        imgs, {s: SubjectResponses(resp[s], rows[s], rois[s]) for s in resp})
    brains = [BrainData(resp[s], [f"im{i:03d}" for i in rows[s]], rois=rois[s], subject=s) for s in resp]
    from_brain = _gnet(prefilter, **kw).fit(imgs, brains)
    assert from_brain.subjects_ == ["A", "B"] and set(from_brain.groups_) == {"r1", "r2"}
    for s in resp:
        want = ref.predict(images[:60], subject=s)
        np.testing.assert_array_equal(typed.predict(images[:60], subject=s), want)
        np.testing.assert_array_equal(from_brain.predict(images[:60], subject=s), want)
    with pytest.raises(ValueError, match="ImageSet"):  # BrainData needs image ids to be paired
        _gnet(prefilter, **kw).fit(images[:60], brains)
    with pytest.raises(ValueError, match="missing"):  # a stimulus id that is not among the images
        bad = BrainData(resp["A"], ["nope"] + [f"im{i:03d}" for i in rows["A"][1:]], rois=rois["A"], subject="A")
        _gnet(prefilter, **kw).fit(imgs, bad)
    with pytest.raises(ValueError, match="do not also pass image_index"):
        _gnet(prefilter).fit(imgs, {"A": SubjectResponses(resp["A"], rows["A"])}, image_index={"A": rows["A"]})
