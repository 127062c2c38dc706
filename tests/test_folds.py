"""brainlike.folds against scikit-learn's KFold / GroupKFold, and its one seeding rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, KFold

from brainlike.folds import group_kfold, kfold


def test_kfold_is_sklearn_shuffled_kfold_with_sorted_parts():
    got = kfold(23, 4, seed=7)
    ref = list(KFold(4, shuffle=True, random_state=7).split(np.arange(23)))
    assert len(got) == 4
    for (tr, te), (rtr, rte) in zip(got, ref):
        np.testing.assert_array_equal(tr, np.sort(rtr))
        np.testing.assert_array_equal(te, np.sort(rte))
    tests = np.concatenate([te for _, te in got])
    np.testing.assert_array_equal(np.sort(tests), np.arange(23))  # every row tested once
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(got, kfold(23, 4, seed=8)))
    contiguous = kfold(10, 5, seed=None)
    np.testing.assert_array_equal(contiguous[0][1], [0, 1])
    np.testing.assert_array_equal(contiguous[4][1], [8, 9])


def test_group_kfold_never_splits_a_group():
    groups = np.repeat(np.arange(7), 3)
    got = group_kfold(groups, 10)  # capped at 7 groups
    assert len(got) == 7
    ref = list(GroupKFold(7).split(np.zeros(21), groups=groups))
    for (tr, te), (rtr, rte) in zip(got, ref):
        np.testing.assert_array_equal(te, np.sort(rte))
        assert not set(groups[tr]) & set(groups[te])


@pytest.mark.parametrize("n,k,match", [(10, 1, "cv must be an integer number of folds >= 2"),
                                       (3, 5, "cv=5 folds need at least 5 samples"),
                                       (10, 2.5, "integer number")])
def test_kfold_bad_input(n, k, match):
    with pytest.raises(ValueError, match=match):
        kfold(n, k)
    with pytest.raises(ValueError, match="needs >= 2 distinct groups"):
        group_kfold(np.zeros(5), 3)
