"""The one alignment function: pairing by stimulus id, with errors that name what is wrong."""

import numpy as np
import pytest

from brainlike.ids import IdMismatchError, align, as_ids, same_ids


def test_align_reorders_and_repeats():
    src = ["img10", "img2", "img1"]
    rows = align(src, ["img1", "img2", "img2", "img10"])
    assert rows.tolist() == [2, 1, 1, 0]
    assert [src[r] for r in rows] == ["img1", "img2", "img2", "img10"]


def test_align_random_permutation_matches_dict_lookup():
    rng = np.random.default_rng(0)
    ids = np.array([f"n{i:05d}" for i in rng.permutation(500)])
    wanted = rng.choice(ids, size=900)
    rows = align(ids, wanted)
    lookup = {s: i for i, s in enumerate(ids)}
    assert rows.tolist() == [lookup[s] for s in wanted]


def test_missing_ids_named_with_count_and_examples():
    with pytest.raises(IdMismatchError, match=r"2 id\(s\) of brain data are missing from features, e.g. \['x', 'y'\]") as e:
        align(["a", "b"], ["a", "x", "y", "x"])
    assert e.value.missing == ["x", "y"]


def test_extra_ids_refused_when_asked():
    assert align(["a", "b", "c"], ["b"]).tolist() == [1]
    with pytest.raises(IdMismatchError, match=r"2 id\(s\) of feats are not in resp"):
        align(["a", "b", "c"], ["b"], source="feats", wanted="resp", allow_extra=False)


def test_duplicate_source_ids_refused():
    with pytest.raises(IdMismatchError, match="name several rows"):
        align(["a", "a", "b"], ["a"])


def test_as_ids_refuses_none_floats_and_strings():
    with pytest.raises(ValueError, match="features: stimulus ids are required"):
        as_ids(None, "features")
    with pytest.raises(ValueError, match="floats"):
        as_ids(np.array([1.0, 2.0]), "ids")
    with pytest.raises(ValueError, match="single string"):
        as_ids("abc", "ids")
    assert as_ids(np.arange(3)).tolist() == ["0", "1", "2"]


def test_same_ids_order():
    same_ids(["a", "b"], ["b", "a"])
    with pytest.raises(IdMismatchError, match="another order"):
        same_ids(["a", "b"], ["b", "a"], ordered=True)
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of b are missing from a"):
        same_ids(["a"], ["a", "z"], name_a="a", name_b="b")
