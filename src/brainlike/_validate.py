"""Input checks shared by every room.

Each check names the argument, what was expected and what was received, so that
bad input fails before any heavy work starts.
"""

from __future__ import annotations

import re
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


_DRIVE = re.compile(r"^[A-Za-z]:")


def check_relpath(name: str, what: str, *, subfolders: bool = True) -> str:
    """``name`` as a path that stays inside its folder, or ``ValueError`` naming it and why.

    Refused: an empty name, a NUL byte, an absolute path (``/x``, ``\\x``), a drive letter
    (``C:x``), a backslash (a Windows separator), a ``..`` or ``.`` component, an empty component
    (``a//b``) and, unless ``subfolders``, any ``/``. ``what`` says where the name comes from
    (e.g. "member of images.zip", "image id").
    """
    text = str(name)
    reason = None
    if not text:
        reason = "is empty"
    elif "\x00" in text:
        reason = "contains a NUL byte"
    elif text.startswith(("/", "\\")):
        reason = "is an absolute path"
    elif _DRIVE.match(text):
        reason = "starts with a drive letter"
    elif "\\" in text:
        reason = "contains a backslash (a Windows path separator)"
    elif not subfolders and "/" in text:
        reason = "contains a path separator '/' (a single file name is needed here)"
    else:
        parts = text.split("/")
        if any(p == ".." for p in parts):
            reason = "contains a '..' component (it would leave its folder)"
        elif any(p in ("", ".") for p in parts):
            reason = "contains an empty or '.' path component"
    if reason is not None:
        raise ValueError(f"{what} {text!r} {reason}; names must be relative paths inside their folder")
    return text


def check_inside(path, folder, what: str):
    """``path`` (symlinks resolved) must lie inside ``folder``; returns the resolved path."""
    from pathlib import Path

    real, root = Path(path).resolve(), Path(folder).resolve()
    if real != root and root not in real.parents:
        raise ValueError(f"{what} {str(path)!r} resolves to {str(real)!r}, outside the folder {str(root)!r} "
                         "(a symlink out of the folder?)")
    return real
