"""Retina warp: eccentricity-dependent resampling of an image around its centre.

Bashivan, Kar & DiCarlo (2019, Science) fed their V4 models images resampled like the
primate retina: dense sampling at the fovea, sparser towards the periphery, because
receptive-field size grows about linearly with eccentricity. With sampling density
proportional to ``1 / (e + e0)`` (RF size linear in eccentricity ``e``, ``e0`` the
"foveal" eccentricity where RF size doubles) the cumulative number of samples out to
``e`` is ``k log(1 + e / e0)``. The output pixel at radius ``rho`` therefore reads the
input at eccentricity

    e(rho) = e0 * (exp(rho / k) - 1),   k = R / log(1 + R / e0),

where ``R`` is the half-size of the image, so the image border maps onto itself. The
centre is magnified by ``R / (e0 log(1 + R/e0))`` and the border compressed by
``(R + e0) / (e0 log(1 + R/e0))`` relative to it; a large ``e0`` gives the identity.
Angles are preserved (the map is radial).
"""

from __future__ import annotations

import numpy as np


def retina_radius_map(radius, half_size: float, fovea: float):
    """Input eccentricity read by an output pixel at ``radius`` (same units as ``half_size``)."""
    e0 = fovea * half_size
    k = half_size / np.log1p(half_size / e0)
    return e0 * np.expm1(np.asarray(radius, dtype=np.float64) / k)


def retina_warp(image, fovea: float = 0.25, order: int = 1) -> np.ndarray:
    """Resample ``image`` (uint8 H x W x 3, or H x W) with retina-like eccentricity-dependent sampling.

    ``fovea`` is ``e0`` as a fraction of the image half-size (smaller = stronger warp;
    ``fovea -> inf`` = identity). ``order`` is the spline order of the interpolation
    (0 nearest, 1 bilinear). Returns an array of the same shape and dtype.
    """
    from scipy.ndimage import map_coordinates

    from .imageset import to_rgb_uint8

    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C); got shape {img.shape}")
    if not np.isfinite(fovea) or fovea <= 0:
        raise ValueError(f"fovea must be a finite number > 0; got {fovea!r}")
    if order not in (0, 1, 3):
        raise ValueError(f"order must be one of [0, 1, 3]; got {order!r}")
    if img.dtype != np.uint8:
        img = to_rgb_uint8(img, name="image")
    h, w = img.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    half = min(h, w) / 2.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    rho = np.hypot(dy, dx)
    ecc = retina_radius_map(rho, half, fovea)
    scale = np.divide(ecc, rho, out=np.ones_like(rho), where=rho > 0)
    coords = np.stack([cy + dy * scale, cx + dx * scale])
    channels = img[:, :, None] if img.ndim == 2 else img
    out = np.empty_like(channels)
    for c in range(channels.shape[2]):
        vals = map_coordinates(channels[:, :, c].astype(np.float32), coords, order=order, mode="nearest")
        out[:, :, c] = np.clip(np.round(vals), 0, 255).astype(np.uint8)
    return out[:, :, 0] if img.ndim == 2 else out
