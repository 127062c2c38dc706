"""Compiled inner loops (numba) for the few places where NumPy's vector operations waste memory traffic.

Compiled once per dtype and cached on disk (``cache=True``); they release the GIL, so the backend's
worker threads run them in parallel.
"""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True, boundscheck=False)
def gather_upper(flat, p, ij, buf):
    """``buf[a, b] = G[ij[a], ij[b]]`` for ``b >= a`` (G = ``flat.reshape(-1, p)``); the rest untouched.

    Read as column-major, ``buf`` then holds the lower triangle LAPACK's ``potrf("L")`` needs. With
    ``ij`` sorted, each row of the block is read from one row of G at increasing addresses. This
    replaces NumPy's ``take`` with a (k, k) index array: the index array itself was a third of the
    memory traffic.
    """
    k = ij.shape[0]
    for a in range(k):
        base = ij[a] * p
        for b in range(a, k):
            buf[a, b] = flat[base + ij[b]]
