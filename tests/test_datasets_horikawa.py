"""Generic Object Decoding on OpenNeuro (ds001246) and the Horikawa et al. 2019 decodedDNN files.

The miniature dataset is written by ``brainlike.demo.horikawa.write_horikawa_bids``; each of its
file names cites its source there (OpenNeuro ds001246 1.2.1 paths, ds001506 mask names).
"""

from __future__ import annotations

import logging
import shutil
import zipfile

import numpy as np
import pytest

from brainlike.datasets import derive_rois, load_decodability, load_horikawa_bids, read_decoded_features
from brainlike.datasets.horikawa import find_runs
from brainlike.demo.horikawa import SHAPE, write_horikawa_bids
from brainlike.metrics.ceiling import split_half_reliability

PRE = "derivatives/preproc-spm/output"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("openneuro") / "ds001246"
    planted = write_horikawa_bids(root, n_train=40, n_test=5, test_repeats=4, blocks_per_run=10)
    return root, planted


def _copy(ds, tmp_path):
    root = tmp_path / "ds001246"
    shutil.copytree(ds[0], root, ignore=shutil.ignore_patterns("features"))
    return root


def _test_reliability(d) -> float:
    te = d.select_split("test")
    ids = sorted(set(te.stimulus_ids))
    arr = np.stack([te.responses[te.stimulus_ids == i] for i in ids])  # (n_stim, n_rep, n_vox)
    return float(np.nanmedian(split_half_reliability(arr.transpose(0, 2, 1), n_splits=20)))


def test_preprocessed_runs_preferred_and_named_in_the_log(ds, caplog):
    root, planted = ds
    with caplog.at_level(logging.INFO, logger="brainlike"):
        d = load_horikawa_bids(root, "sub-01")
    assert f"6 preprocessed run(s) from {root / PRE}" in caplog.text
    assert all(f.endswith("_bold_preproc.nii.gz") for f in d.provenance["files"][:6])
    assert d.provenance["runs"] == "preprocessed"
    # per-trial samples from events.tsv: event_type 1 only (the one-back repetition is skipped)
    assert (d.split == "train").sum() == 40 and (d.split == "test").sum() == 20
    assert sorted(set(d.select_split("train").stimulus_ids)) == sorted(planted["train_ids"])
    assert sorted(set(d.select_split("test").stimulus_ids)) == sorted(planted["test_ids"])
    # reliability of the test repetitions: high on the preprocessed runs, low on the raw (moved) runs
    pre = _test_reliability(d.select_roi("VC"))
    with caplog.at_level(logging.WARNING, logger="brainlike"):
        raw = load_horikawa_bids(root, "sub-01", runs="raw")
    assert "raw, unpreprocessed runs" in caplog.text
    assert raw.provenance["runs"] == "raw" and all(f.endswith("_bold.nii.gz") for f in raw.provenance["files"][:6])
    assert pre > 0.85, pre
    assert _test_reliability(raw.select_roi("VC")) < 0.4


def test_rois_merged_and_derived_as_in_the_paper(ds):
    d = load_horikawa_bids(ds[0], "sub-01")
    n_side = SHAPE[0] // 2 * (SHAPE[2] - 2)  # voxels of one y-slab of one hemisphere
    assert d.rois["V1"].sum() == 2 * 2 * n_side  # LH + RH, 2 slabs each
    np.testing.assert_array_equal(d.rois["LVC"], d.rois["V1"] | d.rois["V2"] | d.rois["V3"])
    vc = d.rois["LVC"] | d.rois["hV4"] | d.rois["HVC"] | d.rois["LOC"] | d.rois["FFA"] | d.rois["PPA"]
    np.testing.assert_array_equal(d.rois["VC"], vc)
    assert d.provenance["derived_rois"] == {"LVC": ["V1", "V2", "V3"],
                                           "VC": ["LVC", "hV4", "HVC", "LOC", "FFA", "PPA"]}
    # reading only VC gives its voxels
    assert load_horikawa_bids(ds[0], "sub-01", roi="VC").n_voxels == int(vc.sum())


