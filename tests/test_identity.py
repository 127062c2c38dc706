"""Identity and content keys at the seams: features are paired with brain data by stimulus id, and
every key that decides reuse covers the full content of its inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.datasets import BrainData, concat_subjects
from brainlike.features import FeatureSet
from brainlike.ids import IdMismatchError
from brainlike.pipeline import run_experiment
from brainlike.stimuli import natural_key

from test_pipeline import make_experiment, small_config


def _config(out, **kw):
    return small_config(out, analyses=["decoding"], **kw)


def _accuracy(res) -> pd.DataFrame:
    d = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    return d.sort_values(["subject", "roi", "layer", "unit"]).reset_index(drop=True)


class Handle:
    """A feature source that is not a numpy array (as a zarr array or a custom reader would be)."""

    def __init__(self, data, ids):
        self.data, self.ids, self.shape = data, list(ids), data.shape

    def read(self, units):
        return self.data[:, units]


# ------------------------------------------------------------------------------------ identity
def test_plain_arrays_are_refused_never_paired_by_position(tmp_path, rng):
    feats, brains = make_experiment(rng)
    plain = {k: np.asarray(v) for k, v in feats.items()}
    with pytest.raises(ValueError, match=r"features\['net'\]\['layer1'\] carries no stimulus ids.*FeatureSet"):
        run_experiment(_config(tmp_path / "o"), brain=brains, features={"net": plain}, progress=False)
    assert not list((tmp_path / "o").rglob("chunk-*.npz"))


def test_rows_in_sorted_order_are_paired_by_id(tmp_path, rng):
    """Ids 'im2' < 'im10' naturally but not under sorted(): the issue's -0.487 instead of 0.996."""
    feats, brains = make_experiment(rng)
    # ids without zero padding, so that sorted() and natural order differ
    rename = {f"im{i:03d}": f"im{i}" for i in range(150)}
    brains = [BrainData(b.responses, [rename[s] for s in b.stimulus_ids], rois=b.rois, split=b.split,
                        subject=b.subject) for b in brains]
    natural = [rename[s] for s in feats.ids]
    assert sorted(natural) != sorted(natural, key=natural_key)
    ref = run_experiment(_config(tmp_path / "a"), brain=brains, features={"net": FeatureSet(dict(feats), natural)},
                         progress=False)
    order = sorted(range(150), key=lambda i: natural[i])  # sorted() order, as a directory listing gives
    shuffled = FeatureSet({k: np.asarray(v)[order] for k, v in feats.items()}, [natural[i] for i in order])
    got = run_experiment(_config(tmp_path / "b"), brain=brains, features={"net": shuffled}, progress=False)
    pd.testing.assert_frame_equal(_accuracy(got), _accuracy(ref))
    assert got.scores["score"].iloc[0] == ref.scores["score"].iloc[0] > 0.5
    # a non-numpy source in another order is read through its rows, paired by id too
    handles = {k: Handle(np.asarray(v)[order], shuffled.ids) for k, v in feats.items()}
    third = run_experiment(_config(tmp_path / "c"), brain=brains, features={"net": handles}, progress=False)
    pd.testing.assert_frame_equal(_accuracy(third), _accuracy(ref))


def test_one_mistyped_id_is_an_error_naming_it(tmp_path, rng):
    feats, brains = make_experiment(rng)
    ids = list(feats.ids)
    ids[7] = "im07"  # a typo for im007
    typo = FeatureSet(dict(feats), ids)
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the stimuli of the brain data are missing from "
                                              r"features\['net'\]\['layer1'\], e.g. \['im007'\]") as err:
        run_experiment(_config(tmp_path / "o"), brain=brains, features={"net": typo}, progress=False)
    assert err.value.missing == ["im007"]
    assert not list((tmp_path / "o").rglob("chunk-*.npz"))
    dup = FeatureSet(dict(feats), ids[:7] + ["im008"] + ids[8:])
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) name several rows, e.g. \['im008'\]"):
        run_experiment(_config(tmp_path / "o"), brain=brains, features={"net": dup}, progress=False)


