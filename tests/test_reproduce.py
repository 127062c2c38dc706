"""Nonaka 2021 reproduction, end to end on a fixture tree in the published layout and format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr, t

from brainlike.datasets import bhscore as bhfiles
from brainlike.reproduce import (
    compare_with_published,
    compute_bhscores,
    format_comparison,
    published_bhscores,
    reproduce_nonaka2021,
)

NETS = ("AlexNet", "VGG-16", "ResNet-18")


def _published_bh(predacc_list, n=50):
    """Literal published recipe (independent of brainlike.scores)."""
    layer_numbers, best = [], []
    for i, predacc in enumerate(predacc_list):
        predacc = np.where(np.isnan(predacc), 0, predacc)
        m = predacc.max(0)
        pv = 2 * (1 - t.cdf(m * np.sqrt((n - 2) * (1 - m**2)), df=n - 2))
        sel = (pv < 0.05) & (m > 0)
        layer_numbers += [i + 1] * int(sel.sum())
        best += list(predacc.argmax(0)[sel])
    return spearmanr(layer_numbers, best)[0]


def _settings(real_settings: Path | None) -> dict:
    if real_settings is not None and real_settings.is_file():
        full = bhfiles.read_settings(real_settings)
        return {"subjects": full["subjects"], "rois": full["rois"], "dnns": {n: full["dnns"][n] for n in NETS}}
    layers = {"AlexNet": 8, "VGG-16": 9, "ResNet-18": 10}
    return {"subjects": ["sub-01", "sub-02", "sub-03"], "rois": ["V1", "V2", "V3", "V4", "HVC"],
            "dnns": {n: {"dir": f"caffe/{n}", "layers": [f"layer{i}" for i in range(k)]} for n, k in layers.items()}}


def _planted_tree(settings, rng, strength, n_units=12, kind="decoding"):
    """Decoding: units of deeper layers best from higher ROIs; encoding: voxels of higher ROIs best from deeper layers."""
    tree = {}
    n_rois = len(settings["rois"])
    for net, d in settings["dnns"].items():
        n_layers = len(d["layers"])
        tree[net] = {}
        for li, layer in enumerate(d["layers"]):
            tree[net][layer] = {}
            for sub in settings["subjects"]:
                tree[net][layer][sub] = {}
                for ri, roi in enumerate(settings["rois"]):
                    acc = rng.uniform(-0.1, 0.45, size=n_units)
                    match = abs(li / (n_layers - 1) - ri / (n_rois - 1))
                    acc += strength[net] * (0.4 - match)
                    acc[rng.random(n_units) < 0.05] = np.nan
                    tree[net][layer][sub][roi] = np.clip(acc, -0.99, 0.99)
    return tree


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory, mirror_or_none):
    tmp_path = tmp_path_factory.mktemp("bhtree")
    settings = _settings(mirror_or_none)
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    rng = np.random.default_rng(0)
    strength = {"AlexNet": 0.6, "VGG-16": 0.3, "ResNet-18": 0.0}
    dec = _planted_tree(settings, rng, strength)
    enc = _planted_tree(settings, rng, strength)
    bhfiles.write_accuracy_tree(tmp_path / "decoding_accuracy" / "ImageNetTest", settings, dec)
    bhfiles.write_accuracy_tree(tmp_path / "encoding_accuracy" / "ImageNetTest", settings, enc)
    return tmp_path, settings, dec, enc


@pytest.fixture(scope="module")
def mirror_or_none():
    import os

    m = os.environ.get("BRAINLIKE_DATA_MIRROR")
    return Path(m) / "bhscore" / "settings.json" if m else None


def test_read_real_settings(mirror):
    s = bhfiles.read_settings(mirror / "bhscore" / "settings.json")
    assert s["subjects"] == ["sub-01", "sub-02", "sub-03"] and s["rois"] == ["V1", "V2", "V3", "V4", "HVC"]
    assert len(s["dnns"]) == 29 and set(s["dnns"]) == set(published_bhscores()["network"])
    assert s["dnns"]["AlexNet"]["layers"][0] == "conv1_abs" and s["dnns"]["AlexNet"]["dir"] == "caffe/AlexNet"


def test_published_table_matches_shared_reference():
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference" / "nonaka2021_bhscores.csv"
    if not ref.is_file():
        pytest.skip(f"reference table not found at {ref}")
    pd.testing.assert_frame_equal(published_bhscores(), pd.read_csv(ref))


def test_settings_errors(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"subjects": ["a"], "rois": ["V1"]}))
    with pytest.raises(ValueError, match="missing key 'dnns'"):
        bhfiles.read_settings(p)
    p.write_text(json.dumps({"subjects": ["a"], "rois": ["V1"], "dnns": {"X": {"dir": "d", "layers": ["only"]}}}))
    with pytest.raises(ValueError, match=r"dnns\['X'\]\['layers'\]"):
        bhfiles.read_settings(p)
    with pytest.raises(FileNotFoundError):
        bhfiles.read_settings(tmp_path / "nope.json")


def test_tree_roundtrip_and_missing_file(fixture_root):
    root, settings, dec, _ = fixture_root
    tree = bhfiles.read_accuracy_tree(root, settings, kind="decoding")
    layer = settings["dnns"]["VGG-16"]["layers"][3]
    np.testing.assert_array_equal(tree["VGG-16"][layer]["sub-02"]["V4"], dec["VGG-16"][layer]["sub-02"]["V4"])
    # the tree root itself is accepted too
    tree2 = bhfiles.read_accuracy_tree(root / "decoding_accuracy" / "ImageNetTest", settings, dnns=["AlexNet"])
    assert list(tree2) == ["AlexNet"]
    victim = root / "decoding_accuracy" / "ImageNetTest" / settings["dnns"]["AlexNet"]["dir"] / \
        settings["dnns"]["AlexNet"]["layers"][2] / "sub-03" / "HVC" / "accuracy.mat"
    saved = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(FileNotFoundError, match="1 accuracy file"):
            bhfiles.read_accuracy_tree(root, settings, kind="decoding")
    finally:
        victim.write_bytes(saved)
    with pytest.raises(ValueError, match="dnns must be among"):
        bhfiles.read_accuracy_tree(root, settings, dnns=["NoNet"], kind="encoding")


def test_reproduce_end_to_end_equals_recipe(fixture_root):
    root, settings, dec, enc = fixture_root
    table = reproduce_nonaka2021(root, settings=root / "settings.json", n_repeat=20, seed=3)
    assert list(table["network"]) == list(NETS)
    for net in NETS:
        d = settings["dnns"][net]
        # decoding: per layer (ROIs x units pooled over subjects), layer selection as the reference draws it
        accs = [np.vstack([np.hstack([dec[net][lay][s][r] for s in settings["subjects"]]) for r in settings["rois"]])
                for lay in d["layers"]]
        np.random.seed(3)
        scores = []
        for _ in range(20):
            idx = np.sort(np.random.choice(np.arange(1, len(accs) - 1), size=3, replace=False))
            scores.append(_published_bh([accs[0]] + [accs[i] for i in idx] + [accs[-1]]))
        expect_dec = np.mean(scores)
        # encoding: per ROI (layers x voxels pooled over subjects)
        encs = [np.hstack([np.vstack([enc[net][lay][s][r] for lay in d["layers"]]) for s in settings["subjects"]])
                for r in settings["rois"]]
        expect_enc = _published_bh(encs)
        row = table[table.network == net].iloc[0]
        assert row["bh_decoding"] == pytest.approx(expect_dec, abs=1e-12)
        assert row["bh_encoding"] == pytest.approx(expect_enc, abs=1e-12)
        assert row["bh_average"] == pytest.approx((expect_dec + expect_enc) / 2, abs=1e-12)
        assert np.isfinite(row["bh_decoding_published"])
    # planted strengths order the networks
    assert table["bh_average"].is_monotonic_decreasing
    assert table.loc[0, "bh_average"] > 0.5 and abs(table.loc[2, "bh_average"]) < 0.25
    text = format_comparison(table)
    assert "AlexNet" in text and "max |ours - published|" in text


def test_cli_reproduce_fixture_and_offline(fixture_root, tmp_path_factory):
    root, *_ = fixture_root
    out = tmp_path_factory.mktemp("o") / "cmp.csv"
    cmd = [sys.executable, "-m", "brainlike", "reproduce", "nonaka2021", "--accuracy-root", str(root),
           "--settings", str(root / "settings.json"), "--n-repeat", "5", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "VGG-16" in done.stdout and out.is_file()
    assert len(pd.read_csv(out)) == 3
    # no accuracy root, no network: a clear error, exit code 2
    home = tmp_path_factory.mktemp("home")
    env = {"BRAINLIKE_DATA": str(home), "PATH": "", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "brainlike", "reproduce", "nonaka2021", "--settings",
                           str(root / "settings.json")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "could not download the decoding accuracies" in done.stderr and "--accuracy-root" in done.stderr


def test_compute_and_compare_partial():
    settings = {"subjects": ["s"], "rois": ["A", "B"], "dnns": {"AlexNet": {"dir": "x", "layers": ["a", "b", "c"]}}}
    tree = {"AlexNet": {lay: {"s": {"A": np.full(5, 0.6 - 0.2 * i), "B": np.full(5, 0.2 + 0.2 * i)}}
                        for i, lay in enumerate(["a", "b", "c"])}}
    scores = compute_bhscores(tree, None, settings, n_layers=3, n_repeat=2)
    assert scores.loc[0, "bh_decoding"] > 0.8 and np.isnan(scores.loc[0, "bh_average"])
    cmp = compare_with_published(scores)
    assert cmp.loc[0, "diff_decoding"] == pytest.approx(scores.loc[0, "bh_decoding"] - 0.492822)


def test_tree_to_table(fixture_root):
    root, settings, dec, _ = fixture_root
    table = bhfiles.tree_to_table(dec, settings)
    net = "VGG-16"
    layer = settings["dnns"][net]["layers"][4]
    got = table[(table.dnn == net) & (table.layer == layer) & (table.subject == "sub-01") & (table.roi == "V2")]
    np.testing.assert_array_equal(got["accuracy"].to_numpy(), dec[net][layer]["sub-01"]["V2"])
    assert (got["layer_index"] == 4).all() and list(got["unit"]) == list(range(12))
    assert list(table.columns) == ["dnn", "subject", "roi", "layer", "layer_index", "unit", "accuracy"]
    # the report's arrays rebuilt from the table equal the tree's arrays for the BH score
    from brainlike.report.figures import accuracy_arrays

    arrs = accuracy_arrays(table, net, settings["rois"])
    for a, b in zip(arrs, bhfiles.decoding_arrays(dec, settings, net)):
        np.testing.assert_array_equal(a, b)


def test_reproduce_results_folder_feeds_report(fixture_root, tmp_path):
    from brainlike.report import read_results, write_report

    root, settings, *_ = fixture_root
    table = reproduce_nonaka2021(root, settings=settings, dnns=["AlexNet", "ResNet-18"], n_repeat=10,
                                 results_dir=tmp_path / "out", n_boot=100, n_perm=100)
    pd.testing.assert_frame_equal(table, reproduce_nonaka2021(root, settings=settings, dnns=["AlexNet", "ResNet-18"],
                                                              n_repeat=10))
    res = read_results(tmp_path / "out")
    scores = res["scores"]
    assert set(scores["kind"]) == {"decoding", "encoding", "average"} and len(scores) == 6
    # the long scores equal the comparison table's
    for kind in ("decoding", "encoding", "average"):
        a = scores[scores.kind == kind].set_index("dnn")["score"]
        b = table.set_index("network")[f"bh_{kind}"]
        np.testing.assert_allclose(a.loc[["AlexNet", "ResNet-18"]], b.loc[["AlexNet", "ResNet-18"]], atol=1e-12)
    alex = scores[(scores.dnn == "AlexNet") & (scores.kind == "average")].iloc[0]
    assert alex.ci_low <= alex.score <= alex.ci_high and alex.p_perm < 0.05
    n_layers = sum(len(settings["dnns"][n]["layers"]) for n in ("AlexNet", "ResNet-18"))
    assert res["n_samples"] == 50 and len(res["decoding"]) == n_layers * len(settings["subjects"]) * 5 * 12
    index = write_report(tmp_path / "out", dnn="AlexNet")
    assert index.is_file() and (index.parent / "figures" / "best_layer_distribution.png").is_file()


def test_read_accuracy_file_formats(tmp_path):
    """v7.3 (HDF5) files read like hdf5storage.loadmat(...).flatten(); MAT v5 files too."""
    import hdf5storage
    from scipy import io as sio

    row = np.arange(7.0)
    mat = np.arange(12.0).reshape(3, 4)
    for name, arr in (("row", row[None, :]), ("col", row[:, None]), ("mat", mat)):
        p = tmp_path / f"{name}.mat"
        hdf5storage.savemat(str(p), {"accuracy": arr}, format="7.3", store_python_metadata=False)
        np.testing.assert_array_equal(bhfiles.read_accuracy_file(p), hdf5storage.loadmat(str(p))["accuracy"].flatten())
        q = tmp_path / f"{name}_v5.mat"
        sio.savemat(q, {"accuracy": arr})
        np.testing.assert_array_equal(bhfiles.read_accuracy_file(q), arr.flatten())
    sio.savemat(tmp_path / "other.mat", {"acc": row})
    with pytest.raises(ValueError, match="no variable 'accuracy'"):
        bhfiles.read_accuracy_file(tmp_path / "other.mat")


def test_reproduce_fetches_archives_through_the_registry(fixture_root, mirror, tmp_path, monkeypatch):
    """No accuracy root: settings and both zips come from the (offline) mirror, never from a second download path."""
    import shutil
    import urllib.request

    root, settings, _, _ = fixture_root
    fake = tmp_path / "mirror" / "bhscore"
    fake.mkdir(parents=True)
    shutil.copy(mirror / "bhscore" / "settings.json", fake / "settings.json")
    for kind in ("decoding", "encoding"):
        shutil.make_archive(str(fake / f"{kind}_accuracy"), "zip", root, f"{kind}_accuracy")
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("a second download path was used"))
    got = reproduce_nonaka2021(dnns=list(settings["dnns"]), n_repeat=5)
    want = reproduce_nonaka2021(accuracy_root=root, settings=mirror / "bhscore" / "settings.json",
                                dnns=list(settings["dnns"]), n_repeat=5)
    pd.testing.assert_frame_equal(got, want)
    assert (tmp_path / "home" / "bhscore" / "encoding_accuracy").is_dir()
    assert not any(p.name.endswith("_accuracy") and p.is_dir() for p in fake.iterdir())  # mirror never written
