"""fwRF's receptive-field geometry and pooled inputs: the grid of candidate Gaussian fields, the fields
themselves on a feature map, their validation against the aperture, the output nonlinearity, and the
feature maps held for pooling.

Split from :mod:`brainlike.encoding.fwrf` (which re-exports every name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import erf

from brainlike._validate import check_positive

NONLINEARITIES = (None, "log1p", "sqrt", "logtanh")


def apply_nonlinearity(be, x, nonlinearity):
    """Compressive nonlinearity on pooled features (sign-preserving); ``be``: a ``brainlike._backend`` backend."""
    if nonlinearity is None:
        return x
    if callable(nonlinearity):
        return nonlinearity(x)
    m = be.xp
    if nonlinearity == "log1p":
        return m.sign(x) * m.log1p(m.abs(x))
    if nonlinearity == "sqrt":
        return m.sign(x) * m.sqrt(m.abs(x))
    if nonlinearity == "logtanh":  # the GNet readout nonlinearity: log(1+|x|) tanh(x)
        return m.log1p(m.abs(x)) * m.tanh(x)
    raise ValueError(f"nonlinearity must be None, 'log1p', 'sqrt', 'logtanh' or a callable; got {nonlinearity!r}")


# --------------------------------------------------------------------------------------------
# candidate grid and Gaussian pooling fields
# --------------------------------------------------------------------------------------------
def rf_grid(
    sizes=None,
    *,
    n_sizes: int = 8,
    min_size: float = 0.04,
    max_size: float = 0.4,
    min_spacing: float = 1.4,
    aperture: float = 1.0,
    extent: float = 1.1,
) -> np.ndarray:
    """Candidate fields (n, 3) of (x, y, sigma) in the units of ``aperture``.

    As in the paper: log-spaced sizes; for each size a square lattice of centres spanning
    ``extent * aperture`` (a little beyond the image) with spacing about ``min_spacing``
    sizes. The defaults give the paper's 875 candidates.
    """
    check_positive(aperture, "aperture")
    check_positive(min_spacing, "min_spacing")
    if sizes is None:
        check_positive(min_size, "min_size")
        if max_size < min_size:
            raise ValueError(f"max_size must be >= min_size; got {max_size} < {min_size}")
        sizes = np.exp(np.linspace(np.log(min_size), np.log(max_size), int(n_sizes)))
    sizes = np.atleast_1d(np.asarray(sizes, dtype=np.float64))
    check_positive(sizes, "sizes")
    span = extent * aperture
    rows = []
    for s in sizes:
        k = max(1, int(np.ceil(span / (s * min_spacing))))
        pos = np.linspace(-span / 2, span / 2, k) if k > 1 else np.zeros(1)
        xx, yy = np.meshgrid(pos, pos)
        rows.append(np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, s)], axis=1))
    return np.concatenate(rows, axis=0)


def gaussian_fields(candidates, n_pix: int, aperture: float = 1.0, dtype=np.float64) -> np.ndarray:
    """Pooling weights (n_candidates, n_pix, n_pix): Gaussian mass falling in each map pixel.

    The image spans [-aperture/2, aperture/2] in x (left to right) and y (bottom to top;
    row 0 of a map is the top). Each weight is the exact integral of the normalised
    Gaussian over the pixel (erf), so small fields on coarse maps keep their mass.
    """
    cand = np.asarray(candidates, dtype=np.float64).reshape(-1, 3)
    edges = np.linspace(-aperture / 2, aperture / 2, n_pix + 1)
    x, y, s = cand[:, 0:1], cand[:, 1:2], cand[:, 2:3] * np.sqrt(2.0)
    cdf_x = 0.5 * erf((edges[None, :] - x) / s)
    gx = np.diff(cdf_x, axis=1)  # (k, n_pix) columns left -> right
    top_down = edges[::-1]
    cdf_y = 0.5 * erf((top_down[None, :] - y) / s)
    gy = -np.diff(cdf_y, axis=1)  # (k, n_pix) rows top -> bottom
    return (gy[:, :, None] * gx[:, None, :]).astype(dtype)


def check_candidates(candidates, aperture: float, extent: float = 1.1) -> np.ndarray:
    """Validate a candidate array (n, 3); every field must sit on (or just beyond) the image."""
    cand = np.asarray(candidates, dtype=np.float64)
    if cand.ndim != 2 or cand.shape[1] != 3 or cand.shape[0] == 0:
        raise ValueError(f"candidates must be an array (n_candidates, 3) of (x, y, sigma); got shape {cand.shape}")
    if not np.isfinite(cand).all():
        raise ValueError("candidates contains NaN/inf values")
    bad = np.flatnonzero(cand[:, 2] <= 0)
    if bad.size:
        raise ValueError(f"candidates sigma must be > 0; candidate {bad[0]} has sigma {cand[bad[0], 2]}")
    limit = extent * aperture / 2 + 1e-9
    out = np.flatnonzero((np.abs(cand[:, 0]) > limit) | (np.abs(cand[:, 1]) > limit))
    if out.size:
        i = out[0]
        raise ValueError(
            f"{out.size} candidate field(s) lie outside the aperture: candidate {i} has centre "
            f"({cand[i, 0]:.3g}, {cand[i, 1]:.3g}) but |x|, |y| must be <= {extent} * aperture / 2 = {limit:.3g} "
            f"(aperture={aperture}); use a larger aperture or a smaller grid"
        )
    return cand


# --------------------------------------------------------------------------------------------
# feature-map sources: arrays, tensors, LayerFeatures (.maps), or images + an extractor
# --------------------------------------------------------------------------------------------
class _Maps:
    """Uniform access to a list of per-layer map sources, each (n, C, H, W)."""

    def __init__(self, X, name="X"):
        if isinstance(X, Mapping):
            X = list(X.values())
        if hasattr(X, "shape") and len(getattr(X, "shape", ())) == 4:
            X = [X]
        if not isinstance(X, Sequence) or isinstance(X, (str, bytes)) or len(X) == 0:
            raise ValueError(
                f"{name} must be a feature map array (n, C, H, W) or a non-empty list of them (one per layer); "
                f"got {type(X).__name__}"
            )
        self.sources = list(X)
        self.shapes = []
        for i, src in enumerate(self.sources):
            shape = self._shape(src)
            if len(shape) != 4:
                raise ValueError(f"{name}[{i}] must be 4-D feature maps (n, C, H, W); got shape {tuple(shape)}")
            if shape[2] != shape[3]:
                raise ValueError(
                    f"{name}[{i}] must have square maps (H == W) for the square candidate grid; "
                    f"got H={shape[2]}, W={shape[3]} (crop or resize the maps)"
                )
            self.shapes.append(tuple(int(v) for v in shape))
        ns = {s[0] for s in self.shapes}
        if len(ns) != 1:
            raise ValueError(f"all layers of {name} must have the same number of samples; got {[s[0] for s in self.shapes]}")
        self.n = self.shapes[0][0]
        self.channels = [s[1] for s in self.shapes]
        self.n_pix = [s[2] for s in self.shapes]

    @staticmethod
    def _shape(src):
        if hasattr(src, "unit_shape") and hasattr(src, "maps"):
            return (src.shape[0], *tuple(src.unit_shape))
        return tuple(src.shape)

    def batch(self, idx):
        """List of arrays (b, C, H, W) for the samples ``idx`` (sorted ints); a run of consecutive
        samples is sliced (a view: no copy of the maps, which pooling reads once per field batch)."""
        idx = np.asarray(idx)
        run = idx.size > 0 and idx[-1] - idx[0] + 1 == idx.size
        out = []
        for src in self.sources:
            if hasattr(src, "unit_shape") and hasattr(src, "maps"):
                out.append(src.maps(idx))
            elif run:
                part = src[int(idx[0]) : int(idx[-1]) + 1]
                out.append(part if hasattr(part, "detach") else np.asarray(part))
            elif hasattr(src, "detach"):
                out.append(src[idx])
            else:
                out.append(np.asarray(src[idx]))
        return out


# --------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------
