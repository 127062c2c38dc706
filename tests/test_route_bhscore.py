"""The BHscore route end to end: BHscore's data/ folder as is -> brainlike run -> its own output trees.

The miniature folder is written by ``brainlike.demo.layouts.bhscore_layout`` (names and nesting of
KamitaniLab/BHscore, each cited there; BData written with bdpy) with a planted hierarchy.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from brainlike.cli import main
from brainlike.demo.layouts import BH_SHAPES, bhscore_layout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return bhscore_layout(tmp_path_factory.mktemp("bhscore") / "BHscore")


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory):
    """One subject, with index_random1000.mat (unit subsets) in the training tree's network folder."""
    return bhscore_layout(tmp_path_factory.mktemp("bhscore_index") / "BHscore", subjects=["sub-01"],
                          feature_index=True, seed=1)


def test_layout_is_bhscores(mini):
    """The names BHscore's scripts open, and bdpy reads them (BData selectors, Features labels)."""
    import bdpy
    from bdpy.dataform import Features

    data = mini["data"]
    for sub in ("sub-01", "sub-02", "sub-03"):
        for part in ("Training", "Test"):
            assert (data / "fmri" / f"{sub}_perceptionNaturalImage{part}_VC_v2.h5").is_file()
    bd = bdpy.BData(str(data / "fmri" / "sub-01_perceptionNaturalImageTraining_VC_v2.h5"))
    assert bd.select("ROI_V1 = 1", verbose=False).shape == (200, 60)
    feats = Features(str(data / "features" / "ImageNetTraining" / "caffe" / "AlexNet"))
    assert feats.layers == sorted(mini["layers"]) and len(feats.labels) == 100
    assert feats.get_features("conv1_abs").shape == (100, 8, 3, 3)
    # labels in Python's sorted order, which differs from natural order in this folder
    from brainlike.stimuli import natural_key

    assert feats.labels == sorted(mini["images"]["train"]) != sorted(mini["images"]["train"], key=natural_key)
    # image_index k is the k-th sorted stem, and stimulus_name (vmap) names the same image
    idx = bd.select("image_index", verbose=False).ravel().astype(int)
    assert list(np.asarray(feats.labels)[idx - 1]) == bd.get_label("stimulus_name")


def test_bdata_without_bdpy_is_read_alike(tmp_path, monkeypatch):
    """The h5py fallback of write_bdata gives a file bdpy reads as it reads its own."""
    import sys

    import bdpy

    from brainlike.demo.layouts import write_bdata

    rng = np.random.default_rng(0)
    cols = [("VoxelData", rng.standard_normal((6, 5))), ("image_index", np.arange(1, 7.0)),
            ("stimulus_name", np.arange(6) + 0.5)]
    masks = {"V1": np.array([1, 1, 0, 0, 0], bool), "HVC": np.array([0, 0, 1, 1, 1], bool)}
    vmaps = {"stimulus_name": {k + 0.5: f"n0000000{k}_1" for k in range(6)}}
    write_bdata(tmp_path / "with.h5", cols, masks, vmaps)
    monkeypatch.setitem(sys.modules, "bdpy", None)  # `import bdpy` raises ImportError
    write_bdata(tmp_path / "without.h5", cols, masks, vmaps)
    monkeypatch.undo()
    a, b = bdpy.BData(str(tmp_path / "with.h5")), bdpy.BData(str(tmp_path / "without.h5"))
    for sel in ("ROI_V1 = 1", "ROI_HVC = 1", "image_index", "VoxelData"):
        np.testing.assert_array_equal(a.select(sel, verbose=False), b.select(sel, verbose=False))
    assert a.get_label("stimulus_name") == b.get_label("stimulus_name")


