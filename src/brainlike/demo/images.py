"""Procedurally generated natural-ish images (nothing to download, nothing shipped).

Four families, mixed evenly: oriented gratings and plaids, 1/f ("pink") noise textures, filled
shapes on textured backgrounds, and simple landscape-like scenes (sky gradient, horizon, blobs).
They span low-level (orientation, spatial frequency, colour) and higher-level (objects, layout)
variation, enough for a network's early and late layers to respond differently.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FAMILIES = ("grating", "texture", "shapes", "scene")


def _grid(size: int):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    return x - 0.5, y - 0.5


def _color(rng) -> np.ndarray:
    return rng.uniform(0, 1, 3)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def grating(rng, size: int) -> np.ndarray:
    x, y = _grid(size)
    img = np.zeros((size, size, 3))
    n = rng.integers(1, 3)  # grating or plaid
    base = rng.uniform(0.2, 0.8, 3)
    for _ in range(n):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 14)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)
        if rng.random() < 0.3:
            wave = np.sign(wave)  # square wave
        img += (rng.uniform(0.1, 0.4) * wave)[..., None] * (_color(rng) - 0.5)[None, None] * 2 / n
    if rng.random() < 0.5:  # Gabor-like window
        sigma = rng.uniform(0.15, 0.4)
        img *= np.exp(-(x**2 + y**2) / (2 * sigma**2))[..., None]
    return _to_uint8(base + img)


def pink_noise(rng, size: int) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    exponent = rng.uniform(0.8, 2.0)
    out = np.empty((size, size, 3))
    shared = rng.normal(size=(size, size // 2 + 1)) + 1j * rng.normal(size=(size, size // 2 + 1))
    mix = rng.uniform(0.3, 1.0)
    for c in range(3):
        own = rng.normal(size=shared.shape) + 1j * rng.normal(size=shared.shape)
        spec = (mix * shared + (1 - mix) * own) / f**exponent
        spec[0, 0] = 0
        band = np.fft.irfft2(spec, s=(size, size))
        out[..., c] = band / (band.std() + 1e-12)
    return _to_uint8(0.5 + rng.uniform(0.08, 0.2) * out + (rng.uniform(-0.15, 0.15, 3))[None, None])


def shapes(rng, size: int) -> np.ndarray:
    bg = Image.fromarray(pink_noise(rng, size) if rng.random() < 0.5 else grating(rng, size))
    bg = bg.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0, 2))))
    draw = ImageDraw.Draw(bg)
    for _ in range(rng.integers(1, 5)):
        kind = rng.choice(["ellipse", "rect", "polygon"])
        cx, cy = rng.uniform(0.15, 0.85, 2) * size
        r = rng.uniform(0.08, 0.3) * size
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == "ellipse":
            ar = rng.uniform(0.5, 1.5)
            draw.ellipse([cx - r, cy - r * ar, cx + r, cy + r * ar], fill=fill)
        elif kind == "rect":
            draw.rectangle([cx - r, cy - r * rng.uniform(0.3, 1), cx + r, cy + r], fill=fill)
        else:
            k = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.5, 1.0, k)
            draw.polygon([(float(cx + a * np.cos(t)), float(cy + a * np.sin(t))) for t, a in zip(ang, rad)],
                         fill=fill)
    return np.asarray(bg)


def scene(rng, size: int) -> np.ndarray:
    x, y = _grid(size)
    sky_top, sky_bottom = _color(rng) * 0.6 + 0.4, _color(rng) * 0.5 + 0.5
    t = (y + 0.5)[..., None]
    img = sky_top * (1 - t) + sky_bottom * t
    horizon = rng.uniform(-0.2, 0.25) + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * x + rng.uniform(0, 6))
    ground = (y > horizon)[..., None]
    ground_col = _color(rng) * 0.6
    texture = (pink_noise(rng, size) / 255.0 - 0.5) * 0.6
    img = np.where(ground, ground_col + texture, img)
    for _ in range(rng.integers(1, 6)):  # blobs: "trees", "rocks", "sun"
        cx, cy = rng.uniform(-0.45, 0.45, 2)
        sx, sy = rng.uniform(0.03, 0.15, 2)
        blob = np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))[..., None]
        img = img * (1 - blob) + _color(rng) * blob
    return _to_uint8(img)


def generate_images(n: int = 300, size: int = 96, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``n`` images (n, size, size, 3) uint8 and their ids ("img0001", ...), families interleaved."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16; got {size!r}")
    makers = {"grating": grating, "texture": pink_noise, "shapes": shapes, "scene": scene}
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        out[i] = makers[FAMILIES[i % len(FAMILIES)]](rng, size)
    return out, [f"img{i + 1:04d}" for i in range(n)]