def test_extra_feature_rows_are_allowed_and_ignored(tmp_path, rng):
    feats, brains = make_experiment(rng)
    ref = run_experiment(_config(tmp_path / "a"), brain=brains, features={"net": feats}, progress=False)
    extra = FeatureSet({k: np.vstack([np.asarray(v), np.ones((3, v.shape[1]), np.float32)]) for k, v in feats.items()},
                       list(feats.ids) + ["x1", "x2", "x3"])
    got = run_experiment(_config(tmp_path / "b"), brain=brains, features={"net": extra}, progress=False)
    pd.testing.assert_frame_equal(_accuracy(got), _accuracy(ref))


def test_concat_subjects_by_voxels_names_mismatched_ids(rng):
    a = BrainData(rng.standard_normal((3, 2)), ["x", "y", "z"], subject="s1")
    b = BrainData(rng.standard_normal((3, 2)), ["z", "x", "w"], subject="s2")
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of subject 's1' are missing from subject 's2', "
                                              r"e.g. \['y'\]; 1 id\(s\) of subject 's2' are not in subject 's1'"):
        concat_subjects([a, b], axis="voxels")
    c = BrainData(a.responses[[2, 0, 1]], ["z", "x", "y"], subject="s3")
    side = concat_subjects([a, c], axis="voxels")
    np.testing.assert_array_equal(side.responses[:, 2:], a.responses)


def test_image_subset_pairs_by_id():
    from brainlike.stimuli import ImageSet

    imgs = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2)
    s = ImageSet.from_array(imgs, ids=["a", "b", "c", "d"])
    np.testing.assert_array_equal(s.subset(["c", "a"]).array()[:, :, :, 0], imgs[[2, 0]])
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the requested ids are missing from image set "
                                              r"'array', e.g. \['zz'\]"):
        s.subset(["a", "zz"])


# ------------------------------------------------------------------------------------ content keys
def test_changed_middle_units_of_a_handle_are_recomputed(tmp_path, rng):
    """Units 8..31 of a non-numpy feature source change: the rerun recomputes and scores the new
    features (equal to a fresh run on them), never the stale result."""
    feats, brains = make_experiment(rng)
    cfg = _config(tmp_path / "o", decoding={"units_per_layer": None, "chunk_size": 1000})
    handles = {k: Handle(np.array(v), feats.ids) for k, v in feats.items()}
    old = _accuracy(run_experiment(cfg, brain=brains, features={"net": handles}, progress=False))
    again = run_experiment(cfg, brain=brains, features={"net": handles}, progress=False)
    assert again.summary["n_run"] == 0
    changed = {k: Handle(h.data.copy(), h.ids) for k, h in handles.items()}
    changed["layer2"].data[:, 8:32] = rng.standard_normal((150, 24)).astype(np.float32)
    rerun = run_experiment(cfg, brain=brains, features={"net": changed}, progress=False)
    assert rerun.summary["n_run"] > 0
    fresh = run_experiment(_config(tmp_path / "fresh", decoding={"units_per_layer": None, "chunk_size": 1000}),
                           brain=brains, features={"net": changed}, progress=False)
    pd.testing.assert_frame_equal(_accuracy(rerun), _accuracy(fresh))
    new = _accuracy(rerun)
    moved = (new.layer == "layer2") & new.unit.between(8, 31)
    assert not np.allclose(new.accuracy[moved], old.accuracy[moved])
    np.testing.assert_array_equal(new.accuracy[~moved & (new.layer != "layer2")],
                                  old.accuracy[~moved & (old.layer != "layer2")])


