"""The pipeline's ``encoding.method: recipe`` (BHscore's published encoding) end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainlike.pipeline import compute, run_experiment
from brainlike.pipeline.config import from_bhscore_settings, load_config

from test_pipeline import make_experiment, result_files, small_config

RECIPE = {"method": "recipe", "n_feat": 10, "voxels_per_job": 40, "chunk_size": 16}


def test_recipe_jobs_tables_scores_and_resume(tmp_path, rng):
    feats, brains = make_experiment(rng)
    cfg = small_config(tmp_path / "o", analyses=["encoding"], encoding=RECIPE, scores={"voxels_per_roi": 20})
    res = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    e = pd.read_parquet(res.results_dir / "encoding_accuracy.parquet")
    assert list(e.columns) == ["dnn", "subject", "roi", "layer", "layer_index", "voxel", "accuracy", "alpha"]
    assert len(e) == 4 * 4 * 20 and (e["alpha"] == 100.0).all()  # layers x ROIs x sampled voxels
    assert e.groupby(["roi", "layer"])["voxel"].nunique().eq(20).all()
    # 80 sampled voxels of the subject in jobs of 40: 2 jobs per layer
    files = result_files(tmp_path / "o")
    assert sum("encoding-recipe-" in f for f in files) == 4 * 2
    # the planted hierarchy (ROI k driven by layer k) is recovered
    s = res.scores.set_index("kind")
    assert s.loc["encoding", "score"] > 0.5
    # one accuracy equals a direct call of the recipe on the same voxel
    sub = brains[0]
    tr, te = sub.select_split("train"), sub.select_split("test").average_repetitions()
    row = {f"im{i:03d}": i for i in range(150)}
    r3 = e[(e.roi == "R3") & (e.layer == "layer3")].sort_values("voxel")
    cols = np.flatnonzero(sub.rois["R3"])[r3["voxel"].to_numpy() - 50]  # R3 holds voxel columns 50..74
    acc, *_ = compute.encode_recipe(feats["layer3"], np.array([row[i] for i in tr.stimulus_ids]),
                                    tr.responses[:, cols], np.array([row[i] for i in te.stimulus_ids]),
                                    te.responses[:, cols], n_feat=10)
    np.testing.assert_allclose(r3["accuracy"].to_numpy(), acc, rtol=1e-4, atol=1e-5)
    # resumable: a second run computes nothing; a lost result is recomputed alone, identically
    again = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    assert again.summary["n_run"] == 0
    victim = sorted((tmp_path / "o" / "work").rglob("voxels-00001.npz"))[0]
    victim.unlink()
    third = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    assert third.summary["n_run"] == 1 and result_files(tmp_path / "o") == files


def test_layer_shuffled_control_near_zero(tmp_path, rng):
    feats, brains = make_experiment(rng, n_units=(80, 80, 80, 80), n_vox=60)
    cfg = small_config(tmp_path / "o", analyses=["encoding"], encoding={**RECIPE, "voxels_per_job": 240},
                       scores={"n_perm": 0})
    cfg["dnns"]["shuffled"] = {**cfg["dnns"]["net"], "control": "layer_shuffled"}
    res = run_experiment(cfg, brain=brains, features={"net": feats, "shuffled": feats}, progress=False)
    s = res.scores.set_index("dnn")
    assert s.loc["net", "score"] > 0.5 and abs(s.loc["shuffled", "score"]) < 0.25


def test_settings_json_defaults_to_the_recipe_and_ridge_cv_stays():
    raw = {"subjects": ["sub-01"], "rois": ["V1", "V2"], "dnns": {"A": {"dir": "caffe/AlexNet", "layers": ["c1", "c2"]}}}
    assert from_bhscore_settings(raw)["encoding"]["method"] == "recipe"
    yaml_like = {"dnns": {"A": {"features": "f", "layers": ["c1", "c2"]}}}
    assert load_config(yaml_like).encoding["method"] == "ridge_cv"
    exp = load_config({**yaml_like, "encoding": {"method": "recipe"}})
    assert (exp.encoding["alpha"], exp.encoding["n_feat"]) == (100.0, 500)
    with pytest.raises(ValueError, match=r"'encoding.method': expected one of \['ridge_cv', 'recipe'\]"):
        load_config({**yaml_like, "encoding": {"method": "fastl2lir"}})
    with pytest.raises(ValueError, match="'encoding.n_feat'"):
        load_config({**yaml_like, "encoding": {"method": "recipe", "n_feat": 0}})
