"""This machine's float32 GEMM rate, the denominator of every FLOP bound (shared by the bench_*.py scripts)."""

from __future__ import annotations

import time

import numpy as np


def gemm_gflops(n: int = 2000, repeats: int = 3) -> float:
    """Best of ``repeats`` timed (n x n) @ (n x n) float32 products, in GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b  # warm-up: thread pool and caches
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def torch_gemm_gflops(device: str = "cuda", n: int = 8192, repeats: int = 5) -> float:
    """The same for torch float32 on ``device`` (a GPU's rate, for the FLOP bounds of its rows)."""
    import torch

    a = torch.randn(n, n, device=device)
    b = a.T.contiguous()
    a @ b
    best = np.inf
    for _ in range(repeats):
        if a.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