def test_derive_rois_from_dorsal_ventral_halves_and_without_hvc_mask():
    shape = (4,)
    m = {k: np.zeros(shape, bool) for k in ("V1d", "V1v", "V2", "V3", "hV4", "LOC", "FFA", "PPA")}
    for k, i in (("V1d", 0), ("V1v", 1), ("V2", 2), ("LOC", 3)):
        m[k][i] = True
    out, made = derive_rois(m)
    np.testing.assert_array_equal(out["V1"], [1, 1, 0, 0])
    np.testing.assert_array_equal(out["LVC"], [1, 1, 1, 0])
    np.testing.assert_array_equal(out["HVC"], [0, 0, 0, 1])  # LOC + FFA + PPA without an HVC mask
    np.testing.assert_array_equal(out["VC"], [1, 1, 1, 1])
    assert made["V1"] == ["V1d", "V1v"] and made["HVC"] == ["LOC", "FFA", "PPA"]


def test_trial_sample_equals_detrended_zscored_volume_mean(ds):
    import nibabel as nib
    import pandas as pd
    from scipy.signal import detrend

    root = ds[0]
    d = load_horikawa_bids(root, "sub-01", roi="V1")
    bold, ev = find_runs(root, "sub-01")[0]
    ijk = d.voxel_info["ijk"]
    ts = np.asarray(nib.load(bold).dataobj, dtype=np.float64)[ijk[:, 0], ijk[:, 1], ijk[:, 2]].T
    ts = detrend(ts, axis=0)
    ts = (ts - ts.mean(0)) / ts.std(0)
    events = pd.read_csv(ev, sep="\t", na_values="n/a")
    first = events[events.event_type == 1].iloc[0]
    t = np.arange(ts.shape[0]) * 3.0
    vols = (t >= first.onset + 3) & (t < first.onset + first.duration + 3)
    assert vols.sum() == 3
    np.testing.assert_allclose(d.responses[0], ts[vols].mean(0), rtol=1e-4, atol=1e-5)


def test_raw_runs_only_when_asked(ds, tmp_path):
    root = _copy(ds, tmp_path)
    shutil.rmtree(root / "derivatives")
    with pytest.raises(FileNotFoundError, match=r"no preprocessed runs .*derivatives/preproc-spm/output.*"
                                                r"runs='raw'"):
        load_horikawa_bids(root, "sub-01")
    assert load_horikawa_bids(root, "sub-01", runs="raw").n_samples == 60


def test_bold_glob_and_unclassifiable_files_are_clear_errors(ds, tmp_path):
    root = ds[0]
    # the glob of the published derivatives selects them (it used to read a NIfTI as events.tsv)
    d = load_horikawa_bids(root, "sub-01", bold_glob="*_bold_preproc.nii.gz")
    assert d.n_samples == 60
    one = load_horikawa_bids(root, "sub-01", bold_glob="*Test01*run-01_bold_preproc.nii.gz")
    assert one.n_samples == 10 and set(one.split) == {"test"}
    with pytest.raises(ValueError, match=r"bold_glob='\*_bold.nii.gz' matches .*_bold.nii.gz, which is not a "
                                         r"preprocessed run.*runs='raw'"):
        load_horikawa_bids(root, "sub-01", bold_glob="*_bold.nii.gz")
    root2 = _copy(ds, tmp_path)
    stray = root2 / PRE / "sub-01/ses-perceptionTest01/func/sub-01_ses-perceptionTest01_run-01_mean.nii.gz"
    stray.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot classify .*sub-01_ses-perceptionTest01_run-01_mean.nii.gz.*"
                                         r"ignore=\['sub-01_ses-perceptionTest01_run-01_mean.nii.gz'\]"):
        load_horikawa_bids(root2, "sub-01")
    assert load_horikawa_bids(root2, "sub-01", ignore=["*_mean.nii.gz"]).n_samples == 60
    stray.unlink()
    (root2 / "sourcedata/sub-01/anat/sub-01_mask_V1_both.nii.gz").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot classify mask file .*sub-01_mask_V1_both.nii.gz"):
        load_horikawa_bids(root2, "sub-01")


