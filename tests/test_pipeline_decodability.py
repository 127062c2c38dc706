"""Decodability studies (Horikawa et al. 2019) through the pipeline, on a miniature OpenNeuro ds001246.

The miniature (``brainlike.demo.horikawa.write_horikawa_bids``; file names cited there) has
planted signal: every ROI's voxels mix the units of one AlexNet layer. A study decodes every
unit of every layer from VC, and its files are written in the published decodedDNN layout.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from brainlike.datasets import load_decodability, load_horikawa_bids, read_decoded_features
from brainlike.demo.horikawa import ALEXNET_LAYERS, write_horikawa_bids
from brainlike.pipeline import load_config, run_experiment
from brainlike.scores import add_ranks, average_subjects, unit_accuracy

SUBJECTS = ("sub-01", "sub-02")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("horikawa")
    root = base / "ds001246"
    planted = write_horikawa_bids(root, subjects=SUBJECTS, n_train=60, n_test=6, test_repeats=4,
                                  blocks_per_run=12, n_units=12)
    brains = {s: load_horikawa_bids(root, s, roi="VC") for s in SUBJECTS}
    cfg = {"name": "decodability", "out": str(base / "out"), "analyses": ["decodability"], "rois": ["VC"],
           "dnns": {"AlexNet": {"features": str(root / "features/caffe/AlexNet"), "layers": ALEXNET_LAYERS}},
           "decoding": {"chunk_size": 5},  # 12 units per layer: 3 chunks per layer, joined in the files
           "execution": {"scheduler": "synchronous"}}
    res = run_experiment(cfg, brain=brains, progress=False)
    return res, planted, cfg


def test_one_roi_all_units_of_every_layer(study):
    res, planted, _ = study
    t = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    assert set(t.roi) == {"VC"} and list(dict.fromkeys(t.layer)) == ALEXNET_LAYERS
    # every unit of every layer (units_per_layer defaults to all units in a decodability study)
    assert (t.groupby(["subject", "layer"]).unit.nunique() == 12).all()
    # the planted signal is decodable from VC
    assert t.accuracy.mean() > 0.3
    assert res.summary["n_jobs"] == 2 * 8 * 3  # subjects x layers x unit chunks, decode jobs only
    assert len(res.scores) == 0  # no BH score from one ROI
    assert res.report is not None and res.report.is_file()


def test_published_layout_round_trip(study):
    res, planted, _ = study
    out = res.out / "decodability"
    # bdds 1.0.1 names (KamitaniLab/brain-decoding-datasets bdds/decodeddnn.py)
    assert (out / "accuracy/AlexNet/fc8/accuracy-AlexNet-fc8-sub-02.mat").is_file()
    assert (out / "rank/AlexNet/conv1/rank-AlexNet-conv1-Averaged.mat").is_file()
    test_id = planted["test_ids"][0]
    assert (out / f"decoded/AlexNet/conv3/sub-01/decoded-AlexNet-conv3-sub-01-{test_id}.mat").is_file()
    assert (out / f"true/AlexNet/conv3/true-AlexNet-conv3-{test_id}.mat").is_file()
    t = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    back = load_decodability(out).rename(columns={"net": "dnn"})
    expect = add_ranks(pd.concat([t, average_subjects(t, name="Averaged")], ignore_index=True))
    m = expect.merge(back, on=["dnn", "roi", "layer", "subject", "unit"], suffixes=("", "_file"), validate="1:1")
    assert len(m) == len(expect) == len(back) == 3 * 8 * 12
    np.testing.assert_allclose(m.accuracy_file, m.accuracy, rtol=1e-6)
    np.testing.assert_array_equal(m.rank_file, m["rank"])


def test_decoded_and_true_features(study):
    res, planted, _ = study
    out = res.out / "decodability"
    t = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    row = {i: k for k, i in enumerate(planted["ids"])}
    for layer in ("conv1", "fc8"):
        ids, true = read_decoded_features(out, "AlexNet", layer)
        assert ids == sorted(planted["test_ids"])
        np.testing.assert_allclose(true, planted["features"][layer][[row[i] for i in ids]], rtol=1e-5, atol=1e-6)
        for s in SUBJECTS:
            dids, dec = read_decoded_features(out, "AlexNet", layer, s)
            assert dids == ids
            acc = t[(t.subject == s) & (t.layer == layer)].sort_values("unit").accuracy.to_numpy()
            # the files hold the decoder's predictions: their accuracy is the table's
            np.testing.assert_allclose(unit_accuracy(true, dec), acc, atol=1e-4)
            # on the features' scale (training mean and SD restored), not z-scored
            train = planted["features"][layer][[row[i] for i in planted["train_ids"]]]
            assert abs(dec.mean() - train.mean()) < 0.5


def test_decoding_with_one_roi_runs_without_bh_score(study, tmp_path, caplog):
    res, planted, cfg = study
    root = res.out.parent / "ds001246"
    brains = {"sub-01": load_horikawa_bids(root, "sub-01", roi="VC")}
    cfg = {**cfg, "out": str(tmp_path / "dec"), "analyses": ["decoding"], "decoding": {"units_per_layer": 5},
           "dnns": {"AlexNet": {**cfg["dnns"]["AlexNet"], "layers": ["conv1"]}}}
    with caplog.at_level(logging.WARNING, logger="brainlike"):
        r = run_experiment(cfg, brain=brains, progress=False, report=False)
    assert "no decoding BH score" in caplog.text
    t = pd.read_parquet(r.results_dir / "decoding_accuracy.parquet")
    assert len(t) == 5 and len(r.scores) == 0
    assert not (tmp_path / "dec" / "decodability").exists()


def test_config_rules_for_roi_and_layer_counts(study):
    _, _, cfg = study
    one_layer = {**cfg, "dnns": {"AlexNet": {**cfg["dnns"]["AlexNet"], "layers": ["fc8"]}}}
    exp = load_config(one_layer)
    assert exp.rois == ["VC"] and exp.dnns["AlexNet"].layers == ["fc8"]
    assert exp.decoding["units_per_layer"] is None  # decodability: all units unless asked otherwise
    assert load_config({**cfg, "decoding": {"units_per_layer": 100}}).decoding["units_per_layer"] == 100
    assert exp.decoding["chunk_size"] == 5
    assert load_config({**cfg, "analyses": ["decoding"]}).decoding["units_per_layer"] == 1000
    # the encoding BH score still needs >= 2 ROIs and >= 2 layers
    with pytest.raises(ValueError, match=r"config key 'rois'.*at least 2 ROIs"):
        load_config({**cfg, "analyses": ["encoding"]})
    with pytest.raises(ValueError, match=r"config key 'dnns.AlexNet.layers'.*at least 2 layers"):
        load_config({**one_layer, "analyses": ["encoding"], "rois": ["V1", "V2"]})
    with pytest.raises(ValueError, match=r"config key 'analyses'.*'decodability'"):
        load_config({**cfg, "analyses": ["decodabilty"]})


def test_decoded_files_equal_an_independent_decoder_on_the_features_scale(study):
    from brainlike.pipeline.compute import decode_units

    res, planted, _ = study
    root = res.out.parent / "ds001246"
    b = load_horikawa_bids(root, "sub-01", roi="VC")
    train, test = b.select_split("train"), b.select_split("test").average_repetitions()
    row = {i: k for k, i in enumerate(planted["ids"])}
    feats = planted["features"]["fc8"]
    y_train = feats[[row[i] for i in train.stimulus_ids]]
    y_test = feats[[row[i] for i in test.stimulus_ids]]
    _, pred, _ = decode_units(train.responses, y_train, test.responses, y_test, alpha=100.0, n_feat=500)
    # back to the features' scale with the training mean and SD (ddof=1, as the decoder z-scores)
    expect = pred * y_train.std(axis=0, ddof=1) + y_train.mean(axis=0)
    ids, dec = read_decoded_features(res.out / "decodability", "AlexNet", "fc8", "sub-01")
    order = [list(test.stimulus_ids).index(i) for i in ids]
    np.testing.assert_allclose(dec, expect[order], rtol=1e-4, atol=1e-4)


def test_command_line_route_on_the_openneuro_folder(study, tmp_path, capsys):
    from brainlike.cli import main

    res, _, _ = study
    root = res.out.parent / "ds001246"
    cfg = tmp_path / "horikawa2019.yaml"
    cfg.write_text(f"""
name: cli
out: {tmp_path / 'out'}
analyses: [decodability]
dataset: {{format: bids, path: {root}}}
subjects: [sub-01]
rois: [VC]
dnns:
  AlexNet: {{features: {root / 'features/caffe/AlexNet'}, layers: [conv1, fc8]}}
execution: {{scheduler: synchronous}}
""")
    assert main(["run", str(cfg), "--no-report"]) == 0
    out, err = capsys.readouterr()
    assert "brain data of sub-01: 84 samples x 384 voxels (horikawa_bids, preprocessed runs)" in err
    assert "no BH scores" in out and f"decodability files: {tmp_path / 'out' / 'decodability'}" in out
    t = load_decodability(tmp_path / "out" / "decodability")
    assert set(t.layer) == {"conv1", "fc8"} and set(t.subject) == {"sub-01", "Averaged"} and len(t) == 2 * 2 * 12
