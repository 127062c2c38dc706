"""The embedded demo: generated images, the simulated cortex, and a small end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.demo import ROI_LAYERS, generate_images, simulate_cortex
from brainlike.demo.images import FAMILIES


def test_images_are_deterministic_varied_and_valid():
    a, ids = generate_images(12, 32, seed=1)
    b, _ = generate_images(12, 32, seed=1)
    c, _ = generate_images(12, 32, seed=2)
    assert a.shape == (12, 32, 32, 3) and a.dtype == np.uint8
    assert ids[:2] == ["img0001", "img0002"] and len(set(ids)) == 12
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # every image has structure (not flat), and the families differ from one another
    assert (a.reshape(12, -1).std(axis=1) > 3).all()
    assert len(FAMILIES) == 4 and len({a[i].tobytes() for i in range(12)}) == 12
    with pytest.raises(ValueError, match="n must be"):
        generate_images(0)
    with pytest.raises(ValueError, match="size must be"):
        generate_images(3, size=4)


def _layers(rng, n):
    """Independent random 'layers' (spatial maps) named like the demo's source layers."""
    from brainlike.features import LayerFeatures

    out = {}
    for k, layer in enumerate(dict.fromkeys(ROI_LAYERS.values())):
        maps = rng.standard_normal((n, 3, 2, 2)).astype(np.float32)  # 12 units < 80 images
        out[layer] = LayerFeatures(maps.reshape(n, -1), [f"i{i}" for i in range(n)], (3, 2, 2), name=layer)
    return out


def test_simulated_rois_read_out_their_own_layer(rng):
    n = 80
    handles = _layers(rng, n)
    ids = [f"i{i}" for i in range(n)]
    subjects = simulate_cortex(handles, ids, ROI_LAYERS, n_voxels=20, n_test=20, train_reps=2, test_reps=3,
                               noise=0.0, n_subjects=2, seed=0)
    assert len(subjects) == 2 and subjects[0].subject == "sim-01"
    b = subjects[0]
    assert b.roi_names == list(ROI_LAYERS) and b.n_voxels == 100
    assert (b.split == "train").sum() == 60 * 2 and (b.split == "test").sum() == 20 * 3
    test = b.select_split("test").average_repetitions()
    assert test.n_samples == 20 and set(test.stimulus_ids) == set(ids[60:])
    # without noise each voxel is exactly a linear read-out of its own layer, not of the others
    first = np.unique(b.stimulus_ids, return_index=True)[1]
    resp = b.responses[first]
    rows = [ids.index(i) for i in b.stimulus_ids[first]]
    for r, layer in ROI_LAYERS.items():
        y = resp[:, b.rois[r]]
        for other, h in handles.items():
            x = np.column_stack([np.asarray(h)[rows], np.ones(len(rows))])
            resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
            frac = (resid**2).sum() / ((y - y.mean(0)) ** 2).sum()
            assert (frac < 1e-6) if other == layer else (frac > 0.05), (r, other, frac)
    # subjects differ (own receptive fields), and noise is added when asked
    assert not np.allclose(subjects[0].responses, subjects[1].responses)
    noisy = simulate_cortex(handles, ids, ROI_LAYERS, n_voxels=20, n_test=20, noise=1.0, n_subjects=1)[0]
    assert np.abs(noisy.responses[:120] - b.responses[:120]).mean() > 0.5
    with pytest.raises(ValueError, match="n_test"):
        simulate_cortex(handles, ids, ROI_LAYERS, n_test=79)


@pytest.mark.slow
def test_small_demo_recovers_the_hierarchy(tmp_path):
    """The whole demo at a small size: real EfficientNet-Lite0 features, decoding, scores, report."""
    from brainlike.demo import run_demo

    res = run_demo(tmp_path / "demo", n_images=100, image_size=48, input_size=64, n_voxels=40, n_subjects=1,
                   units_per_layer=60, n_boot=30, n_perm=30, scheduler="synchronous", progress=False,
                   analyses=("decoding",))
    s = res.scores.set_index(["dnn", "kind"])["score"]
    assert s[("EfficientNet-Lite0", "decoding")] > 0.3
    assert abs(s[("EfficientNet-Lite0 (layer-shuffled)", "decoding")]) < 0.3
    assert res.report is not None and res.report.is_file()
    assert (res.results_dir / "bh_scores.csv").is_file() and (res.results_dir / "provenance.json").is_file()