def test_events_without_event_type_or_with_older_label_column(ds, tmp_path):
    import pandas as pd

    root = _copy(ds, tmp_path)
    ref = load_horikawa_bids(root, "sub-01")
    for ev in root.glob("sub-01/ses-*/func/*_events.tsv"):
        t = pd.read_csv(ev, sep="\t", na_values="n/a")
        # only the stimulus names: the rests have none, the one-back repetition repeats the name before
        t.drop(columns=["event_type", "stimulus_id"]).to_csv(ev, sep="\t", index=False, na_rep="n/a")
    d = load_horikawa_bids(root, "sub-01")
    np.testing.assert_array_equal(d.stimulus_ids, ref.stimulus_ids)
    np.testing.assert_array_equal(d.responses, ref.responses)
    for ev in root.glob("sub-01/ses-*/func/*_events.tsv"):
        t = pd.read_csv(ev, sep="\t", na_values="n/a")
        t["stim_id"] = [float(f"{int(n[1:9])}.{int(n.split('_')[1]):06d}") if isinstance(n, str) else np.nan
                        for n in t["stimulus_name"]]
        t.drop(columns=["stimulus_name"]).to_csv(ev, sep="\t", index=False, na_rep="n/a", float_format="%.6f")
    np.testing.assert_array_equal(load_horikawa_bids(root, "sub-01").stimulus_ids, ref.stimulus_ids)
    for ev in root.glob("sub-01/ses-*/func/*_events.tsv"):
        pd.read_csv(ev, sep="\t").drop(columns=["stim_id"]).to_csv(ev, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"must name the stimulus in one of the columns \['stimulus_name'"):
        load_horikawa_bids(root, "sub-01")


def test_missing_events_and_mask_shape_mismatch(ds, tmp_path):
    import nibabel as nib

    root = _copy(ds, tmp_path)
    ev = root / "sub-01/ses-perceptionTest01/func/sub-01_ses-perceptionTest01_task-perception_run-02_events.tsv"
    ev.unlink()
    with pytest.raises(FileNotFoundError, match="sub-01_ses-perceptionTest01_task-perception_run-02_events.tsv"):
        load_horikawa_bids(root, "sub-01")
    root = _copy(ds, tmp_path / "b")
    m = np.zeros((9, 9, 9), dtype=np.int16)
    for p in (root / "sourcedata/sub-01/anat").iterdir():
        m[1, 1, 1] = 1
        nib.save(nib.Nifti1Image(m, np.eye(4)), p)
    with pytest.raises(ValueError, match=r"mask shape \(9, 9, 9\) does not match the functional data"):
        load_horikawa_bids(root, "sub-01")