def test_changed_bhscore_feature_file_is_recomputed(tmp_path, rng):
    """A BHscore tree rewritten in place (same paths, other values) is another input."""
    import json

    from brainlike.features import LayerFeatures, export_bhscore
    from brainlike.pipeline import load_config

    feats, brains = make_experiment(rng, n_layers=3, n_units=(20, 16, 12))
    ids = list(feats.ids)

    def tree(values):
        lf = {k: LayerFeatures(v, ids, (v.shape[1],), name=k) for k, v in values.items()}
        export_bhscore(lf, tmp_path / "features", "ImageNetTest", "caffe", "Net")

    settings = {"subjects": ["s1"], "rois": ["R1", "R2", "R3"],
                "dnns": {"Net": {"dir": "caffe/Net", "layers": ["layer1", "layer2", "layer3"]}}}
    (tmp_path / "settings.json").write_text(json.dumps(settings))

    def run(out):
        exp = load_config(tmp_path / "settings.json", features_root=tmp_path / "features" / "ImageNetTest",
                          out=str(out), decoding={"n_feat": 10, "units_per_layer": None},
                          scores={"n_layers": 3, "n_boot": 10, "n_perm": 10},
                          execution={"scheduler": "synchronous"}, report=False)
        return run_experiment(exp, brain={"s1": brains[0]}, progress=False)

    values = {k: np.array(v) for k, v in feats.items()}
    tree(values)
    first = _accuracy(run(tmp_path / "o"))
    values["layer3"][:, 3] = rng.standard_normal(150).astype(np.float32)
    tree(values)
    second = run(tmp_path / "o")
    assert second.summary["n_run"] > 0
    pd.testing.assert_frame_equal(_accuracy(second), _accuracy(run(tmp_path / "fresh")))
    assert not _accuracy(second).equals(first)


def test_feature_store_name_keys_weights_and_pixels():
    from types import SimpleNamespace

    from brainlike.pipeline.config import DNN
    from brainlike.pipeline.inputs import feature_store_name
    from brainlike.stimuli import ImageSet

    dnn = DNN(name="a", layers=["l1", "l2"], model="torchvision:alexnet")
    imgs = np.zeros((3, 4, 4), np.uint8)
    plain = ImageSet.from_array(imgs, ids=["a", "b", "c"])
    other = imgs.copy()
    other[1, 2, 2] = 1  # one pixel
    names = {feature_store_name(dnn, SimpleNamespace(fingerprint=lambda w=w: w), s)
             for w in ("weights-1", "weights-2")
             for s in (plain, ImageSet.from_array(other, ids=["a", "b", "c"]),
                       ImageSet.from_array(imgs, ids=["a", "b", "d"]))}
    assert len(names) == 6 and all(n.startswith("torchvision_alexnet~") for n in names)


def test_v4_benchmark_resumes_only_on_the_same_inputs():
    """The V4 benchmark's partial.csv is reused per block only when the weights, the images and every
    response are those of the finished rows (its options string alone would reuse stale rows)."""
    from types import SimpleNamespace

    from brainlike.stimuli import ImageSet
    from brainlike.validation.cowley import _inputs_key

    rng = np.random.default_rng(0)
    data = BrainData(rng.standard_normal((4, 3)), ["a", "b", "c", "d"], subject="s")
    imgs = np.zeros((4, 4, 4), np.uint8)
    stim = ImageSet.from_array(imgs, ids=data.stimulus_ids)
    net = SimpleNamespace(fingerprint=lambda: "weights-1")
    key = _inputs_key(net, stim, data)
    assert key == _inputs_key(net, ImageSet.from_array(imgs, ids=data.stimulus_ids), data)
    resp = data.responses.copy()
    resp[2, 1] += 1e-3  # one response
    other_pixels = imgs.copy()
    other_pixels[3, 1, 1] = 7  # one pixel
    assert len({key,
                _inputs_key(SimpleNamespace(fingerprint=lambda: "weights-2"), stim, data),
                _inputs_key(net, ImageSet.from_array(other_pixels, ids=data.stimulus_ids), data),
                _inputs_key(net, stim, BrainData(resp, data.stimulus_ids, subject="s")),
                _inputs_key(net, stim, BrainData(data.responses, ["a", "b", "d", "c"], subject="s"))}) == 5
