"""Array backends for the regression engine: numpy (always) or torch (CPU or CUDA).

An estimator builds its own backend from its ``backend``/``device``/``dtype`` parameters at fit
time; nothing is registered process-wide, so two estimators in one process can use different
backends. Only the few operations whose spelling differs between numpy and torch live here; plain
arithmetic, ``@`` and ``.T`` work on both array types.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BACKENDS = ("numpy", "torch")


def resolve_dtype(dtype) -> np.dtype:
    """float32 unless float64 is asked for (the engine never computes in other precisions)."""
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def get_backend(name: str = "numpy", device=None, dtype=None) -> "NumpyBackend | TorchBackend":
    """Return a backend object; fail now (before any heavy work) if it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}; got {name!r}")
    dt = resolve_dtype(dtype)
    if name == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"device must be None or 'cpu' with backend='numpy'; got {device!r}")
        return NumpyBackend(dt)
    try:
        import torch  # noqa: F401
    except ImportError as err:  # pragma: no cover - torch is a core dependency
        raise ValueError("backend='torch' needs PyTorch, which is not installed (pip install torch)") from err
    return TorchBackend(dt, device)


_BLAS_CONTROLLER = None


def _single_threaded_blas():
    """Context limiting BLAS to one thread.

    ``threadpoolctl.threadpool_limits`` rescans every loaded library on each call
    (30-200 ms); one cached controller makes the limit cheap for small, frequent fits.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def _n_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class NumpyBackend:
    name = "numpy"
    device = "cpu"

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    # conversions
    def asarray(self, x):
        return np.asarray(x, dtype=self.dtype)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def index(self, idx):
        return np.asarray(idx)

    # reductions / helpers
    def mean0(self, a):
        return a.mean(axis=0)

    def sum0(self, a):
        return a.sum(axis=0)

    def zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)

    def eye(self, n):
        return np.eye(n, dtype=self.dtype)

    def sqrt(self, a):
        return np.sqrt(a)

    def abs(self, a):
        return np.abs(a)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def gram(self, a):
        """a.T @ a (numpy hands the same buffer transposed to BLAS syrk: half the FLOPs)."""
        return a.T @ a

    def add_diag(self, a, value, inplace=False):
        out = a if inplace else a.copy()
        diag = np.einsum("ii->i", out)  # a writeable view of the diagonal
        diag += value
        return out

    def diag(self, a):
        return np.diagonal(a).copy()

    def eigh(self, a):
        """Symmetric eigendecomposition with LAPACK's divide-and-conquer driver (syevd)."""
        import scipy.linalg

        return scipy.linalg.eigh(a, driver="evd", check_finite=False, overwrite_a=False)

    def solve_spd(self, a, b):
        """Solve a x = b for one symmetric positive (semi)definite a; falls back to lstsq if singular."""
        import scipy.linalg

        try:
            return scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True, check_finite=False), b,
                                          check_finite=False)
        except np.linalg.LinAlgError:
            return scipy.linalg.lstsq(a, b, check_finite=False)[0]

    def top_abs(self, c, k):
        """Row indices of the k largest |c| in each column, sorted ascending per column -> (n_cols, k)."""
        a = np.abs(c.T)  # (n_cols, n_rows) contiguous: partition along the fast axis
        part = np.argpartition(a, a.shape[1] - k, axis=1)[:, a.shape[1] - k:]
        return np.sort(part, axis=1)

    def gather_solve(self, gram, rhs, idx):
        """For each target j solve gram[I_j, I_j] x = rhs[j]; idx (n, k), rhs (n, k, r) -> (n, k, r).

        Small Cholesky factorisations do not scale over BLAS threads, so units are split over a
        pool of single-threaded workers instead (LAPACK and numpy's gather release the GIL).
        """
        import scipy.linalg
        n, k = idx.shape
        out = np.empty(rhs.shape, dtype=self.dtype)
        flat = gram.reshape(-1)
        p = gram.shape[1]

        def work(lo, hi):
            for j in range(lo, hi):
                ij = idx[j]
                block = np.take(flat, ij[:, None] * p + ij[None, :])
                try:
                    fac = scipy.linalg.cho_factor(block, lower=True, check_finite=False, overwrite_a=True)
                    out[j] = scipy.linalg.cho_solve(fac, rhs[j], check_finite=False)
                except np.linalg.LinAlgError:
                    block = np.take(flat, ij[:, None] * p + ij[None, :])
                    out[j] = scipy.linalg.lstsq(block, rhs[j], check_finite=False)[0]

        workers = min(_n_threads(), n)
        bounds = np.linspace(0, n, workers + 1).astype(int)
        with _single_threaded_blas():
            if workers == 1:
                work(0, n)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(lambda b: work(*b), zip(bounds[:-1], bounds[1:])))
        return out


class TorchBackend:
    name = "torch"

    def __init__(self, dtype: np.dtype, device=None):
        import torch

        self.torch = torch
        self.dtype = dtype
        self.tdtype = torch.float32 if dtype == np.float32 else torch.float64
        dev = torch.device("cpu" if device is None else device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asked for CUDA, but torch.cuda.is_available() is False here")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be None, 'cpu' or 'cuda[:i]'; got {device!r}")
        self.device = dev

    def asarray(self, x):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(device=self.device, dtype=self.tdtype)
        return t.as_tensor(np.asarray(x, dtype=self.dtype), device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def index(self, idx):
        return self.torch.as_tensor(np.asarray(idx), device=self.device, dtype=self.torch.long)

    def mean0(self, a):
        return a.mean(dim=0)

    def sum0(self, a):
        return a.sum(dim=0)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.tdtype, device=self.device)

    def eye(self, n):
        return self.torch.eye(n, dtype=self.tdtype, device=self.device)

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def abs(self, a):
        return self.torch.abs(a)

    def where(self, cond, a, b):
        t = self.torch
        return t.where(cond, t.as_tensor(a, dtype=self.tdtype, device=self.device),
                       t.as_tensor(b, dtype=self.tdtype, device=self.device))

    def gram(self, a):
        return a.T @ a

    def add_diag(self, a, value, inplace=False):
        out = a if inplace else a.clone()
        out.diagonal().add_(value)
        return out

    def diag(self, a):
        return a.diagonal().clone()

    def eigh(self, a):
        return self.torch.linalg.eigh(a)

    def solve_spd(self, a, b):
        t = self.torch
        chol, info = t.linalg.cholesky_ex(a)
        if int(info) == 0:
            return t.cholesky_solve(b, chol)
        return t.linalg.lstsq(a, b).solution

    def top_abs(self, c, k):
        idx = self.torch.topk(self.torch.abs(c), k, dim=0, sorted=False).indices
        return self.torch.sort(idx.T, dim=1).values

    def gather_solve(self, gram, rhs, idx):
        t = self.torch
        blocks = gram[idx[:, :, None], idx[:, None, :]]
        chol, info = t.linalg.cholesky_ex(blocks)
        out = t.cholesky_solve(rhs, chol)
        bad = t.nonzero(info).flatten()
        for j in bad.tolist():  # singular blocks (alpha = 0 on rank-deficient inputs)
            out[j] = t.linalg.lstsq(blocks[j], rhs[j]).solution
        return out