# ---------------------------------------------------------------- decodedDNN files ---------
def test_decodability_folder_and_zip(tmp_path, rng):
    from scipy.io import savemat

    # names of KamitaniLab/brain-decoding-datasets bdds/decodeddnn.py (1.0.1): accuracy-<net>-<layer>-<subject>.mat
    root = tmp_path / "decodedDNN"
    truth = {}
    for layer, n_units in (("conv1", 7), ("fc8", 5)):
        for subj in ("S1", "S2", "Averaged"):
            for mode in ("accuracy", "rank"):
                vals = rng.random((1, n_units))
                truth[(layer, subj, mode)] = vals.ravel()
                d = root / mode / "AlexNet" / layer
                d.mkdir(parents=True, exist_ok=True)
                savemat(d / f"{mode}-AlexNet-{layer}-{subj}.mat", {mode: vals})
        for img in ("n01443537_22563", "n01621127_19020"):
            feat = rng.random((1, n_units))
            truth[(layer, "true", img)] = feat.ravel()
            d = root / "true" / "AlexNet" / layer
            d.mkdir(parents=True, exist_ok=True)
            savemat(d / f"true-AlexNet-{layer}-{img}.mat", {"feat": feat})
            d = root / "decoded" / "AlexNet" / layer / "S1"
            d.mkdir(parents=True, exist_ok=True)
            dec = feat + 0.1
            truth[(layer, "S1", img)] = dec.ravel()
            savemat(d / f"decoded-AlexNet-{layer}-S1-{img}.mat", {"feat": dec})
    table = load_decodability(tmp_path)
    assert set(table.columns) == {"net", "roi", "layer", "subject", "unit", "accuracy", "rank"}
    assert set(table.roi) == {"VC"}  # "decodedDNN" is the published top folder, not a ROI
    assert len(table) == 3 * (7 + 5)
    sel = table[(table.layer == "conv1") & (table.subject == "S2")]
    np.testing.assert_allclose(sel["accuracy"], truth[("conv1", "S2", "accuracy")])
    np.testing.assert_allclose(sel["rank"], truth[("conv1", "S2", "rank")])
    # the same from a zip per mode and layer, as on figshare (decodedDNN-<mode>-<net>-<layer>.zip)
    zpath = tmp_path / "decodedDNN-accuracy-AlexNet-fc8.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in (root / "accuracy" / "AlexNet" / "fc8").iterdir():
            z.write(f, f"decodedDNN/accuracy/AlexNet/fc8/{f.name}")
    zt = load_decodability([zpath], modes=("accuracy",), subjects=["Averaged"])
    np.testing.assert_allclose(zt["accuracy"], truth[("fc8", "Averaged", "accuracy")])
    ids, true = read_decoded_features(root, "AlexNet", "fc8")
    assert ids == ["n01443537_22563", "n01621127_19020"]
    np.testing.assert_allclose(true[1], truth[("fc8", "true", "n01621127_19020")], rtol=1e-6)
    ids, dec = read_decoded_features(root, "AlexNet", "fc8", "S1")
    np.testing.assert_allclose(dec[0], truth[("fc8", "S1", "n01443537_22563")], rtol=1e-6)
    with pytest.raises(ValueError, match="no \\['accuracy'\\] files"):
        load_decodability(tmp_path, net="VGG19", modes=("accuracy",))


def test_decodability_earlier_bdds_names(tmp_path, rng):
    from scipy.io import savemat

    # bdds/decodeddnn.py at commit 2ae4114: <layer>_<mode>_<subject>.mat, decoded/.../<subject>/<layer>_<image>.mat,
    # in bdds' default data store folder "decodeddnn" (not a ROI folder)
    tmp_path = tmp_path / "decodeddnn"
    d = tmp_path / "accuracy" / "VGG19" / "conv1_1"
    d.mkdir(parents=True)
    vals = rng.random((1, 6))
    savemat(d / "conv1_1_accuracy_Average.mat", {"accuracy": vals})
    d = tmp_path / "decoded" / "VGG19" / "conv1_1" / "S2"
    d.mkdir(parents=True)
    savemat(d / "conv1_1_n01443537_22563.mat", {"feat": vals})
    t = load_decodability(tmp_path.parent, modes=("accuracy",))
    assert t.subject.tolist() == ["Average"] * 6 and t.layer.iloc[0] == "conv1_1" and set(t.roi) == {"VC"}
    np.testing.assert_allclose(t.accuracy, vals[0])
    ids, dec = read_decoded_features(tmp_path, "VGG19", "conv1_1", "S2")
    assert ids == ["n01443537_22563"]



def test_registry_lists_alexnet_and_vgg19_files():
    from brainlike.datasets import info

    entry = info("horikawa2019_decodability")
    vgg = entry.file_list(net="VGG19", modes=("accuracy", "rank", "decoded", "true"))
    # bdds 1.0.1 (KamitaniLab/brain-decoding-datasets b98e8eb): 19 VGG19 layers conv1_1..fc8 per mode
    assert len(vgg) == 4 * 19
    names = [rf.path.rsplit("/", 1)[1] for rf in vgg]
    assert names[0] == "decodedDNN-accuracy-VGG19-conv1_1.zip" and names[18] == "decodedDNN-accuracy-VGG19-fc8.zip"
    byname = dict(zip(names, vgg))
    assert byname["decodedDNN-true-VGG19-fc8.zip"].url.startswith("https://ndownloader.figshare.com/files/13110794?")
    assert byname["decodedDNN-accuracy-VGG19-conv1_1.zip"].url.split("?")[0].endswith("/13077314")
    alex = entry.file_list(modes=("accuracy",))
    assert [rf.path.rsplit("-", 1)[1] for rf in alex] == [f"{n}.zip" for n in
                                                          ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                                           "fc8")]
    assert alex[0].url.split("?")[0].endswith("/13077233")
    with pytest.raises(ValueError, match="net must be one of"):
        entry.file_list(net="ResNet50")
    with pytest.raises(ValueError, match="layers of VGG19 must be among"):
        entry.file_list(net="VGG19", layers=["conv1"])


