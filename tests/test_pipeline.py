"""Pipeline: configs, job bodies against independent references, the job graph, resumption."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.pipeline import Job, load_config, run_experiment
from brainlike.pipeline import compute, store
from brainlike.pipeline.config import read_config_file

SETTINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bhscore" / "settings.json"


# ------------------------------------------------------------------------------------------- helpers
def make_experiment(rng, n_train=120, n_test=30, n_layers=4, n_units=(60, 50, 40, 30), n_vox=25, noise=0.5,
                    n_subjects=1, seed=0):
    """Features of ``n_layers`` layers (a FeatureSet: arrays with their stimulus ids); ROI k's voxels
    are noisy mixtures of layer k's units."""
    from brainlike.datasets import BrainData
    from brainlike.features import FeatureSet

    n_img = n_train + n_test
    ids = [f"im{i:03d}" for i in range(n_img)]
    # layers share a little structure (like a real network) so that decoding is not trivial
    base = rng.standard_normal((n_img, 10))
    feats = {}
    for k in range(n_layers):
        mix = rng.standard_normal((10, n_units[k])) * 0.3
        feats[f"layer{k + 1}"] = (base @ mix + rng.standard_normal((n_img, n_units[k]))).astype(np.float32)
    brains = []
    for s in range(n_subjects):
        r = np.random.default_rng([seed, s])
        signal = np.hstack([feats[f"layer{k + 1}"] @ r.standard_normal((n_units[k], n_vox)) / np.sqrt(n_units[k])
                            for k in range(n_layers)])
        order = np.concatenate([np.arange(n_train), np.repeat(np.arange(n_train, n_img), 2)])
        split = np.array(["train"] * n_train + ["test"] * (2 * n_test))
        resp = signal[order] + noise * r.standard_normal((order.size, signal.shape[1]))
        rois = {}
        for k in range(n_layers):
            m = np.zeros(signal.shape[1], dtype=bool)
            m[k * n_vox:(k + 1) * n_vox] = True
            rois[f"R{k + 1}"] = m
        brains.append(BrainData(resp.astype(np.float32), np.asarray(ids)[order], rois=rois, split=split,
                                subject=f"s{s + 1}"))
    return FeatureSet(feats, ids), brains


def small_config(out, **kw):
    cfg = {
        "name": "test",
        "out": str(out),
        "analyses": ["decoding", "encoding"],
        "rois": ["R1", "R2", "R3", "R4"],
        "dnns": {"net": {"model": "fake", "layers": ["layer1", "layer2", "layer3", "layer4"]}},
        "decoding": {"alpha": 10.0, "n_feat": 10, "units_per_layer": 24, "chunk_size": 10},
        "encoding": {"alphas": [1.0, 100.0, 1e4], "cv": 3, "chunk_size": 16},
        "scores": {"n_layers": 3, "n_repeat": 5, "n_boot": 20, "n_perm": 20, "voxels_per_roi": None},
        "execution": {"scheduler": "synchronous"},
        "report": False,
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg


def result_files(out) -> dict[str, bytes]:
    work = Path(out) / "work"
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*.npz"))
            if "subjects" not in p.parts}


# ------------------------------------------------------------------------------------------- config
def test_bhscore_settings_accepted_as_is(mirror):
    exp = load_config(mirror / "bhscore" / "settings.json", out="x")
    raw = json.loads((mirror / "bhscore" / "settings.json").read_text())
    assert list(exp.dnns) == list(raw["dnns"])
    assert exp.dnns["AlexNet"].layers == raw["dnns"]["AlexNet"]["layers"]
    assert exp.dnns["AlexNet"].dir == "caffe/AlexNet"
    assert exp.subjects == ["sub-01", "sub-02", "sub-03"] and exp.rois == ["V1", "V2", "V3", "V4", "HVC"]
    assert exp.analyses == ["decoding"] and exp.decoding["alpha"] == 100.0 and exp.decoding["n_feat"] == 500


