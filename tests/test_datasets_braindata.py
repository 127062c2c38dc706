"""BrainData: selection, averaging, alignment, subjects, NaN voxels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from brainlike.datasets import BrainData, NaNVoxelWarning, concat_subjects
from brainlike.ids import IdMismatchError


def make(rng, n_stim=6, n_rep=3, n_vox=10, split=True, subject="s1", noise=0.1):
    """Planted structure: each stimulus has a true pattern; samples are pattern + noise."""
    patterns = rng.standard_normal((n_stim, n_vox))
    ids = np.array([f"img{i}" for i in range(n_stim)])
    order = rng.permutation(np.repeat(np.arange(n_stim), n_rep))
    x = patterns[order] + noise * rng.standard_normal((order.size, n_vox))
    rois = {"V1": np.arange(n_vox) < 4, "V2": (np.arange(n_vox) >= 4) & (np.arange(n_vox) < 7),
            "VC": np.ones(n_vox, dtype=bool)}
    sp = np.where(order < n_stim - 2, "train", "test") if split else None
    return BrainData(x, ids[order], rois=rois, split=sp, subject=subject), patterns, ids


def test_construction_dtype_and_views(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    d = BrainData(x, list("abcde"), rois={"A": [1, 1, 0, 0]})
    assert d.responses is x  # float32 input is not copied
    assert d.responses.dtype == np.float32 and d.n_samples == 5 and d.n_voxels == 4
    assert d.rois["A"].dtype == bool
    d64 = BrainData(x, list("abcde"), dtype=np.float64)
    assert d64.responses.dtype == np.float64
    assert BrainData(x.astype(np.float64), list("abcde")).responses.dtype == np.float32
    # contiguous selections are views, not copies
    sub = d.select_roi("A")
    assert np.shares_memory(sub.responses, x)
    assert np.shares_memory(d.select_samples(np.array([1, 2, 3])).responses, x)


def test_bad_inputs_name_the_argument(rng):
    x = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="stimulus_ids must have shape \\(4,\\)"):
        BrainData(x, ["a", "b"])
    with pytest.raises(ValueError, match=r"rois\['V1'\] must be a mask of shape \(3,\)"):
        BrainData(x, list("abcd"), rois={"V1": np.ones(5, bool)})
    with pytest.raises(ValueError, match="responses must be a 2-D array"):
        BrainData(x[0], ["a"])
    with pytest.raises(ValueError, match="split must have shape"):
        BrainData(x, list("abcd"), split=["train"])
    d = BrainData(x, list("abcd"), rois={"V1": [1, 0, 0], "E": [0, 0, 0]})
    with pytest.raises(ValueError, match="roi must be one of \\['V1', 'E'\\]; got 'V9'"):
        d.select_roi("V9")
    with pytest.raises(ValueError, match="selects no voxel"):
        d.select_roi("E")
    with pytest.raises(ValueError, match="no split information"):
        d.select_split("train")


def test_select_roi_union_and_split(rng):
    d, _, _ = make(rng)
    v = d.select_roi(["V1", "V2"])
    assert v.n_voxels == 7
    np.testing.assert_array_equal(v.responses, d.responses[:, :7])
    assert v.rois["V1"].sum() == 4 and v.rois["VC"].all()
    te = d.select_split("test")
    assert set(te.split) == {"test"} and te.n_samples == 2 * 3
    with pytest.raises(ValueError, match="split must be one of"):
        d.select_split("validation")


def test_average_repetitions_matches_pandas_and_planted_means(rng):
    d, patterns, ids = make(rng, noise=0.0)
    avg = d.average_repetitions()
    # planted: with no noise the averages are the patterns exactly
    for i, sid in enumerate(avg.stimulus_ids):
        np.testing.assert_allclose(avg.responses[i], patterns[int(sid[3:])], rtol=1e-5, atol=1e-6)
    assert (avg.n_averaged == 3).all() and (avg.repetition == 0).all()
    # independent reference: pandas groupby mean on noisy data, first-appearance order
    d, _, _ = make(rng, noise=1.0)
    avg = d.average_repetitions()
    ref = pd.DataFrame(d.responses.astype(np.float64)).groupby([d.split, d.stimulus_ids], sort=False).mean()
    np.testing.assert_allclose(avg.responses, ref.to_numpy(), rtol=1e-5, atol=1e-6)
    assert list(zip(avg.split, avg.stimulus_ids)) == list(ref.index)


def test_average_repetitions_nan_aware(rng):
    x = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]])
    with pytest.warns(NaNVoxelWarning, match="1 of 2 voxel"):
        d = BrainData(x, ["a", "a", "b"])
    avg = d.average_repetitions()
    np.testing.assert_allclose(avg.responses, [[2.0, 4.0], [5.0, 6.0]])


def test_repetition_index_default(rng):
    d = BrainData(np.zeros((5, 1)), ["a", "b", "a", "a", "b"], split=["train"] * 3 + ["test"] * 2)
    np.testing.assert_array_equal(d.repetition, [0, 0, 1, 0, 0])


def test_align_reorders_and_reports_missing_both_ways(rng):
    d, patterns, ids = make(rng, noise=0.0, split=False)
    avg = d.average_repetitions()
    target = list(ids[::-1])
    al = avg.align(target)
    assert list(al.stimulus_ids) == target
    np.testing.assert_allclose(al.responses, patterns[::-1], rtol=1e-5, atol=1e-6)

    class Features:  # anything with .ids works (FeatureSet, ImageSet)
        ids = target

    assert list(avg.align(Features()).stimulus_ids) == target
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the requested ids are missing from the responses, "
                                              r"e.g. \['zzz'\]"):
        avg.align(target + ["zzz"])
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the responses are not in the requested ids, "
                                              r"e.g. \['img0'\]"):
        avg.align(target[:-1])
    assert avg.align(target[:-1], allow_extra=True).n_samples == len(target) - 1
    with pytest.raises(IdMismatchError, match="name several rows.*average_repetitions"):
        d.align(target)


def test_nan_voxels_reported_dropped_or_raised(rng):
    x = rng.standard_normal((6, 5))
    x[2, 1] = np.nan
    x[:, 3] = np.nan
    with pytest.warns(NaNVoxelWarning, match=r"2 of 5 voxel\(s\) contain NaN values \(e.g. voxel indices \[1, 3\]\)"):
        d = BrainData(x, list("abcdef"), rois={"A": np.ones(5, bool)})
    np.testing.assert_array_equal(d.nan_voxels(), [1, 3])
    clean = d.drop_nan_voxels()
    assert clean.n_voxels == 3 and clean.provenance["dropped_nan_voxels"] == 2
    np.testing.assert_array_equal(clean.responses, x[:, [0, 2, 4]].astype(np.float32))
    with pytest.warns(NaNVoxelWarning, match="dropped"):
        dropped = BrainData(x, list("abcdef"), rois={"A": np.ones(5, bool)}, nan="drop")
    assert dropped.n_voxels == 3 and dropped.rois["A"].shape == (3,)
    with pytest.raises(ValueError, match="2 of 5 voxel"):
        BrainData(x, list("abcdef"), nan="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainData(x, list("abcdef"), nan="ignore")


def test_check_stimuli_unknown_id():
    class Images:
        ids = ["a", "b"]
        name = "two"

    d = BrainData(np.zeros((3, 1)), ["a", "b", "c"], stimuli=Images())
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the responses are missing from the image set 'two', "
                                              r"e.g. \['c'\]"):
        d.check_stimuli()


def test_concat_subjects_samples_and_voxels(rng):
    a, _, _ = make(rng, subject="s1")
    b, _, _ = make(rng, subject="s2")
    st = concat_subjects([a, b])
    assert st.n_samples == a.n_samples + b.n_samples and st.n_voxels == a.n_voxels
    np.testing.assert_array_equal(st.sample_subject, ["s1"] * a.n_samples + ["s2"] * b.n_samples)
    np.testing.assert_array_equal(st.responses[a.n_samples:], b.responses)
    assert st.select_split("test").n_samples == 12
    # voxels: subjects side by side, aligned on (split, stimulus id)
    aa, bb = a.average_repetitions(), b.average_repetitions()
    bb_shuffled = bb.select_samples(rng.permutation(bb.n_samples))
    side = concat_subjects([aa, bb_shuffled], axis="voxels")
    assert side.n_voxels == aa.n_voxels + bb.n_voxels
    np.testing.assert_array_equal(side.responses[:, : aa.n_voxels], aa.responses)
    np.testing.assert_array_equal(side.responses[:, aa.n_voxels:], bb.align(aa.stimulus_ids).responses)
    assert side.rois["V1"].sum() == 8 and side.rois["s2/V1"][aa.n_voxels:].sum() == 4
    np.testing.assert_array_equal(side.select_roi("s1/V1").voxel_subject, ["s1"] * 4)
    with pytest.raises(ValueError, match="average_repetitions"):
        concat_subjects([a, b], axis="voxels")
    c = BrainData(rng.standard_normal((3, 2)), list("abc"), subject="s3")
    with pytest.raises(ValueError, match="use axis='voxels'"):
        concat_subjects([a, c])
    with pytest.raises(ValueError, match="distinct"):
        concat_subjects([a, a])
