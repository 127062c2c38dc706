"""The nsd_gnet8x route: ``brainlike encode`` on a miniature of the released NSD tree.

The miniature (``brainlike.demo.nsd``, names and nesting of the NSD data manual and nsd_gnet8x's
``src/load_nsd.py``, cited there) has two subjects whose voxels respond to the contrast energy inside
planted receptive fields. The command fits fwRF, ridge, GNet8j and GNet8r on the same images and
voxels and writes the per-voxel accuracies, the comparison, the transfer matrix and the tuning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from brainlike.cli import main
from brainlike.demo.nsd import write_nsd
from brainlike.encoding.study import load_encoding_config, run_encoding_study

NETWORK = {"model": "torchvision:alexnet", "pretrained": False, "seed": 0, "layers": ["conv1", "conv2"],
           "input_size": 64}
FAST = {"fwrf": {"grid": {"n_sizes": 3, "min_spacing": 2.0}, "alphas": [1.0, 100.0, 10000.0], "holdout": 0.25},
        "gnet": {"width": 4, "max_epochs": 2, "batch_size": 16, "lr": 0.01}}


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    truth = write_nsd(root, subjects=(1, 2), n_shared=24, n_own=200, image_size=64, noise=0.3)
    return root, truth


def _config(root, **over):
    cfg = {"dataset": {"name": "nsd", "data_dir": str(root), "options": {"sessions": [1]}},
           "subjects": [1, 2], "rois": ["V1", "V2", "V3", "hV4"], "network": dict(NETWORK),
           "models": ["ridge"], "analyses": ["comparison"], **FAST}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def study(nsd, tmp_path_factory):
    root, truth = nsd
    out = tmp_path_factory.mktemp("encode")
    cfg = tmp_path_factory.mktemp("cfg") / "study.yaml"
    cfg.write_text(yaml.safe_dump(_config(root, models=["fwrf", "ridge", "gnet8j", "gnet8r"],
                                          analyses=["comparison", "transfer", "tuning"])))
    assert main(["encode", str(cfg), "--out", str(out), "--quiet"]) == 0
    return out, cfg, truth


def test_every_model_scored_per_voxel_on_the_shared_images(study):
    out, _, _ = study
    vox = pd.read_csv(out / "results" / "voxel_accuracy.csv")
    assert set(vox["model"]) == {"fwrf", "ridge", "gnet8j", "gnet8r"}
    assert set(vox["subject"].astype(str)) == {"1", "2"} and set(vox["roi"]) == {"V1", "V2", "V3", "hV4"}
    assert (vox["n_images"] == 24).all()  # the shared images are the validation set
    assert len(vox) == 4 * 2 * 126
    # the miniature's ncsnr is 1 / noise with 3 repetitions of each shared image: ncsnr² / (ncsnr² + 1/3)
    snr2 = (1 / 0.3) ** 2
    np.testing.assert_allclose(vox["noise_ceiling"], snr2 / (snr2 + 1 / 3), rtol=1e-6)
    np.testing.assert_allclose(vox["r2_norm"], vox["r2"] / vox["noise_ceiling"], rtol=1e-6)
    fwrf = vox[vox.model == "fwrf"]
    assert fwrf["r"].median() > 0.5, fwrf.groupby("roi")["r"].median()
    comp = pd.read_csv(out / "results" / "comparison.csv")
    assert set(comp["model"]) == {"fwrf", "ridge", "gnet8j", "gnet8r"} and (comp["n_voxels"] == np.where(
        comp["roi"] == "hV4", 36, 72)).all()
    assert (out / "results" / "comparison.png").stat().st_size > 1000


def test_fwrf_recovers_the_planted_fields(study):
    """On 200 images the chosen field centres follow the planted ones (a wrong axis or flipped
    convention gives r ~ 0 and chance distances; 400 images and conv1 alone reach 0.05 of the width)."""
    out, _, truth = study
    fields = pd.read_csv(out / "results" / "fwrf_fields.csv")
    for s, t in truth.items():
        f = fields[fields["subject"].astype(str) == str(s)].drop_duplicates("voxel").sort_values("voxel")
        x, y = f["x"].to_numpy(), f["y"].to_numpy()
        err = np.hypot(x - t["rf"][:, 0], y - t["rf"][:, 1])
        perm = np.random.default_rng(0).permutation(len(err))  # the same fields given to the wrong voxels
        chance = np.hypot(x[perm] - t["rf"][:, 0], y[perm] - t["rf"][:, 1])
        assert np.median(err) < 0.8 * np.median(chance), (np.median(err), np.median(chance))
        assert np.corrcoef(x, t["rf"][:, 0])[0, 1] > 0.5 and np.corrcoef(y, t["rf"][:, 1])[0, 1] > 0.5


def test_transfer_matrix_and_tuning_named_by_layers(study):
    out, _, _ = study
    tm = pd.read_csv(out / "results" / "transfer_matrix.csv").set_index("source")
    assert list(tm.index) == ["V1", "V2", "V3", "hV4"] and list(tm.columns) == ["V1", "V2", "V3", "hV4"]
    np.testing.assert_allclose(np.diag(tm.to_numpy()), 1.0)
    assert (out / "results" / "transfer_matrix.png").is_file()
    tuning = pd.read_csv(out / "results" / "tuning.csv")
    assert set(tuning[tuning.analysis == "layer"]["partition"]) == {"conv1", "conv2"}
    assert set(tuning[tuning.analysis == "bipartite"]["partition"]) == {"early", "late"}


def test_report_page_and_brainlike_report(study, tmp_path):
    out, _, _ = study
    page = (out / "report" / "index.html").read_text()
    for section in ("Models compared per ROI", "Transfer matrix (GNet8r)", "Layer-wise tuning (fwRF)",
                    "fwRF pooling fields", "median_r2_over_ceiling"):
        assert section in page
    assert page.count("data:image/png;base64,") == 4
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    assert {p.name for p in (tmp_path / "again" / "figures").iterdir()} >= {"comparison.png", "transfer_matrix.svg"}


def test_rerun_reuses_every_job_and_a_damaged_one_is_recomputed(study, monkeypatch, caplog):
    out, cfg, _ = study
    import brainlike.encoding.study_jobs as J

    before = pd.read_csv(out / "results" / "voxel_accuracy.csv")
    calls = []
    for name in ("ridge", "fwrf"):
        monkeypatch.setitem(J.FITTERS, name, lambda *a, _r=J.FITTERS[name], _n=name: calls.append(_n) or _r(*a))
    real_gnet = J.gnet
    monkeypatch.setattr(J, "gnet", lambda *a: calls.append("gnet") or real_gnet(*a))
    job = next((out / "jobs").glob("ridge-*/1/fold0.npz"))
    job.write_bytes(job.read_bytes()[:50])  # a truncated result
    res = run_encoding_study(load_encoding_config(str(cfg)), out)
    assert calls == ["ridge"] and res.jobs["n_run"] == 1  # only the damaged job ran again, no analysis recomputed
    aside = list((out / "jobs" / "corrupt").rglob("fold0.npz.*"))  # set aside by pipeline.store.set_aside
    assert len(aside) == 1 and aside[0].parent.name == "1" and "moved to" in caplog.text
    after = pd.read_csv(out / "results" / "voxel_accuracy.csv")
    pd.testing.assert_frame_equal(before, after)


def test_kfold_cross_validation_over_the_training_images(nsd, tmp_path):
    root, _ = nsd
    res = run_encoding_study(_config(root, validation={"kfold": 3}, subjects=[1], models=["ridge", "pls"],
                                     pls={"n_components": [1, 2, 4]}), tmp_path)
    assert set(res.voxels["n_images"]) == {200}  # every training image predicted once, shared images unused
    for model in ("ridge", "pls"):  # both mappings on the same folds, images and voxels
        assert res.voxels[res.voxels.model == model]["r"].median() > 0.3
    assert len(res.voxels[res.voxels.model == "ridge"]) == len(res.voxels[res.voxels.model == "pls"]) == 126


@pytest.mark.parametrize(("over", "message"), [
    ({"models": ["fwrf", "bogus"]}, "config key 'models': must list models among"),
    ({"models": ["fwrf"], "analyses": ["transfer"]}, "transfer and synthetic_transfer need gnet8r"),
    ({"validation": {"kfold": 1}}, "config key 'validation'"),
    ({"network": {**NETWORK, "input_size": 4}}, "network.input_size"),
    ({"ridge": {"layer": "fc8"}}, "config key 'ridge.layer'"),
    ({"pls": {"layer": "conv9"}}, "config key 'pls.layer'"),
    ({"epochs": 3}, "config key 'epochs': unknown key"),
    ({"rois": ["V1", "LOC"]}, "roi must be among ['V1v'"),  # the NSD loader names the valid ROIs
    ({"rois": ["V1", "nsdgeneral", "V2"], "dataset": {"name": "nsd", "data_dir": "{root}", "options": {
        "sessions": [1], "roi": ["V1", "V2"]}}}, "config key 'rois': ['nsdgeneral'] not found for subject '1'"),
])
def test_bad_configs_fail_naming_the_key(nsd, tmp_path, over, message):
    root, _ = nsd
    if "dataset" in over:
        over = {**over, "dataset": {**over["dataset"], "data_dir": str(root)}}
    with pytest.raises(ValueError) as e:
        run_encoding_study(_config(root, **over), tmp_path)
    assert message in str(e.value)


def test_encode_check_flag(nsd, tmp_path, capsys):
    root, _ = nsd
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_config(root, models=["fwrf", "gnet8r"], analyses=["transfer", "tuning"])))
    assert main(["encode", str(cfg), "--out", str(tmp_path / "o"), "--check"]) == 0
    assert "config OK" in capsys.readouterr().out
    cfg.write_text(yaml.safe_dump(_config(root, models=["gnet9"])))
    assert main(["encode", str(cfg), "--out", str(tmp_path / "o"), "--check"]) == 2
