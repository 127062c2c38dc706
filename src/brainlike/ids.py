"""Stimulus identity: the one place where two collections of samples are paired.

Features, responses, predictions and RDMs are paired by stimulus id, never by position: a
feature matrix in ``sorted()`` order instead of natural order, or one mistyped id, must give a
clear error, not a wrong score. Every room calls :func:`align` (or :func:`same_ids`) for this.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["IdMismatchError", "align", "as_ids", "same_ids"]

N_SHOWN = 5


class IdMismatchError(ValueError):
    """Two collections of samples do not carry the ids needed to pair them.

    ``missing`` lists the wanted ids absent from the source, ``extra`` the source ids that were not
    wanted (only when extras are not allowed), ``duplicated`` the ids that name several source rows.
    """

    def __init__(self, message: str, *, missing=(), extra=(), duplicated=()):
        super().__init__(message)
        self.missing = list(missing)
        self.extra = list(extra)
        self.duplicated = list(duplicated)


def as_ids(ids, name: str = "ids") -> np.ndarray:
    """Stimulus ids as a 1-D array of ``str``.

    Accepts a sequence, an array, or an object carrying ids (``.stimulus_ids`` of ``BrainData``,
    ``.ids`` of ``ImageSet`` / ``FeatureSet``). ``None`` is refused: where ids are needed, data
    without them cannot be paired safely.
    """
    if ids is None:
        raise ValueError(f"{name}: stimulus ids are required to pair samples (got None); "
                         "give the ids of the rows (e.g. FeatureSet(arrays, ids=...))")
    for attr in ("stimulus_ids", "ids"):
        inner = getattr(ids, attr, None)
        if inner is not None and not isinstance(ids, np.ndarray):
            ids = inner
            break
    if isinstance(ids, (str, bytes)):
        raise ValueError(f"{name}: expected a sequence of stimulus ids; got the single string {ids!r}")
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if arr.ndim != 1:
        raise ValueError(f"{name}: stimulus ids must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        raise ValueError(f"{name}: stimulus ids must be strings or integers; got floats (e.g. {arr[:3].tolist()})")
    return arr.astype(str)


def _examples(values: Iterable[str]) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:N_SHOWN])
    return f"[{shown}{', ...' if len(values) > N_SHOWN else ''}]"


def _mismatch(missing: list, extra: list, source: str, wanted: str, source_examples=()) -> None:
    """Raise the one error of a failed pairing: counts and first few of the missing and extra ids."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} id(s) of {wanted} are missing from {source}, e.g. {_examples(missing)}")
    if extra:
        parts.append(f"{len(extra)} id(s) of {source} are not in {wanted}, e.g. {_examples(extra)}")
    if source_examples:
        parts.append(f"{source} has e.g. {_examples(source_examples)}")
    raise IdMismatchError(f"stimulus ids do not match: {'; '.join(parts)}", missing=missing, extra=extra)


def align(source_ids, wanted_ids, *, source: str = "features", wanted: str = "brain data",
          allow_extra: bool = True) -> np.ndarray:
    """Rows of ``source`` that pair with each sample of ``wanted``: ``source[rows]`` lines up with it.

    ``wanted_ids`` may repeat an id (several trials of one image); each id of ``source_ids`` must
    name one row. Every wanted id must be in the source; source ids that are not wanted are
    allowed unless ``allow_extra=False``. A mismatch raises :class:`IdMismatchError` naming both
    sides, how many ids are missing, extra or duplicated, and the first few of each.
    """
    src = as_ids(source_ids, source)
    want = as_ids(wanted_ids, wanted)
    uniq, first, counts = np.unique(src, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1].tolist()
        raise IdMismatchError(
            f"stimulus ids of {source}: {len(dup)} id(s) name several rows, e.g. {_examples(dup)}; "
            "each row of the source must have its own id (average repetitions first)",
            duplicated=dup)
    pos_clipped = np.minimum(np.searchsorted(uniq, want), max(uniq.size - 1, 0))
    found = uniq[pos_clipped] == want if uniq.size else np.zeros(want.size, dtype=bool)
    missing = list(dict.fromkeys(want[~found].tolist()))
    extra = []
    if not allow_extra:
        wanted_set = set(want.tolist())
        extra = [s for s in src.tolist() if s not in wanted_set]
    if missing or extra:
        _mismatch(missing, extra, source, wanted, src.tolist() if missing else [])
    return first[pos_clipped].astype(np.intp)


def same_ids(a, b, *, name_a: str = "a", name_b: str = "b", ordered: bool = False) -> None:
    """``a`` and ``b`` must hold the same set of ids (and, if ``ordered``, in the same order)."""
    ia, ib = as_ids(a, name_a), as_ids(b, name_b)
    sa, sb = set(ia.tolist()), set(ib.tolist())
    only_a = [s for s in ia.tolist() if s not in sb]
    only_b = [s for s in ib.tolist() if s not in sa]
    if only_a or only_b:
        _mismatch(only_b, only_a, name_a, name_b)
    if ordered and not np.array_equal(ia, ib):
        k = int(np.flatnonzero(ia != ib)[0]) if ia.size == ib.size else 0
        raise IdMismatchError(
            f"stimulus ids of {name_a} and {name_b} are the same set in another order "
            f"(first difference at row {k}: {ia[k]!r} vs {ib[k]!r}); pair them with brainlike.ids.align")
