"""Input checks shared by every room.

Each check names the argument, what was expected and what was received, so that
bad input fails before any heavy work starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_2d_float(x, name: str, *, dtype=None, allow_nan: bool = False, min_rows: int = 1):
    """Return ``x`` as a 2-D floating array (no copy when already right).

    Raises ``ValueError`` naming ``name`` when the shape is wrong, there are too
    few rows, or (unless ``allow_nan``) NaN/inf values are present.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples, features); got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32
    arr = np.asarray(arr, dtype=dtype)
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples); got {arr.shape[0]}")
    if not allow_nan:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Fail with the count and first position of non-finite values in ``arr``."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(
            f"{name} contains {bad.shape[0]} NaN/inf value(s), first at index {tuple(int(i) for i in bad[0])}"
        )


def check_same_rows(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Both arrays must have the same number of samples (rows)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of samples; got {a.shape[0]} and {b.shape[0]}"
        )


def check_choice(value, name: str, choices: Sequence) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")


def check_positive(value, name: str, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not np.all(ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}; got {value!r}")


def check_ids_match(ids_a: Sequence[str], ids_b: Sequence[str], name_a: str, name_b: str, n_examples: int = 5):
    """Raise listing examples of ids present in one side only."""
    set_a, set_b = set(ids_a), set(ids_b)
    only_a = [i for i in ids_a if i not in set_b]
    only_b = [i for i in ids_b if i not in set_a]
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} id(s) in {name_a} but not in {name_b}, e.g. {only_a[:n_examples]}")
        if only_b:
            parts.append(f"{len(only_b)} id(s) in {name_b} but not in {name_a}, e.g. {only_b[:n_examples]}")
        raise ValueError("stimulus ids do not match: " + "; ".join(parts))
