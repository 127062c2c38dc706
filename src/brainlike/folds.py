"""Cross-validation folds: the one home of fold construction in brainlike.

One seeding rule everywhere: k-fold splits are scikit-learn's ``KFold(n_folds, shuffle=True,
random_state=seed)`` over ``range(n_samples)`` (so a user reproduces them with scikit-learn from the
seed alone); ``seed=None`` gives contiguous, unshuffled folds (scikit-learn's and himalaya's default
for an integer ``cv``). Grouped folds (repetitions of one stimulus never on both sides) are
``GroupKFold``, which is deterministic. Every index array is sorted.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["kfold", "group_kfold"]


def _check(n_samples, n_folds, name, unit="samples"):
    if not isinstance(n_folds, numbers.Integral) or isinstance(n_folds, bool) or n_folds < 2:
        raise ValueError(f"{name} must be an integer number of folds >= 2; got {n_folds!r}")
    if int(n_samples) < int(n_folds):
        raise ValueError(f"{name}={n_folds} folds need at least {n_folds} {unit}; got {n_samples} {unit}")


def kfold(n_samples: int, n_folds: int, *, seed: int | None = 0, name: str = "cv",
          unit: str = "samples") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of k-fold cross-validation over ``n_samples`` rows (see module doc).

    ``name`` / ``unit``: the argument and the rows named in the error for a bad ``n_folds``.
    """
    from sklearn.model_selection import KFold

    _check(n_samples, n_folds, name, unit)
    splitter = KFold(int(n_folds)) if seed is None else KFold(int(n_folds), shuffle=True, random_state=int(seed))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros((int(n_samples), 1)))]


def group_kfold(groups, n_folds: int, *, what: str = "cross-validation",
                group_name: str = "groups") -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds that never split one group (e.g. the repetitions of one stimulus) across train and test;
    ``n_folds`` is capped at the number of distinct groups."""
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"{what} needs >= 2 distinct {group_name}; got {n_groups}")
    k = min(int(n_folds), n_groups)
    return [(np.sort(tr), np.sort(te)) for tr, te in GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups)]