def test_registry_loads_vgg19_zip_from_a_mirror(tmp_path, rng, monkeypatch):
    from scipy.io import savemat

    from brainlike.datasets import load

    mirror = tmp_path / "mirror" / "horikawa2019_decodeddnn"
    mirror.mkdir(parents=True)
    vals = {s: rng.random((1, 6)) for s in ("S1", "Averaged")}
    with zipfile.ZipFile(mirror / "decodedDNN-accuracy-VGG19-conv1_1.zip", "w") as z:
        for s, v in vals.items():
            f = tmp_path / f"accuracy-VGG19-conv1_1-{s}.mat"
            savemat(f, {"accuracy": v})
            z.write(f, f"decodedDNN/accuracy/VGG19/conv1_1/{f.name}")
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    t = load("horikawa2019_decodability", net="VGG19", layers=["conv1_1"], modes=["accuracy"])
    assert set(t.subject) == {"S1", "Averaged"} and set(t.net) == {"VGG19"}
    np.testing.assert_allclose(t[t.subject == "S1"].accuracy, vals["S1"][0])


def test_miniature_published_zips_are_consistent(tmp_path):
    from brainlike.demo.horikawa import DECODEDDNN_LAYERS, write_decodeddnn
    from brainlike.scores import rank_units, unit_accuracy

    planted = write_decodeddnn(tmp_path, n_units=6, n_images=8)
    assert len(list(tmp_path.glob("decodedDNN-*.zip"))) == 4 * (8 + 19)
    vgg = sorted(tmp_path.glob("decodedDNN-*-VGG19-*.zip"))
    t = load_decodability(vgg)
    assert list(dict.fromkeys(t.layer)) == sorted(DECODEDDNN_LAYERS["VGG19"])  # read in file order
    assert set(t.subject) == {"S1", "S2", "S3", "S4", "S5", "Averaged"} and set(t.roi) == {"VC"}
    for layer in ("conv1_1", "fc8"):
        ids, true = read_decoded_features(vgg, "VGG19", layer)
        assert len(ids) == 8
        accs = []
        for s in ("S1", "S2", "S3", "S4", "S5"):
            _, dec = read_decoded_features(vgg, "VGG19", layer, s)
            acc = t[(t.layer == layer) & (t.subject == s)].sort_values("unit")
            np.testing.assert_allclose(acc.accuracy, unit_accuracy(true, dec), atol=1e-5)
            np.testing.assert_array_equal(acc["rank"], rank_units(acc.accuracy.to_numpy()))
            accs.append(acc.accuracy.to_numpy())
        avg = t[(t.layer == layer) & (t.subject == "Averaged")].sort_values("unit").accuracy
        np.testing.assert_allclose(avg, np.mean(accs, axis=0), atol=1e-6)
        # units of high planted quality are the decodable ones
        assert np.corrcoef(planted[("VGG19", layer)], avg)[0, 1] > 0.5


def test_demo_command_writes_both_miniatures(tmp_path, capsys):
    from brainlike.demo.horikawa import main

    assert main([str(tmp_path / "ds001246"), "--subjects", "sub-01", "--decodeddnn", str(tmp_path / "dd")]) == 0
    assert "decodedDNN zips of 27 layers" in capsys.readouterr().out
    assert (tmp_path / "dd/decodedDNN-true-AlexNet-fc8.zip").is_file()
    assert len(find_runs(tmp_path / "ds001246", "sub-01")) == 6
    with pytest.raises(SystemExit):
        main([str(tmp_path / "ds001246")])  # not an empty folder
