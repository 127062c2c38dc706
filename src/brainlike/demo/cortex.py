"""A simulated visual cortex whose hierarchy is known: each ROI reads out one network layer.

Every voxel of ROI k pools, with a Gaussian spatial receptive field, a few random channels of
the k-th source layer (successively deeper layers for V1 -> HVC), like a population receptive
field; its response to each trial is that signal (unit variance over images) plus independent
Gaussian noise. A network whose layers are in the right order should therefore show a positive
BH score; the same network with its units shuffled across layers should not.
"""

from __future__ import annotations

import numpy as np

from brainlike.pipeline.jobs import read_units


def _maps(handle, n_rows: int) -> np.ndarray:
    """(n, C, H, W) for spatial layers, (n, units, 1, 1) otherwise."""
    if hasattr(handle, "maps") and len(getattr(handle, "unit_shape", ())) == 3:
        return np.asarray(handle.maps(), dtype=np.float32)
    arr = read_units(handle, np.arange(handle.shape[1]))
    return arr.reshape(n_rows, arr.shape[1], 1, 1)


def voxel_signals(maps: np.ndarray, n_voxels: int, rng, n_channels: int = 8, rf_size=(0.08, 0.25)) -> np.ndarray:
    """(n_images, n_voxels) signals: Gaussian-RF pooling of random channels, z-scored over images."""
    n, c, h, w = maps.shape
    yy, xx = np.mgrid[0:h, 0:w]
    centers = rng.uniform(0.2, 0.8, size=(n_voxels, 2)) * np.array([h, w])
    sizes = rng.uniform(*rf_size, size=n_voxels) * max(h, w)
    g = np.exp(-((yy[None] - centers[:, 0, None, None]) ** 2 + (xx[None] - centers[:, 1, None, None]) ** 2)
               / (2 * np.maximum(sizes, 0.5)[:, None, None] ** 2)).reshape(n_voxels, h * w)
    g /= g.sum(axis=1, keepdims=True)
    weights = np.zeros((n_voxels, c))
    k = min(n_channels, c)
    for v in range(n_voxels):
        weights[v, rng.choice(c, size=k, replace=False)] = rng.uniform(0.5, 1.0, k) * rng.choice([-1, 1], k)
    pooled = np.tensordot(maps.reshape(n, c, h * w).astype(np.float64), g, axes=([2], [1]))  # (n, c, v)
    sig = np.einsum("ncv,vc->nv", pooled, weights, optimize=True)
    sig -= sig.mean(axis=0)
    sd = sig.std(axis=0)
    sd[sd == 0] = 1
    return sig / sd


def simulate_cortex(handles: dict, ids: list[str], roi_layers: dict[str, str], *, n_voxels: int = 100,
                    n_test: int = 60, train_reps: int = 2, test_reps: int = 5, noise: float = 1.5,
                    n_subjects: int = 2, seed: int = 0):
    """BrainData per subject: ROI ``r`` reads out layer ``roi_layers[r]`` of ``handles``.

    The last ``n_test`` images form the test split (``test_reps`` trials each, averaged by the
    pipeline); the others are training images shown ``train_reps`` times. Each subject has its
    own voxels (receptive fields, channels) and noise.
    """
    from brainlike.datasets import BrainData

    n = len(ids)
    if not 3 <= n_test < n - 2:
        raise ValueError(f"n_test must be in [3, {n - 3}] for {n} images; got {n_test}")
    maps = {r: _maps(handles[layer], n) for r, layer in roi_layers.items()}
    ids = np.asarray(ids, dtype=str)
    train_idx, test_idx = np.arange(n - n_test), np.arange(n - n_test, n)
    subjects = []
    for s in range(n_subjects):
        rng = np.random.default_rng([seed, s])
        signal = np.hstack([voxel_signals(maps[r], n_voxels, rng) for r in roi_layers])
        order = np.concatenate([np.tile(train_idx, train_reps), np.tile(test_idx, test_reps)])
        split = np.array(["train"] * (train_idx.size * train_reps) + ["test"] * (test_idx.size * test_reps))
        responses = signal[order] + noise * rng.standard_normal((order.size, signal.shape[1]))
        rois = {}
        for k, r in enumerate(roi_layers):
            mask = np.zeros(signal.shape[1], dtype=bool)
            mask[k * n_voxels:(k + 1) * n_voxels] = True
            rois[r] = mask
        subjects.append(BrainData(responses.astype(np.float32), ids[order], rois=rois, split=split,
                                  subject=f"sim-{s + 1:02d}",
                                  provenance={"dataset": "brainlike demo: simulated cortex",
                                              "roi_layers": dict(roi_layers), "noise": noise, "seed": seed}))
    return subjects
