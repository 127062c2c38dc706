"""Noise ceilings: how well could a perfect model do, given the noise in the measurements?

- ``split_half_reliability``: from repeated presentations, correlate the mean of a random half of
  the repeats with the mean of the other half (over stimuli), average over random splits, and
  correct to the full number of repeats with Spearman–Brown, 2r / (1 + r). The result estimates
  the fraction of the variance of the repeat-averaged response that is signal.
- ``ncsnr`` and ``ncsnr_to_noise_ceiling``: the Natural Scenes Dataset recipe (Allen et al. 2022):
  noise-ceiling SNR sqrt(signal variance) / sqrt(noise variance), and the percent of variance
  explainable when ``n_trials`` trials are averaged: 100 ncsnr² / (ncsnr² + 1/n_trials).
- ``normalize_by_ceiling``: divide a score by its ceiling, on a common scale.
"""

from __future__ import annotations

import warnings

import numpy as np

from brainlike._validate import check_choice
from brainlike.metrics.correlation import pearson


def _responses(responses, name="responses"):
    arr = np.asarray(responses, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be (n_stimuli, n_targets, n_repeats) (or (n_stimuli, n_repeats)); "
                         f"got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains inf values (use NaN for missing repeats)")
    if arr.shape[2] < 2:
        raise ValueError(f"{name} needs at least 2 repeats (last axis); got {arr.shape[2]}")
    if arr.shape[0] < 3:
        raise ValueError(f"{name} needs at least 3 stimuli (first axis); got {arr.shape[0]}")
    return arr


def split_half_reliability(responses, n_splits: int = 100, seed: int = 0):
    """Spearman–Brown corrected split-half reliability per target -> (n_targets,).

    responses: (n_stimuli, n_targets, n_repeats); NaN marks a missing repeat (stimuli may have
    different numbers of repeats). Each split shuffles every stimulus's available repeats and halves
    them (an odd one out goes to the second half); stimuli with fewer than 2 repeats are left out.
    The split-half r is averaged over ``n_splits`` splits before the correction.
    """
    arr = _responses(responses)
    if int(n_splits) < 1:
        raise ValueError(f"n_splits must be >= 1; got {n_splits!r}")
    rng = np.random.default_rng(seed)
    n_stim, n_targets, n_rep = arr.shape
    valid = np.isfinite(arr)
    count = valid.sum(axis=2)  # (n_stim, n_targets)
    half = count // 2
    filled = np.where(valid, arr, 0.0)
    rs = np.zeros(n_targets)
    for _ in range(int(n_splits)):
        keys = rng.random((n_stim, 1, n_rep))
        keys = np.where(valid, keys, np.inf)  # missing repeats sort last
        rank = np.argsort(np.argsort(keys, axis=2), axis=2)
        first = valid & (rank < half[:, :, None])
        second = valid & ~first
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (filled * first).sum(2) / first.sum(2)
            b = (filled * second).sum(2) / second.sum(2)
        a[half < 1] = np.nan
        b[half < 1] = np.nan
        with warnings.catch_warnings():  # undefined targets are counted once below, over all splits
            warnings.simplefilter("ignore", RuntimeWarning)
            rs += pearson(a, b, nan_policy="omit", min_samples=3)
    r = rs / int(n_splits)
    bad = ~np.isfinite(r)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} target(s) have no defined split-half correlation (constant or too few "
                      "repeated stimuli): NaN", RuntimeWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * r / (1 + r)


def ncsnr(responses):
    """NSD's noise-ceiling SNR per target from (n_stimuli, n_targets, n_repeats) responses (NaN = missing).

    Noise variance: mean over stimuli of the variance across repeats (ddof=1). Signal variance:
    total trial variance minus noise variance, floored at 0. For responses z-scored per target (as
    NSD's betas) the total variance is 1 and this is exactly NSD's formula.
    """
    arr = _responses(responses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        noise_var = np.nanmean(np.nanvar(arr, axis=2, ddof=1), axis=0)
        total = np.nanvar(arr.transpose(1, 0, 2).reshape(arr.shape[1], -1), axis=1, ddof=1)
    signal = np.clip(total - noise_var, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(signal) / np.sqrt(noise_var)


def ncsnr_to_noise_ceiling(ncsnr, n_trials=1):
    """Percent of variance explainable (NSD): 100 ncsnr² / (ncsnr² + 1 / n_trials)."""
    snr = np.asarray(ncsnr, dtype=np.float64)
    if np.any(snr < 0) or not np.all(np.isfinite(snr)):
        raise ValueError("ncsnr must be finite and >= 0")
    n = np.asarray(n_trials, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError(f"n_trials must be >= 1; got {n_trials!r}")
    out = 100.0 * snr**2 / (snr**2 + 1.0 / n)
    return float(out) if out.ndim == 0 else out


def normalize_by_ceiling(score, ceiling, ceiling_kind: str = "r", score_kind: str = "r"):
    """Score divided by its noise ceiling, both expressed on the score's scale.

    ceiling_kind: "r" (a ceiling correlation, e.g. sqrt of a reliability) or "r2" (a fraction of
    explainable variance, e.g. ``split_half_reliability`` or ``ncsnr_to_noise_ceiling(...) / 100``).
    score_kind: "r" (a Pearson r) or "r2" (an R² / variance fraction). A ceiling <= 0 gives NaN.
    """
    check_choice(ceiling_kind, "ceiling_kind", ("r", "r2"))
    check_choice(score_kind, "score_kind", ("r", "r2"))
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    if ceiling_kind == "r2" and np.nanmax(c, initial=0.0) > 1.0:
        raise ValueError("ceiling_kind='r2' expects a fraction in [0, 1]; got values > 1 (percent? divide by 100)")
    if ceiling_kind == "r" and score_kind == "r2":
        c = c**2 * np.sign(c)
    elif ceiling_kind == "r2" and score_kind == "r":
        c = np.sqrt(np.clip(c, 0.0, None)) * np.where(c > 0, 1.0, 0.0)
    bad = ~(c > 0)
    if np.any(bad):
        warnings.warn(f"{int(np.sum(bad))} ceiling value(s) are <= 0 or NaN: normalised score is NaN there",
                      RuntimeWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(bad, np.nan, s / np.where(bad, 1.0, c))
    return float(out) if out.ndim == 0 else out
