"""Array backends of every estimator: numpy (always) or torch (CPU or CUDA).

An estimator builds its own backend from its ``backend``/``device``/``dtype`` parameters at fit
time; nothing is registered process-wide, so two estimators in one process can use different
backends. Only the few operations whose spelling differs between numpy and torch live here; plain
arithmetic, ``@`` and ``.T`` work on both array types.

One rule for every estimator (``brainlike.linear``, ``FWRF``, ``GNet``):

- ``dtype``: float32 unless float64 is asked for; :func:`resolve_dtype` returns a ``numpy.dtype``.
- ``device`` (:func:`resolve_device`): with ``backend="numpy"`` only ``None`` or ``"cpu"``; with
  torch, ``None`` means CUDA when ``torch.cuda.is_available()``, else the CPU, and an explicit
  ``"cuda[:i]"`` without CUDA is an error (never a silent fall-back to the CPU).
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


def resolve_device(device, backend: str = "torch"):
    """The device an estimator runs on: ``"cpu"`` for numpy; for torch a ``torch.device``
    (``None`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error)."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"device must be None or 'cpu' with backend='numpy'; got {device!r}")
        return "cpu"
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be None, 'cpu' or 'cuda[:i]'; got {device!r}") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda[:i]'; got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine "
                         "(torch.cuda.is_available() is False); use device='cpu'")
    return dev


def get_backend(name: str = "numpy", device=None, dtype=None) -> "NumpyBackend | TorchBackend":
    """Return a backend object; fail now (before any heavy work) if it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}; got {name!r}")
    dt = resolve_dtype(dtype)
    if name == "numpy":
        resolve_device(device, "numpy")
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
    xp = np  # the array namespace (element-wise functions such as log1p, tanh, sign)

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    # conversions
    def asarray(self, x):
        if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=self.dtype)

    def sync(self):
        """Wait for queued device work (nothing to wait for on numpy)."""

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

    def eigh(self, a, overwrite=False):
        """Symmetric eigendecomposition with LAPACK's divide-and-conquer driver (syevd)."""
        import scipy.linalg

        return scipy.linalg.eigh(a, driver="evd", check_finite=False, overwrite_a=overwrite)

    # batched (..., m, n) operations along named axes
    def batched_eigh(self, a):
        """Eigendecomposition of a stack of symmetric matrices (..., m, m)."""
        return np.linalg.eigh(a)

    def T(self, a):
        """Swap the last two axes."""
        return a.swapaxes(-1, -2)

    def sum(self, a, axis, keepdims=False):
        return a.sum(axis=axis, keepdims=keepdims)

    def mean(self, a, axis, keepdims=False):
        return a.mean(axis=axis, keepdims=keepdims)

    def std(self, a, axis, keepdims=False):
        return a.std(axis=axis, keepdims=keepdims)

    def concat(self, arrays, axis):
        return np.concatenate(arrays, axis=axis)

    def maximum_scalar(self, a, value):
        return np.maximum(a, value)

    def permute(self, a, axes):
        """Axes reordered, in contiguous memory."""
        return np.ascontiguousarray(a.transpose(axes))

    def spd_solver(self, a):
        """Factor one symmetric positive (semi)definite ``a`` once; return ``solve(b)`` for many right-hand
        sides (Cholesky; least squares where ``a`` is singular)."""
        import scipy.linalg

        try:
            fac = scipy.linalg.cho_factor(a, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return lambda b: scipy.linalg.lstsq(a, b, check_finite=False)[0]
        return lambda b: scipy.linalg.cho_solve(fac, b, check_finite=False)

    def solve_spd(self, a, b):
        """Solve a x = b for one symmetric positive (semi)definite a; falls back to lstsq if singular."""
        return self.spd_solver(a)(b)

    def top_k_rows(self, a, k, weights):
        """Column indices of the k largest ``|a[i, j]| * weights[j]`` in each row of ``a`` (n_rows,
        n_cols), sorted ascending per row -> (n_rows, k).

        Works through blocks of rows with one scratch buffer: fresh multi-MB temporaries cost a page
        fault per 4 KiB, which on virtual machines can take as long as the partial sort itself.
        """
        n_rows, n_cols = a.shape
        out = np.empty((n_rows, k), dtype=np.int64)
        step = max(1, min(n_rows, (1 << 20) // max(1, n_cols)))
        scratch = np.empty((step, n_cols), dtype=a.dtype)
        for lo in range(0, n_rows, step):
            hi = min(lo + step, n_rows)
            s = scratch[: hi - lo]
            np.abs(a[lo:hi], out=s)
            s *= weights
            part = np.argpartition(s, n_cols - k, axis=1)[:, n_cols - k:]
            part.sort(axis=1)
            out[lo:hi] = part
        return out

    def gather_solve(self, gram, rhs, idx):
        """For each target j solve gram[I_j, I_j] x = rhs[j]; idx (n, k), rhs (n, k, r) -> (n, k, r).

        Small Cholesky factorisations do not scale over BLAS threads, so targets are split over a
        pool of single-threaded workers instead. Each worker gathers only the upper triangle of its
        block (a compiled loop: half the memory traffic of the full block, no index array) straight
        into LAPACK's column-major layout and calls ``potrf``/``potrs`` through their C entry points,
        which run without the GIL (scipy's Python LAPACK wrappers hold it, which serialises the workers).
        """
        import scipy.linalg

        from brainlike._kernels import gather_upper

        n, k = idx.shape
        r = rhs.shape[2]
        out = np.empty(rhs.shape, dtype=self.dtype)
        flat = gram.reshape(-1)
        p = gram.shape[1]
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        lapack = _gil_free_cholesky(self.dtype)

        def fallback(ij, b):
            block = np.take(flat, ij[:, None] * p + ij[None, :])
            try:
                return scipy.linalg.cho_solve(scipy.linalg.cho_factor(block, lower=True, check_finite=False), b,
                                              check_finite=False)
            except np.linalg.LinAlgError:  # singular block (alpha = 0 on rank-deficient inputs)
                return scipy.linalg.lstsq(block, b, check_finite=False)[0]

        def work(lo, hi):
            buf = np.empty((k, k), dtype=self.dtype)
            sol = np.empty((r, k), dtype=self.dtype)  # column-major (k, r) for LAPACK
            for j in range(lo, hi):
                if lapack is None:
                    out[j] = fallback(idx[j], rhs[j])
                    continue
                gather_upper(flat, p, idx[j], buf)
                sol[...] = rhs[j].T
                if lapack.solve(buf, sol):
                    out[j] = sol.T
                else:
                    out[j] = fallback(idx[j], rhs[j])

        workers = min(_n_threads(), n)
        bounds = np.linspace(0, n, workers + 1).astype(int)
        with _single_threaded_blas():
            if workers == 1:
                work(0, n)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(lambda b: work(*b), zip(bounds[:-1], bounds[1:])))
        return out


class _CholeskyLapack:
    """``potrf`` + ``potrs`` on column-major arrays through scipy's ``cython_lapack`` C entry points.

    ctypes drops the GIL around the call, so worker threads factorise in parallel.
    """

    def __init__(self, potrf, potrs):
        import ctypes

        self._ct = ctypes
        self._potrf, self._potrs = potrf, potrs
        self._uplo = ctypes.c_char(b"L")

    def solve(self, a, b) -> bool:
        """Factor ``a.T``'s lower triangle in place and overwrite ``b.T`` with the solution; False if
        ``a`` is not positive definite."""
        ct = self._ct
        n, nrhs, info = ct.c_int(a.shape[0]), ct.c_int(b.shape[0]), ct.c_int(0)
        ref = ct.byref
        self._potrf(ref(self._uplo), ref(n), a.ctypes.data, ref(n), ref(info))
        if info.value != 0:
            return False
        self._potrs(ref(self._uplo), ref(n), ref(nrhs), a.ctypes.data, ref(n), b.ctypes.data, ref(n), ref(info))
        return info.value == 0


_CHOLESKY_CACHE: dict = {}


def _gil_free_cholesky(dtype) -> "_CholeskyLapack | None":
    """The GIL-free LAPACK pair for ``dtype`` (float32/float64), or None where scipy does not expose it."""
    key = np.dtype(dtype).char
    if key not in _CHOLESKY_CACHE:
        try:
            import ctypes

            import scipy.linalg.cython_lapack as cl

            get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
            get_ptr = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
                ("PyCapsule_GetPointer", ctypes.pythonapi))
            prefix = "s" if key == "f" else "d"
            vp = ctypes.c_void_p

            def fn(name, nargs):
                cap = cl.__pyx_capi__[prefix + name]
                return ctypes.CFUNCTYPE(None, *([vp] * nargs))(get_ptr(cap, get_name(cap)))

            _CHOLESKY_CACHE[key] = _CholeskyLapack(fn("potrf", 5), fn("potrs", 8))
        except (ImportError, AttributeError, KeyError, ValueError, TypeError):  # pragma: no cover - exotic scipy builds
            _CHOLESKY_CACHE[key] = None
    return _CHOLESKY_CACHE[key]


class TorchBackend:
    name = "torch"

    def __init__(self, dtype: np.dtype, device=None):
        import torch

        self.torch = self.xp = torch
        self.dtype = dtype
        self.tdtype = torch.float32 if dtype == np.float32 else torch.float64
        self.device = resolve_device(device, "torch")

    def sync(self):
        """Wait for queued device work (timing on CUDA)."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

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

    def eigh(self, a, overwrite=False):
        return self.torch.linalg.eigh(a)

    def batched_eigh(self, a):
        return self.torch.linalg.eigh(a)

    def T(self, a):
        return a.transpose(-1, -2)

    def sum(self, a, axis, keepdims=False):
        return a.sum(dim=axis, keepdim=keepdims)

    def mean(self, a, axis, keepdims=False):
        return a.mean(dim=axis, keepdim=keepdims)

    def std(self, a, axis, keepdims=False):
        return a.std(dim=axis, keepdim=keepdims, correction=0)

    def concat(self, arrays, axis):
        return self.torch.cat(arrays, dim=axis)

    def maximum_scalar(self, a, value):
        return self.torch.clamp(a, min=value)

    def permute(self, a, axes):
        return a.permute(*axes).contiguous()

    def spd_solver(self, a):
        t = self.torch
        chol, info = t.linalg.cholesky_ex(a)
        if int(info) == 0:
            return lambda b: t.cholesky_solve(b, chol)
        return lambda b: t.linalg.lstsq(a, b).solution

    def solve_spd(self, a, b):
        return self.spd_solver(a)(b)

    def top_k_rows(self, a, k, weights):
        idx = self.torch.topk(self.torch.abs(a) * weights, k, dim=1, sorted=False).indices
        return self.torch.sort(idx, dim=1).values

    def gather_solve(self, gram, rhs, idx):
        t = self.torch
        blocks = gram[idx[:, :, None], idx[:, None, :]]
        chol, info = t.linalg.cholesky_ex(blocks)
        out = t.cholesky_solve(rhs, chol)
        bad = t.nonzero(info).flatten()
        for j in bad.tolist():  # singular blocks (alpha = 0 on rank-deficient inputs)
            out[j] = t.linalg.lstsq(blocks[j], rhs[j]).solution
        return out