def test_yaml_config_defaults_and_relative_paths(tmp_path):
    (tmp_path / "exp.yaml").write_text(
        "name: t\nout: results\ndataset: cowley2023_v4\nrois: [V1, V2]\n"
        "dnns:\n  a:\n    model: torchvision:alexnet\n    layers: [conv1, fc8]\n"
        "decoding: {alpha: 5}\n")
    exp = load_config(tmp_path / "exp.yaml")
    assert exp.out == tmp_path / "results"
    assert exp.decoding["alpha"] == 5 and exp.decoding["n_feat"] == 500  # merged with defaults
    assert exp.dataset == {"name": "cowley2023_v4", "options": {}, "subject_option": "subject"}
    assert exp.to_dict()["dnns"]["a"]["layers"] == ["conv1", "fc8"]


@pytest.mark.parametrize("patch, key", [
    ({"colour": 1}, "'colour'"),
    ({"decoding": {"alpah": 1}}, "'decoding.alpah'"),
    ({"decoding": {"alpha": -1}}, "'decoding.alpha'"),
    ({"decoding": {"n_feat": 2.5}}, "'decoding.n_feat'"),
    ({"decoding": {"units_per_layer": 0}}, "'decoding.units_per_layer'"),
    ({"decoding": {"voxel_cache_mb": -1}}, "'decoding.voxel_cache_mb'"),
    ({"decoding": {"voxel_cache_mb": "2GB"}}, "'decoding.voxel_cache_mb'"),
    ({"encoding": {"alphas": []}}, "'encoding.alphas'"),
    ({"encoding": {"cv": 1}}, "'encoding.cv'"),
    ({"scores": {"pval": 1.5}}, "'scores.pval'"),
    ({"analyses": ["decode"]}, "'analyses'"),
    ({"rois": ["V1"]}, "'rois'"),
    ({"rois": ["V1", "V1"]}, "'rois'"),
    ({"dnns": {"a": {"model": "m", "layers": "conv1"}}}, "'dnns.a.layers'"),
    ({"dnns": {"a": {"model": "m", "layers": ["x", "y"], "layer": 1}}}, "'dnns.a.layer'"),
    ({"dnns": {"a": {"layers": ["x", "y"]}}}, "'dnns.a'"),
    ({"dnns": {"a": {"model": "m", "layers": ["x", "y"], "control": "shuffle"}}}, "'dnns.a.control'"),
    ({"execution": {"n_workers": 0}}, "'execution.n_workers'"),
    ({"seed": -1}, "'seed'"),
])
def test_bad_config_names_the_key(tmp_path, patch, key):
    cfg = small_config(tmp_path)
    cfg.update(patch)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(cfg)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        read_config_file(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    (tmp_path / "s.json").write_text(json.dumps({"subjects": ["a"], "rois": ["V1", "V2"],
                                                 "dnns": {"N": {"dir": "d", "layers": ["x", "y"], "extra": 1}}}))
    with pytest.raises(ValueError, match=r"'dnns\.N\.extra'"):
        load_config(tmp_path / "s.json")


# ------------------------------------------------------------------------------------------- atomic store
def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a" / "r.npz"

    def boom(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        store.save_npz(path, x=np.ones(3))
    assert not path.exists() and list(path.parent.iterdir()) == []
    monkeypatch.undo()
    store.save_npz(path, x=np.arange(3))
    np.testing.assert_array_equal(store.load_npz(path)["x"], np.arange(3))
    (path.parent / "r.npz.tmp-1-abc").write_bytes(b"junk")  # a killed writer's leftover
    assert store.remove_stale_tmp(tmp_path) == 0  # young: another process may still be writing it
    assert store.remove_stale_tmp(tmp_path, older_than_s=0) == 1 and path.exists()
    # results are flushed to disk before the rename that makes them count as done
    import os

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    store.save_npz(path, x=np.arange(4))
    store.save_bytes(path.with_suffix(".txt"), b"ok")
    assert len(synced) == 2


def test_safe_names_are_distinct():
    names = ["fire2:concat", "fire2/concat", "fire2_concat", "a b", ".."]
    safe = [store.safe_name(n) for n in names]
    assert len(set(safe)) == len(names) and all("/" not in s and ":" not in s for s in safe)


# ------------------------------------------------------------------------------------------- job bodies
def test_decode_units_matches_fastl2lir(rng):
    fastl2lir = pytest.importorskip("fastl2lir")
    x = rng.standard_normal((80, 30))
    y = x[:, :5] @ rng.standard_normal((5, 7)) + 0.5 * rng.standard_normal((80, 7))
    xtr, xte, ytr, yte = x[:60], x[60:], y[:60], y[60:]
    acc, pred, truth = compute.decode_units(xtr, ytr, xte, yte, alpha=10.0, n_feat=12, dtype="float64")
    # reference: BHscore's recipe — z-score with training statistics (std ddof=1, feature_decoding_train.py
    # l.174-179), FastL2LiR, Pearson per unit
    mx, sx = xtr.mean(0), xtr.std(0, ddof=1)
    my, sy = ytr.mean(0), ytr.std(0, ddof=1)
    model = fastl2lir.FastL2LiR()
    model.fit((xtr - mx) / sx, (ytr - my) / sy, alpha=10.0, n_feat=12)
    ref = model.predict((xte - mx) / sx)
    np.testing.assert_allclose(pred, ref, rtol=1e-4, atol=1e-5)
    from scipy.stats import pearsonr

    ref_r = [pearsonr(ref[:, j], (yte[:, j] - my[j]) / sy[j])[0] for j in range(7)]
    np.testing.assert_allclose(acc, ref_r, atol=1e-5)
    np.testing.assert_allclose(truth, (yte - my) / sy, rtol=1e-5, atol=1e-6)


def test_decode_units_planted_and_constant_unit(rng):
    x = rng.standard_normal((200, 20))
    y = np.column_stack([x[:, 0] + x[:, 1], rng.standard_normal(200), np.full(200, 3.0)])
    acc, _, _ = compute.decode_units(x[:150], y[:150], x[150:], y[150:], alpha=1.0, n_feat=5)
    assert acc[0] > 0.95 and abs(acc[1]) < 0.4 and np.isnan(acc[2])


def test_gram_from_chunks_and_embedding(rng):
    f = rng.standard_normal((40, 33))
    f[:, 5] = 2.0  # constant unit contributes nothing
    train = np.arange(30)
    gram = compute.accumulate_gram((f[:, i:i + 7] for i in range(0, 33, 7)), train)
    z = (f - f[train].mean(0))
    sd = f[train].std(0)
    keep = sd > 0
    z = z[:, keep] / sd[keep]
    np.testing.assert_allclose(gram, z @ z.T, rtol=1e-10, atol=1e-9)
    emb = compute.embed_gram(gram)
    np.testing.assert_allclose(emb @ emb.T, gram, atol=1e-8)
    assert emb.shape[1] <= 32


def test_ridge_on_embedding_equals_ridge_on_features(rng):
    """The encoding shortcut is exact: ridge predictions depend on the features only via their Gram."""
    from sklearn.linear_model import Ridge

    f = rng.standard_normal((50, 300))  # more units than stimuli
    y = f[:, :10] @ rng.standard_normal((10, 4)) + rng.standard_normal((50, 4))
    emb = compute.embed_gram(f @ f.T)
    for alpha in (0.5, 50.0, 5e3):
        ref = Ridge(alpha=alpha).fit(f[:40], y[:40]).predict(f[40:])
        got = Ridge(alpha=alpha).fit(emb[:40], y[:40]).predict(emb[40:])
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-8)


def test_encode_voxels_embedding_matches_full_features(rng):
    f = rng.standard_normal((60, 200))
    y = f[:, :8] @ rng.standard_normal((8, 6)) + 2.0 * rng.standard_normal((60, 6))
    emb = compute.embed_gram(f @ f.T)
    groups = np.arange(45) // 3  # three trials per stimulus
    kw = dict(alphas=[1.0, 30.0, 1e3, 1e5], cv=4, groups=groups, dtype="float64")
    acc_e, pred_e, _, a_e = compute.encode_voxels(emb[:45], y[:45], emb[45:], y[45:], **kw)
    acc_f, pred_f, _, a_f = compute.encode_voxels(f[:45], y[:45], f[45:], y[45:], **kw)
    np.testing.assert_array_equal(a_e, a_f)
    np.testing.assert_allclose(pred_e, pred_f, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(acc_e, acc_f, atol=1e-7)


def test_encoding_folds_keep_repetitions_together():
    from brainlike.folds import group_kfold

    groups = np.repeat(np.arange(10), 3)
    for tr, te in group_kfold(groups, 4):
        assert not set(groups[tr]) & set(groups[te])
    y = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(ValueError, match="distinct training stimuli"):
        compute.encode_voxels(y, y, y[:2], y[:2], alphas=[1.0], cv=3, groups=np.zeros(5), dtype="float64")


# ------------------------------------------------------------------------------------------- graph
def test_job_paths_are_distinct_and_keyed_by_signature(tmp_path):
    a = Job("decode", "net", "fire2:concat", "s1", "V1", 3, sig="aa")
    b = Job("decode", "net", "fire2/concat", "s1", "V1", 3, sig="aa")
    c = Job("decode", "net", "fire2:concat", "s1", "V1", 3, sig="bb")
    assert len({a.path(tmp_path), b.path(tmp_path), c.path(tmp_path)}) == 3
    e = Job("encode", "net", "l1", "s1", "V1", sig="e", dep_sig="k")
    assert e.depends_on() == [Job("kernel", "net", "l1", sig="k")]
    with pytest.raises(ValueError, match="job kind"):
        Job("train", "n", "l").path(tmp_path)


def test_run_tables_provenance_and_planted_hierarchy(tmp_path, rng):
    feats, brains = make_experiment(rng)
    res = run_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": feats}, progress=False)
    d = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    assert list(d.columns) == ["dnn", "subject", "roi", "layer", "layer_index", "unit", "accuracy"]
    assert len(d) == 4 * 4 * 24  # layers x rois x units
    e = pd.read_parquet(res.results_dir / "encoding_accuracy.parquet")
    assert list(e.columns)[:7] == ["dnn", "subject", "roi", "layer", "layer_index", "voxel", "accuracy"]
    assert len(e) == 4 * 4 * 25
    pd.testing.assert_frame_equal(pd.read_csv(res.results_dir / "decoding_accuracy.csv"), d,
                                  check_dtype=False, check_exact=False, rtol=1e-6)
    s = pd.read_csv(res.results_dir / "bh_scores.csv")
    assert list(s.columns)[:6] == ["dnn", "kind", "score", "ci_low", "ci_high", "p_perm"]
    assert set(s["kind"]) == {"decoding", "encoding", "average"}
    # the planted hierarchy (ROI k reads out layer k) is recovered
    assert (s["score"] > 0.5).all() and (s["ci_low"] <= s["score"]).all() and (s["score"] <= s["ci_high"]).all()
    # decoding: best ROI of each layer's units is the planted one for most units
    mean = d.groupby(["layer_index", "roi"])["accuracy"].mean().unstack()
    assert [mean.loc[k].idxmax() for k in range(4)] == ["R1", "R2", "R3", "R4"]
    # an accuracy in the table equals a direct computation of the same job
    sub = brains[0]
    roi = sub.rois["R3"]
    tr, te = sub.select_split("train"), sub.select_split("test").average_repetitions()
    row = {k: i for i, k in enumerate(f"im{i:03d}" for i in range(150))}
    units = np.sort(d[(d.layer == "layer2") & (d.roi == "R3")]["unit"].to_numpy())
    y = feats["layer2"][:, units]
    acc, _, _ = compute.decode_units(tr.responses[:, roi], y[[row[i] for i in tr.stimulus_ids]],
                                     te.responses[:, roi], y[[row[i] for i in te.stimulus_ids]], alpha=10.0, n_feat=10)
    got = d[(d.layer == "layer2") & (d.roi == "R3")].sort_values("unit")["accuracy"].to_numpy()
    np.testing.assert_allclose(got, acc, rtol=1e-5, atol=1e-6)
    prov = json.loads((res.results_dir / "provenance.json").read_text())
    assert prov["config"]["decoding"]["alpha"] == 10.0 and prov["seed"] == 0
    assert len(prov["inputs"]["subjects"]["s1"]["xxh3_128"]) == 32 and "numpy" in prov["versions"]
    assert prov["jobs"]["n_run"] == prov["jobs"]["n_jobs"]


def test_layer_shuffled_control_scores_near_zero(tmp_path, rng):
    feats, brains = make_experiment(rng, n_units=(80, 80, 80, 80))
    cfg = small_config(tmp_path / "o", analyses=["decoding"],
                       decoding={"units_per_layer": 80, "chunk_size": 80},
                       scores={"n_boot": 50, "n_perm": 50})
    cfg["dnns"]["shuffled"] = {**cfg["dnns"]["net"], "control": "layer_shuffled"}
    res = run_experiment(cfg, brain=brains, features={"net": feats, "shuffled": feats}, progress=False)
    s = res.scores.set_index("dnn")
    assert s.loc["net", "score"] > 0.4 and s.loc["net", "p_perm"] < 0.05 and s.loc["net", "ci_low"] > 0.2
    assert abs(s.loc["shuffled", "score"]) < 0.25 and s.loc["shuffled", "ci_low"] < 0 < s.loc["shuffled", "ci_high"]


def test_rerun_does_only_missing_jobs_and_matches(tmp_path, rng):
    feats, brains = make_experiment(rng)
    cfg = small_config(tmp_path / "o", analyses=["decoding", "encoding"])
    first = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    files = result_files(tmp_path / "o")
    scores = pd.read_csv(first.results_dir / "bh_scores.csv")
    again = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    assert again.summary["n_run"] == 0 and again.summary["n_done_before"] == first.summary["n_jobs"]
    # a killed run: some results missing, a partial temporary file left behind
    work = tmp_path / "o" / "work"
    victims = sorted(work.rglob("chunk-*.npz"))[::3] + sorted(work.rglob("kernels-*/*.npz"))[:1]
    for v in victims:
        v.unlink()
    (work / "stale.npz.tmp-99-dead").write_bytes(b"half a file")
    os.utime(work / "stale.npz.tmp-99-dead", (0, time.time() - 3600))  # an hour old: its writer is gone
    (work / "young.npz.tmp-98-busy").write_bytes(b"being written")  # perhaps by another process: kept
    third = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    assert third.summary["n_run"] == len(victims)
    assert result_files(tmp_path / "o") == files
    assert [p.name for p in work.rglob("*.tmp-*")] == ["young.npz.tmp-98-busy"]
    pd.testing.assert_frame_equal(pd.read_csv(third.results_dir / "bh_scores.csv"), scores)


def test_voxel_cache_prepares_each_roi_once_and_changes_no_result(tmp_path, rng, monkeypatch):
    """Decode jobs of one (subject, ROI) share the z-scored voxels and their Gram; results are
    byte-identical with the cache off, and the cache setting is not part of the result signature."""
    from brainlike.pipeline import compute as compute_mod

    feats, brains = make_experiment(rng, n_subjects=2)
    calls = []
    real = compute_mod.prepare_voxels
    monkeypatch.setattr(compute_mod, "prepare_voxels", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    runs = {}
    for mb in (64, 0):
        calls.clear()
        out = tmp_path / f"o{mb}"
        res = run_experiment(small_config(out, analyses=["decoding"], decoding={"voxel_cache_mb": mb}),
                             brain=brains, features={"net": feats}, progress=False)
        runs[mb] = (len(calls), res.summary["n_jobs"], result_files(out))
    (cached_calls, n_jobs, files), (plain_calls, n_jobs0, files0) = runs[64], runs[0]
    assert n_jobs == n_jobs0 == 2 * 4 * 4 * 3  # subjects x ROIs x layers x chunks of 10 of 24 units
    assert cached_calls == 2 * 4 and plain_calls == n_jobs
    assert files == files0  # same paths (signature without the cache size) and same bytes


def test_voxel_cache_admits_while_it_fits_and_resets_per_context():
    from types import SimpleNamespace

    from brainlike.pipeline.jobs import _VoxelCache

    cache, item = _VoxelCache(), SimpleNamespace(nbytes=40)
    assert cache.get("ctx", "a") is None
    cache.offer("a", item, 100)
    cache.offer("b", item, 100)
    cache.offer("c", item, 100)  # would exceed 100 bytes: not admitted, and nothing is evicted
    assert cache.get("ctx", "a") is item and cache.get("ctx", "b") is item and cache.get("ctx", "c") is None
    assert cache.get("other-ctx", "a") is None  # another experiment: empty
    cache.offer("c", item, 100)
    assert cache.get("other-ctx", "c") is item
    cache.clear()
    assert cache.get("other-ctx", "c") is None


def test_changed_settings_never_reuse_stale_results(tmp_path, rng):
    feats, brains = make_experiment(rng)
    cfg = small_config(tmp_path / "o", analyses=["decoding"])
    a = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    cfg2 = small_config(tmp_path / "o", analyses=["decoding"], decoding={"alpha": 1000.0})
    b = run_experiment(cfg2, brain=brains, features={"net": feats}, progress=False)
    assert b.summary["n_done_before"] == 0 and b.summary["n_run"] == a.summary["n_jobs"]
    da = pd.read_parquet(a.results_dir / "decoding_accuracy.parquet")  # overwritten by b
    assert not np.allclose(da["accuracy"], 0)


@pytest.mark.parametrize("problem, match", [
    ("no_split", "no train/test split"),
    ("missing_roi", "not found for subject"),
    ("empty_roi", "have no voxels"),
    ("nan", "NaN"),
    ("missing_image", "missing from the images of"),
])
def test_bad_inputs_fail_before_jobs(tmp_path, rng, problem, match):
    from brainlike.datasets import BrainData
    from brainlike.stimuli import ImageSet

    feats, brains = make_experiment(rng)
    b = brains[0]
    kw = dict(rois=dict(b.rois), split=b.split, subject="s1")
    resp = b.responses.copy()
    stimuli = None
    if problem == "no_split":
        kw["split"] = None
    elif problem == "missing_roi":
        kw["rois"].pop("R2")
    elif problem == "empty_roi":
        kw["rois"]["R2"] = np.zeros(b.n_voxels, dtype=bool)
    elif problem == "nan":
        resp[0, 3] = np.nan
        kw["nan"] = "ignore"
    else:
        stimuli = ImageSet.from_array(np.zeros((5, 8, 8, 3), np.uint8), ids=[f"im{i:03d}" for i in range(5)])
    bad = BrainData(resp, b.stimulus_ids, **kw)
    with pytest.raises(ValueError, match=match):
        run_experiment(small_config(tmp_path / "o"), brain=[bad], features={"net": feats}, stimuli=stimuli,
                       progress=False)
    assert not list((tmp_path / "o").rglob("chunk-*.npz"))


def test_given_features_must_match_stimuli(tmp_path, rng):
    from brainlike.features import FeatureSet
    from brainlike.ids import IdMismatchError

    feats, brains = make_experiment(rng)
    short = FeatureSet({k: v[:-1] for k, v in feats.items()}, feats.ids[:-1])
    with pytest.raises(IdMismatchError, match=r"1 id\(s\) of the stimuli of the brain data are missing from "
                                              r"features\['net'\]\['layer1'\], e.g. \['im149'\]"):
        run_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": short}, progress=False)
    wrong_count = FeatureSet({k: v[:-1] for k, v in feats.items()}, feats.ids)
    with pytest.raises(ValueError, match=r"features\['net'\]\['layer1'\] has 149 rows but 150 stimulus ids"):
        run_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": wrong_count}, progress=False)
    assert not list((tmp_path / "o").rglob("chunk-*.npz"))


def test_two_subjects_are_averaged_for_decoding(tmp_path, rng):
    feats, brains = make_experiment(rng, n_subjects=2)
    res = run_experiment(small_config(tmp_path / "o", analyses=["decoding"]), brain=brains,
                         features={"net": feats}, progress=False)
    d = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    assert sorted(d["subject"].unique()) == ["s1", "s2"]
    assert os.path.exists(res.results_dir / "provenance.json")


# ------------------------------------------------------------------------------------------- scores
def test_scores_equal_the_published_recipe_on_the_same_accuracies(rng):
    """Point scores of the pipeline = brainlike.scores on subject-averaged / pooled accuracies."""
    from brainlike import scores as S
    from brainlike.pipeline import scoring

    n_test, n_rois, n_layers = 40, 5, 6
    sc = {"pval": 0.05, "n_layers": 4, "n_repeat": 20, "voxels_per_roi": 30, "n_boot": 0, "n_perm": 0, "ci": 0.95}
    truths = [[rng.standard_normal((n_test, 50)) for _ in range(n_layers)] for _ in range(2)]
    preds = [[t + rng.uniform(0.5, 3) * rng.standard_normal((n_rois, n_test, 50)) for t in subj] for subj in truths]
    d = scoring.decoding_scores({"pred": preds, "truth": truths}, sc, seed=3)
    accs = [np.mean([np.nan_to_num(S.pearson_columns(truths[s][k][None], preds[s][k])) for s in range(2)], axis=0)
            for k in range(n_layers)]
    ref = np.nanmean(S.bh_score_layer_select(accs, n_layers=4, n_repeat=20, seed=3, n_samples=n_test))
    assert d["score"] == pytest.approx(ref, abs=1e-12)
    # encoding: per subject and ROI (n_layers, n_voxels); voxel draws as in bh_score_encoding
    et = [[rng.standard_normal((n_test, 45)) for _ in range(n_rois)] for _ in range(2)]
    ep = [[t + rng.uniform(0.5, 3) * rng.standard_normal((n_layers, n_test, 45)) for t in subj] for subj in et]
    e = scoring.encoding_scores({"pred": ep, "truth": et}, sc, seed=5)
    per_roi = [[np.nan_to_num(S.pearson_columns(et[s][r][None], ep[s][r])) for s in range(2)] for r in range(n_rois)]
    ref = S.bh_score_encoding(per_roi, n_samples=n_test, n_voxels=30, seed=5).score
    assert e["score"] == pytest.approx(ref, abs=1e-12)


def test_bootstrap_interval_is_centred_on_the_score():
    """The run's interval is brainlike.scores.bootstrap_ci (recentred, clipped to [-1, 1])."""
    from brainlike.scores import bootstrap_ci

    def _ci(boot, level, point):
        return bootstrap_ci(boot, level, "recentred", point=point, bounds=(-1.0, 1.0))

    boot = np.linspace(0.2, 0.6, 401)  # median 0.4, replicates below a score of 0.7
    lo, hi = bootstrap_ci(boot, 0.95)
    assert (lo, hi) == pytest.approx((0.21, 0.59))
    assert _ci(boot, 0.95, 0.7) == pytest.approx((0.51, 0.89))
    assert _ci(boot, 0.95, 0.95) == pytest.approx((0.76, 1.0))  # clipped to the range of a correlation
    assert np.isnan(_ci(np.full(5, np.nan), 0.95, 0.3)[0])


def test_bhscore_settings_with_a_feature_tree(tmp_path, rng):
    """settings.json as is + BHscore's per-image .mat feature layout (written by export_bhscore)."""
    from brainlike.features import LayerFeatures, export_bhscore

    feats, brains = make_experiment(rng, n_layers=3, n_units=(20, 16, 12))
    ids = [f"im{i:03d}" for i in range(150)]
    lf = {k: LayerFeatures(v, ids, (v.shape[1],), name=k) for k, v in feats.items()}
    export_bhscore(lf, tmp_path / "features", "ImageNetTest", "caffe", "Net")
    settings = {"subjects": ["s1"], "rois": ["R1", "R2", "R3"],
                "dnns": {"Net": {"dir": "caffe/Net", "layers": ["layer1", "layer2", "layer3"]}}}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    exp = load_config(tmp_path / "settings.json", features_root=tmp_path / "features" / "ImageNetTest",
                      out=str(tmp_path / "o"), decoding={"n_feat": 10, "units_per_layer": None},
                      scores={"n_layers": 3, "n_boot": 10, "n_perm": 10}, execution={"scheduler": "synchronous"},
                      report=False)
    res = run_experiment(exp, brain={"s1": brains[0]}, progress=False)
    d = pd.read_parquet(res.results_dir / "decoding_accuracy.parquet")
    assert len(d) == 3 * (20 + 16 + 12)
    # same accuracies as with the arrays given directly
    cfg = small_config(tmp_path / "o2", analyses=["decoding"], rois=["R1", "R2", "R3"],
                       decoding={"alpha": 100.0, "n_feat": 10, "units_per_layer": None, "chunk_size": 1000})
    cfg["dnns"] = {"Net": {"model": "x", "layers": ["layer1", "layer2", "layer3"]}}
    ref = run_experiment(cfg, brain=[brains[0]], features={"Net": feats}, progress=False)
    r = pd.read_parquet(ref.results_dir / "decoding_accuracy.parquet")
    np.testing.assert_allclose(d.sort_values(["roi", "layer", "unit"])["accuracy"].to_numpy(),
                               r.sort_values(["roi", "layer", "unit"])["accuracy"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_subject_names_are_passed_as_they_are_unless_the_loader_numbers_subjects():
    from brainlike.pipeline.inputs import subject_value

    # loaders named by string keep the names (shen2019_deeprecon wants 'sub-01')
    assert [subject_value(s, "shen2019_deeprecon") for s in ("sub-01", "sub-3", "WE")] == ["sub-01", "sub-3", "WE"]
    assert subject_value("sub-01") == "sub-01"  # no dataset: never coerced
    # loaders that number subjects (declared default 1) get the number
    assert [subject_value(s, "horikawa2017_god") for s in ("sub-01", "sub-3", "S02", "1")] == [1, 3, 2, 1]
    with pytest.raises(ValueError, match="numbers its subjects"):
        subject_value("WE", "horikawa2017_god")


# ------------------------------------------------------------------------------------------- CLI
def test_cli_run_check_and_bad_config(tmp_path, capsys, mirror, rng):
    from brainlike.cli import main
    from brainlike.pipeline import check_experiment

    # --check resolves the dataset as the run would: absent data files fail it, naming the file
    assert main(["run", str(mirror / "bhscore" / "settings.json"), "--check", "--dataset", "horikawa2017_god",
                 "--features", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Subject1.h5" in err
    feats, brains = make_experiment(rng)
    rep = check_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": feats})
    text = str(rep)
    assert "net: 4 layers from given features (layer1 60, layer2 50, layer3 40, layer4 30)" in text
    assert rep.rois == ["R1", "R2", "R3", "R4"] and rep.subjects["s1"]["n_test"] == 30
    assert not (tmp_path / "o").exists()  # nothing written
    (tmp_path / "bad.yaml").write_text("dnns: {a: {model: m, layers: [x, y]}}\ndecoding: {n_feat: -3}\n")
    assert main(["run", str(tmp_path / "bad.yaml")]) == 2
    assert "decoding.n_feat" in capsys.readouterr().err


def test_zscore_train_matches_scipy_and_uses_training_statistics():
    """Columns z-scored with the training mean/std (ddof 1, as BHscore; scipy.stats.zscore(ddof=1)); a
    constant column gets std 1; other arrays are scaled with the training statistics, in the asked dtype."""
    from scipy import stats

    from brainlike._zscore import zscore

    rng = np.random.default_rng(3)
    train = (rng.standard_normal((700, 30)) * 4 + 9).astype(np.float32)
    train[:, 5] = 2.5
    test = rng.standard_normal((9, 30)).astype(np.float32)
    t64 = train.astype(np.float64)
    ref = stats.zscore(t64, axis=0, ddof=1)
    ref[:, 5] = 0.0
    sd = t64.std(0, ddof=1)
    sd[5] = 1.0
    z_tr, z_te = zscore(train, test, ddof=1, dtype=np.float64)
    assert z_tr.dtype == np.float64 and z_te.dtype == np.float64
    np.testing.assert_allclose(z_tr, ref, atol=1e-12)
    np.testing.assert_allclose(z_te, (test - t64.mean(0)) / sd, atol=1e-12)
    z32, = zscore(train, ddof=1)
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, ref, atol=2e-6)
