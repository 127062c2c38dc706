"""A tiny array backend (numpy or torch) chosen per estimator, never process-wide.

Only the handful of operations the encoding models need: the same algorithm then
runs on numpy, on torch CPU, and on a CUDA device.
"""

from __future__ import annotations

import numpy as np

from brainlike._validate import check_choice


def resolve_dtype(dtype):
    """float32 by default, float64 on request."""
    if dtype is None:
        return np.float32
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}")
    return dt.type


class Backend:
    """numpy or torch arrays on one device with one float dtype."""

    def __init__(self, name: str = "numpy", device=None, dtype=None):
        check_choice(name, "backend", ("numpy", "torch"))
        self.name = name
        self.np_dtype = resolve_dtype(dtype)
        if name == "numpy":
            if device not in (None, "cpu"):
                raise ValueError(f"device must be None or 'cpu' with backend='numpy'; got {device!r}")
            self.m = np
            self.device = "cpu"
            self.dtype = self.np_dtype
        else:
            import torch

            self.m = torch
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            device = str(device)
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise ValueError(
                    f"device={device!r} was requested but CUDA is not available on this machine "
                    "(torch.cuda.is_available() is False); use device='cpu'"
                )
            self.device = device
            self.dtype = torch.float32 if self.np_dtype == np.float32 else torch.float64

    # conversion -------------------------------------------------------------------------
    def asarray(self, x):
        if self.name == "numpy":
            if hasattr(x, "detach"):
                x = x.detach().cpu().numpy()
            return np.asarray(x, dtype=self.dtype)
        torch = self.m
        if isinstance(x, torch.Tensor):
            return x.to(device=self.device, dtype=self.dtype)
        return torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)

    def index(self, idx):
        """Integer index array usable on this backend's arrays."""
        if self.name == "numpy":
            return np.asarray(idx, dtype=np.int64)
        return self.m.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def sync(self):
        """Wait for queued device work (timing on CUDA)."""
        if self.name == "torch" and str(self.device).startswith("cuda"):
            self.m.cuda.synchronize()

    def to_numpy(self, x) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(x)
        return x.detach().cpu().numpy()

    # algebra ------------------------------------------------------------------------------
    def T(self, a):
        """Swap the last two axes."""
        return a.swapaxes(-1, -2) if self.name == "numpy" else a.transpose(-1, -2)

    def eigh(self, a):
        if self.name == "numpy":
            return np.linalg.eigh(a)
        return self.m.linalg.eigh(a)

    def sum(self, a, axis, keepdims=False):
        if self.name == "numpy":
            return a.sum(axis=axis, keepdims=keepdims)
        return a.sum(dim=axis, keepdim=keepdims)

    def mean(self, a, axis, keepdims=False):
        if self.name == "numpy":
            return a.mean(axis=axis, keepdims=keepdims)
        return a.mean(dim=axis, keepdim=keepdims)

    def std(self, a, axis, keepdims=False):
        if self.name == "numpy":
            return a.std(axis=axis, keepdims=keepdims)
        return a.std(dim=axis, keepdim=keepdims, correction=0)

    def reshape(self, a, shape):
        return a.reshape(shape)

    def concat(self, arrays, axis):
        if self.name == "numpy":
            return np.concatenate(arrays, axis=axis)
        return self.m.cat(arrays, dim=axis)

    def zeros(self, shape):
        if self.name == "numpy":
            return np.zeros(shape, dtype=self.dtype)
        return self.m.zeros(shape, dtype=self.dtype, device=self.device)

    def maximum_scalar(self, a, value):
        if self.name == "numpy":
            return np.maximum(a, value)
        return self.m.clamp(a, min=value)


def apply_nonlinearity(be: Backend, x, nonlinearity):
    """Compressive nonlinearity on pooled features (sign-preserving)."""
    if nonlinearity is None:
        return x
    if callable(nonlinearity):
        return nonlinearity(x)
    m = be.m
    if nonlinearity == "log1p":
        return m.sign(x) * m.log1p(m.abs(x))
    if nonlinearity == "sqrt":
        return m.sign(x) * m.sqrt(m.abs(x))
    if nonlinearity == "logtanh":  # the GNet readout nonlinearity: log(1+|x|) tanh(x)
        return m.log1p(m.abs(x)) * m.tanh(x)
    raise ValueError(
        f"nonlinearity must be None, 'log1p', 'sqrt', 'logtanh' or a callable; got {nonlinearity!r}"
    )


NONLINEARITIES = (None, "log1p", "sqrt", "logtanh")