def test_documented_command_and_bhscore_trees(mini, tmp_path, capsys):
    """`brainlike run settings.json --bhscore-data DATA --out OUT` on BHscore's folder as is: a BH score
    > 0.5 from the planted hierarchy, and the accuracies in BHscore's tree as its scripts write them,
    read back by `brainlike reproduce`'s reader."""
    import hdf5storage

    from brainlike.datasets import bhscore as bh
    from brainlike.reproduce import compute_bhscores

    out = tmp_path / "out"
    assert main(["run", str(mini["settings"]), "--bhscore-data", str(mini["data"]), "--out", str(out),
                 "--scheduler", "synchronous", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "AlexNet decoding" in printed
    scores = pd.read_csv(out / "results" / "bh_scores.csv").set_index(["dnn", "kind"])["score"]
    assert scores[("AlexNet", "decoding")] > 0.5
    table = pd.read_parquet(out / "results" / "decoding_accuracy.parquet")
    assert list(table.columns) == ["dnn", "subject", "roi", "layer", "layer_index", "unit", "accuracy"]
    assert set(table["subject"]) == {"sub-01", "sub-02", "sub-03"}  # names kept, never coerced
    # every unit of the files (BHscore decodes whole layers)
    assert table.groupby(["layer"], observed=True)["unit"].nunique().to_dict() == {
        "conv1_abs": 72, "conv2": 72, "conv3": 54, "conv4": 54, "conv5": 54, "fc6": 48, "fc7": 48, "fc8": 40}
    # BHscore's tree: (1,) + unit shape, float32, key 'accuracy'
    f = out / "decoding_accuracy" / "ImageNetTest" / "caffe" / "AlexNet" / "conv2" / "sub-02" / "V2" / "accuracy.mat"
    acc = hdf5storage.loadmat(str(f))["accuracy"]
    assert acc.shape == (1, 8, 3, 3) and acc.dtype == np.float32
    g = table[(table.layer == "conv2") & (table.subject == "sub-02") & (table.roi == "V2")].sort_values("unit")
    np.testing.assert_allclose(acc.ravel(), g["accuracy"].to_numpy(), atol=1e-7)
    # the reproduce reader reads the whole run, equal to the table
    settings = bh.read_settings(mini["settings"])
    tree = bh.read_accuracy_tree(out, settings, kind="decoding")
    back = bh.tree_to_table(tree, settings, "decoding")
    merged = back.merge(table, on=["dnn", "subject", "roi", "layer", "unit"], suffixes=("_tree", "_run"))
    assert len(merged) == len(table) == len(back)
    np.testing.assert_allclose(merged["accuracy_tree"], merged["accuracy_run"], atol=1e-7)
    repro = compute_bhscores(tree, None, settings, n_repeat=20, seed=0)
    assert repro.loc[0, "bh_decoding"] > 0.5


def test_layer_shuffled_control_scores_near_zero(mini, tmp_path):
    from brainlike.pipeline import run_experiment

    settings = json.loads(mini["settings"].read_text())
    net = settings["dnns"]["AlexNet"]
    cfg = {"subjects": ["sub-01"], "rois": settings["rois"],
           "dnns": {"AlexNet": net, "AlexNet (layer-shuffled)": {**net, "control": "layer_shuffled"}},
           "decoding": {"units_per_layer": None}, "scores": {"n_boot": 0, "n_perm": 0}, "report": False}
    res = run_experiment(cfg, out=tmp_path / "out", bhscore_data=mini["data"], scheduler="synchronous", progress=False)
    s = res.scores.set_index("dnn")["score"]
    assert s["AlexNet"] > 0.5
    assert abs(s["AlexNet (layer-shuffled)"]) < 0.25
    # the control is not written in BHscore's tree (it would overwrite the network's files)
    tree = tmp_path / "out" / "decoding_accuracy" / "ImageNetTest" / "caffe"
    assert [p.name for p in tree.iterdir()] == ["AlexNet"]


def _bhscore_procedure(data, subject, dnn_dir, layers, rois, n_feat, alpha=100.0, feature_index=None):
    """BHscore's decoding, step by step as decoding/feature_decoding_{train,predict}.py do it, with
    bdpy (BData.select, Features, get_refdata) and FastL2LiR 0.11; returns {(layer, roi): accuracy}."""
    import bdpy
    from bdpy.dataform import Features
    from bdpy.util import get_refdata
    from fastl2lir import FastL2LiR

    train = bdpy.BData(str(data / "fmri" / f"{subject}_perceptionNaturalImageTraining_VC_v2.h5"))
    test = bdpy.BData(str(data / "fmri" / f"{subject}_perceptionNaturalImageTest_VC_v2.h5"))
    kw = {"feature_index": str(feature_index)} if feature_index else {}
    f_train = Features(str(data / "features" / "ImageNetTraining" / dnn_dir), **kw)
    f_test = Features(str(data / "features" / "ImageNetTest" / dnn_dir), **kw)
    out = {}
    for roi in rois:
        x = train.select(f"ROI_{roi} = 1", verbose=False)  # train.py l.160-161
        x_labels = train.select("image_index", verbose=False).flatten()
        xt = test.select(f"ROI_{roi} = 1", verbose=False)
        xt_labels = test.select("image_index", verbose=False).flatten()
        for layer in layers:
            y = f_train.get_features(layer)  # train.py l.164-165
            y_labels = f_train.index
            x_mean, x_norm = np.mean(x, axis=0)[None], np.std(x, axis=0, ddof=1)[None]  # l.174-179
            y_mean, y_norm = np.mean(y, axis=0)[None], np.std(y, axis=0, ddof=1)[None]
            y_index = np.array([np.where(np.array(y_labels) == xl) for xl in x_labels]).flatten()  # l.183
            # bdpy ModelTraining: normalise X and Y, sort Y, cast to float32 (train.dtype), fit
            X = ((x - x_mean) / x_norm).astype(np.float32)
            Y = ((y - y_mean) / y_norm)[y_index].astype(np.float32)
            model = FastL2LiR()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, Y, alpha=alpha, n_feat=n_feat)
            # predict.py l.146-148: average the test repetitions per unique image_index
            uniq = np.unique(xt_labels)
            xa = np.vstack([np.mean(xt[(np.array(xt_labels) == lb).flatten(), :], axis=0) for lb in uniq])
            # l.158-163: normalisation parameters as saved (float32 .mat files)
            xa = ((xa - x_mean.astype(np.float32)) / x_norm.astype(np.float32)).astype(np.float32)
            pred = model.predict(xa) * y_norm.astype(np.float32) + y_mean.astype(np.float32)  # l.185
            y_true = f_test.get_features(layer)
            p2 = pred.reshape([pred.shape[0], -1])  # l.193-201
            t2 = get_refdata(y_true.reshape([y_true.shape[0], -1]), np.array(f_test.index), uniq)
            acc = np.array([np.corrcoef(p2[:, i].flatten(), t2[:, i].flatten())[0, 1] for i in range(p2.shape[1])])
            out[layer, roi] = acc.reshape((1,) + pred.shape[1:])
    return out


def test_unit_accuracies_equal_bhscores_own_procedure(mini_index, tmp_path, monkeypatch):
    """brainlike's per-unit decoding accuracies equal those of BHscore's procedure (bdpy + FastL2LiR
    0.11: z-scoring with training statistics, n_feat voxels (30 of 60 in the miniature), alpha 100,
    test repetitions averaged, Pearson per unit) to 1e-4 for >= 99 % of the units; unit subsets
    from index_random1000.mat as bdpy's Features(feature_index=...) takes them. Then the other
    way: a tree written as BHscore's predict script writes it is read by brainlike's reader."""
    import bdpy.dataform.features as bdf
    from bdpy.dataform import save_array

    from brainlike.datasets import bhscore as bh
    from brainlike.pipeline import run_experiment

    monkeypatch.setattr(bdf, "_determine_num_parallel", lambda n: 1)  # same arrays, no 64-process pool
    info = mini_index
    index_file = info["data"] / "features" / "ImageNetTraining" / info["dir"] / "index_random1000.mat"
    cfg = {"subjects": ["sub-01"], "rois": info["rois"],
           "dnns": {"AlexNet": {"dir": info["dir"], "layers": info["layers"]}},
           "decoding": {"n_feat": 30, "units_per_layer": None}, "scores": {"n_boot": 0, "n_perm": 0},
           "report": False}
    res = run_experiment(cfg, out=tmp_path / "out", bhscore_data=info["data"], scheduler="synchronous", progress=False)
    ours = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    ref = _bhscore_procedure(info["data"], "sub-01", info["dir"], info["layers"], info["rois"], 30,
                             feature_index=index_file)
    diffs = []
    for (layer, roi), acc in ref.items():
        g = ours[(ours.layer == layer) & (ours.roi == roi)].sort_values("unit")
        assert acc.shape == (1, len(g))  # the index subset: 3/4 of the layer's units
        diffs.append(np.abs(g["accuracy"].to_numpy() - acc.ravel()))
    d = np.concatenate(diffs)
    assert d.size == 1650
    assert np.mean(d <= 1e-4) >= 0.99, np.quantile(d, [0.5, 0.99, 1.0])
    # vice versa: BHscore's own tree (bdpy save_array, as predict.py l.229-230) read by brainlike
    settings = {"subjects": ["sub-01"], "rois": info["rois"], "dnns": {"AlexNet": {"dir": info["dir"],
                                                                                   "layers": info["layers"]}}}
    root = tmp_path / "bhscore-run" / "decoding_accuracy" / "ImageNetTest"
    for (layer, roi), acc in ref.items():
        p = root / info["dir"] / layer / "sub-01" / roi
        p.mkdir(parents=True)
        save_array(str(p / "accuracy.mat"), acc, key="accuracy", dtype=np.float32, sparse=False)
    tree = bh.read_accuracy_tree(tmp_path / "bhscore-run", settings, kind="decoding")
    ours_tree = bh.read_accuracy_tree(tmp_path / "out", settings, kind="decoding")
    for (layer, roi), acc in ref.items():
        np.testing.assert_allclose(tree["AlexNet"][layer]["sub-01"][roi], acc.ravel().astype(np.float32), atol=0)
        assert np.mean(np.abs(ours_tree["AlexNet"][layer]["sub-01"][roi] - tree["AlexNet"][layer]["sub-01"][roi])
                       <= 1e-4) >= 0.95


# ------------------------------------------------------------------------------------- bad folders
def test_folder_errors_are_one_clear_line(mini, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mini["data"], data)
    (data / "fmri" / "sub-02_perceptionNaturalImageTest_VC_v2.h5").unlink()
    code = main(["run", str(mini["settings"]), "--bhscore-data", str(data), "--out", str(tmp_path / "o"),
                 "--scheduler", "synchronous", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "sub-02_perceptionNaturalImageTest_VC_v2.h5" in err
    # a test feature file missing from one layer: bdpy's Features would refuse the tree too
    next((data / "features" / "ImageNetTest" / "caffe" / "AlexNet" / "fc7").glob("*.mat")).unlink()
    code = main(["run", str(mini["settings"]), "--bhscore-data", str(data), "--out", str(tmp_path / "o"),
                 "--scheduler", "synchronous", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "other image files" in err and "fc7" in err
    code = main(["run", str(mini["settings"]), "--bhscore-data", str(tmp_path / "nope"), "--check"])
    assert code == 2 and "--bhscore-data" in capsys.readouterr().err


def test_image_index_and_stimulus_name_must_agree(mini, tmp_path):
    """A feature tree of other images than the fMRI file's is detected, not paired by position."""
    import shutil

    from brainlike.datasets.bhscore_data import load_bhscore_fmri

    data = tmp_path / "data"
    shutil.copytree(mini["data"], data)
    d = load_bhscore_fmri(data, "sub-01", ["caffe/AlexNet"], rois=["V1", "HVC"])
    assert set(d.stimulus_ids[d.split == "test"]) == set(mini["images"]["test"])
    assert sorted(d.rois) == ["HVC", "V1", "V2", "V3", "V4", "VC"] and d.n_voxels == 120
    # rename one test image file in every layer: the sorted order (and so image_index) shifts
    for layer in mini["layers"]:
        folder = data / "features" / "ImageNetTest" / "caffe" / "AlexNet" / layer
        first = sorted(folder.glob("*.mat"))[0]
        first.rename(folder / "n99999999_1.mat")
    with pytest.raises(ValueError, match="disagree"):
        load_bhscore_fmri(data, "sub-01", ["caffe/AlexNet"])


# ------------------------------------------------------------------------- your own files, no registry
def test_local_npz_and_bdata_datasets(mini, tmp_path):
    """dataset: {format: bdata | npz, path: ...} names local files; same accuracies both ways."""
    from brainlike.datasets.bhscore_data import load_bhscore_fmri
    from brainlike.datasets.local import save_npz_subject
    from brainlike.features import import_bhscore
    from brainlike.pipeline import run_experiment

    brain = load_bhscore_fmri(mini["data"], "sub-01", ["caffe/AlexNet"], rois=mini["rois"])
    save_npz_subject(tmp_path / "sub-01.npz", brain)
    net = [str(mini["data"] / "features" / t / "caffe" / "AlexNet") for t in ("ImageNetTraining", "ImageNetTest")]
    base = {"subjects": ["sub-01"], "rois": mini["rois"],
            "dnns": {"AlexNet": {"features": net, "layers": ["conv1_abs", "conv3", "conv5", "fc7", "fc8"]}},
            "decoding": {"units_per_layer": None, "n_feat": 30}, "scores": {"n_boot": 0, "n_perm": 0},
            "report": False}
    r_npz = run_experiment({**base, "dataset": {"format": "npz", "path": str(tmp_path / "{subject}.npz")}},
                           out=tmp_path / "npz", scheduler="synchronous", progress=False)
    # BData files named by a template, with the stimulus_name labels (as the encoding scripts read them)
    r_bd = run_experiment({**base, "dataset": {"format": "bdata", "label": "stimulus_name", "path": str(
        mini["data"] / "fmri" / "{subject}_perceptionNaturalImage{split}_VC_v2.h5"),
        "splits": {"train": "Training", "test": "Test"}}}, out=tmp_path / "bd", scheduler="synchronous", progress=False)
    a = pd.read_parquet(r_npz.results_dir / "decoding_accuracy.parquet")
    b = pd.read_parquet(r_bd.results_dir / "decoding_accuracy.parquet")
    np.testing.assert_allclose(a["accuracy"], b["accuracy"], atol=1e-6)
    assert r_npz.scores.loc[0, "score"] > 0.5
    # features read across both trees carry their ids
    fs = import_bhscore(net, layers=["fc8"])
    assert set(fs.ids) == set(mini["images"]["train"]) | set(mini["images"]["test"])


def test_local_dataset_config_errors():
    from brainlike.pipeline import load_config

    net = {"N": {"features": "f", "layers": ["a", "b"]}}
    with pytest.raises(ValueError, match="dataset.format"):
        load_config({"dnns": net, "dataset": {"format": "csv", "path": "x"}})
    with pytest.raises(ValueError, match="dataset.label' is not known for format 'npz'"):
        load_config({"dnns": net, "dataset": {"format": "npz", "path": "x", "label": "y"}})
    with pytest.raises(ValueError, match="dataset.path"):
        load_config({"dnns": net, "dataset": {"format": "bdata"}})
    with pytest.raises(ValueError, match="dataset.splits"):
        load_config({"dnns": net, "dataset": {"format": "bdata", "path": "{split}", "splits": {"val": "x"}}})


def test_encoding_recipe_and_control_from_the_command_line(mini, tmp_path, capsys):
    """--analyses decoding encoding runs BHscore's encoding recipe (the default for a settings.json);
    --control layer_shuffled adds the control network; encoding accuracies go to BHscore's
    encoding tree, one per voxel, read back by the reproduce reader."""
    import hdf5storage

    from brainlike.datasets import bhscore as bh

    settings = json.loads(mini["settings"].read_text())
    settings["subjects"] = ["sub-01"]
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "settings.json"), "--bhscore-data", str(mini["data"]), "--out", str(out),
                 "--analyses", "decoding", "encoding", "--control", "layer_shuffled", "--scheduler", "synchronous",
                 "--no-progress", "--no-report"]) == 0
    s = pd.read_csv(out / "results" / "bh_scores.csv").set_index(["dnn", "kind"])["score"]
    assert s[("AlexNet", "decoding")] > 0.5 and s[("AlexNet", "encoding")] > 0.5
    assert abs(s[("AlexNet (layer-shuffled)", "decoding")]) < 0.3
    assert abs(s[("AlexNet (layer-shuffled)", "encoding")]) < 0.3
    prov = json.loads((out / "results" / "provenance.json").read_text())
    assert prov["config"]["encoding"]["method"] == "recipe"
    f = out / "encoding_accuracy" / "ImageNetTest" / "caffe" / "AlexNet" / "fc8" / "sub-01" / "HVC" / "accuracy.mat"
    acc = hdf5storage.loadmat(str(f))["accuracy"]
    assert acc.shape == (1, 60) and acc.dtype == np.float32
    enc = pd.read_parquet(out / "results" / "encoding_accuracy.parquet")
    g = enc[(enc.dnn == "AlexNet") & (enc.layer == "fc8") & (enc.roi == "HVC")].sort_values("voxel")
    np.testing.assert_allclose(acc.ravel(), g["accuracy"].to_numpy(), atol=1e-7)
    tree = bh.read_accuracy_tree(out, settings, kind="encoding")
    assert sorted(tree["AlexNet"]) == sorted(settings["dnns"]["AlexNet"]["layers"])


def test_features_all_folder(mini, tmp_path, capsys, caplog):
    """--bhscore-features features_all reads data/features_all (BHscore's encoding scripts' folder); a data
    folder with only features_all/ is read for both analyses by default, and the log says so."""
    import logging
    import shutil

    data = tmp_path / "data"
    (data / "fmri").mkdir(parents=True)
    for f in (mini["data"] / "fmri").glob("sub-01_*"):
        shutil.copy(f, data / "fmri" / f.name)
    shutil.copytree(mini["data"] / "features", data / "features_all")
    settings = json.loads(mini["settings"].read_text())
    settings["subjects"] = ["sub-01"]
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    assert main(["run", str(tmp_path / "settings.json"), "--bhscore-data", str(data), "--out", str(tmp_path / "o"),
                 "--bhscore-features", "features_all", "--check"]) == 0
    assert "features_all/ImageNetTraining/caffe/AlexNet" in capsys.readouterr().out
    with caplog.at_level(logging.INFO, logger="brainlike"):
        assert main(["run", str(tmp_path / "settings.json"), "--bhscore-data", str(data), "--out",
                     str(tmp_path / "o"), "--check"]) == 0
    assert "only features_all/" in caplog.text
    assert "features_all/ImageNetTraining/caffe/AlexNet" in capsys.readouterr().out
    # forced to the decoding scripts' folder, its absence is named
    assert main(["run", str(tmp_path / "settings.json"), "--bhscore-data", str(data), "--out", str(tmp_path / "o"),
                 "--bhscore-features", "features", "--check"]) == 2
    assert "features/ImageNetTraining/caffe/AlexNet" in capsys.readouterr().err


def test_decoding_reads_features_encoding_reads_features_all(tmp_path, capsys):
    """With both of BHscore's folders (features/: a unit subset per layer; features_all/: every unit), one
    run decodes the subset and encodes from every unit, each source fingerprinted on its own; the BH
    scores equal those of the two analyses run apart with the folder forced."""
    mini = bhscore_layout(tmp_path / "BHscore", subjects=["sub-01"], n_train=60, n_test=20, voxels_per_roi=30,
                          features_all=True, seed=3)
    settings, data = str(mini["settings"]), str(mini["data"])

    def run(out, *extra):
        assert main(["run", settings, "--bhscore-data", data, "--out", str(tmp_path / out), "--scheduler",
                     "synchronous", "--no-progress", "--no-report", *extra]) == 0
        res = tmp_path / out / "results"
        return (pd.read_csv(res / "bh_scores.csv").set_index(["dnn", "kind"])["score"],
                json.loads((res / "provenance.json").read_text())["inputs"], res)

    assert main(["run", settings, "--bhscore-data", data, "--out", str(tmp_path / "c"), "--analyses", "decoding",
                 "encoding", "--check"]) == 0
    printed = capsys.readouterr().out
    assert "features/ImageNetTraining/caffe/AlexNet" in printed and "features_all/ImageNetTraining" in printed
    both, prov, res = run("both", "--analyses", "decoding", "encoding")
    full = {layer: int(np.prod(shape)) for layer, shape in BH_SHAPES.items()}
    subset = {layer: len(u) for layer, u in mini["decoding_units"].items()}
    assert all(subset[k] < full[k] for k in full)
    table = pd.read_parquet(res / "decoding_accuracy.parquet")
    assert table.groupby("layer", observed=True)["unit"].nunique().to_dict() == subset
    assert prov["n_units"]["AlexNet"] == subset
    assert prov["encoding_features"]["AlexNet"]["n_units"] == full
    assert "features_all" in prov["encoding_features"]["AlexNet"]["source"][0]
    assert prov["encoding_features"]["AlexNet"]["content"] != prov["features"]["AlexNet"]["content"]
    dec, prov_dec, _ = run("dec", "--analyses", "decoding", "--bhscore-features", "features")
    enc, prov_enc, _ = run("enc", "--analyses", "encoding", "--bhscore-features", "features_all")
    assert prov_dec["n_units"]["AlexNet"] == subset and prov_enc["n_units"]["AlexNet"] == full
    assert both[("AlexNet", "decoding")] == dec[("AlexNet", "decoding")]
    assert both[("AlexNet", "encoding")] == enc[("AlexNet", "encoding")]
    assert both[("AlexNet", "decoding")] > 0.5 and both[("AlexNet", "encoding")] > 0.5


def test_local_bids_and_single_file_bdata(tmp_path):
    """{format: bids} reads a BIDS folder through load_horikawa_bids (options passed on); {format: bdata}
    without splits takes the split of each sample from the file's DataType column (1 train, 2 test)."""
    from brainlike.datasets import load_horikawa_bids
    from brainlike.datasets.local import load_local
    from brainlike.demo.horikawa import write_horikawa_bids
    from brainlike.demo.layouts import write_bdata

    root = tmp_path / "ds001246"
    write_horikawa_bids(root, n_train=20, n_test=5, test_repeats=4, blocks_per_run=10, features=False)
    got = load_local({"format": "bids", "path": str(root), "options": {"delay_s": 3.0}}, "sub-01", ["V1"])
    ref = load_horikawa_bids(root, subject="sub-01", roi=["V1"], delay_s=3.0)
    np.testing.assert_array_equal(got.responses, ref.responses)
    assert list(got.stimulus_ids) == list(ref.stimulus_ids) and got.subject == "sub-01"

    rng = np.random.default_rng(0)
    datatype = np.array([1] * 6 + [2] * 4)
    write_bdata(tmp_path / "sub-01.h5", [("VoxelData", rng.standard_normal((10, 4))), ("DataType", datatype),
                                         ("image_index", np.arange(1.0, 11.0))],
                {"V1": np.array([1, 1, 0, 0], bool), "V2": np.array([0, 0, 1, 1], bool)})
    d = load_local({"format": "bdata", "path": str(tmp_path / "{subject}.h5"), "label": "image_index"}, "sub-01")
    assert list(d.split) == ["train"] * 6 + ["test"] * 4 and list(d.stimulus_ids[:2]) == ["1", "2"]
    with pytest.raises(FileNotFoundError, match="sub-02"):
        load_local({"format": "bdata", "path": str(tmp_path / "{subject}.h5")}, "sub-02")
