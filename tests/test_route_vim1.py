"""The Kay et al. 2008 vim-1 route (AlexNet conv3 -> V4 voxels) on a miniature of the CRCNS files.

The miniature (``brainlike.demo.vim1``) writes ``EstimatedResponses.mat`` (MATLAB v7.3) and
``Stimuli.mat`` (MATLAB v5) with the published names and orientations (sources cited there), with
planted receptive fields; the documented command runs on the folder as a user has it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainlike import datasets
from brainlike.cli import main
from brainlike.demo.vim1 import write_vim1


@pytest.fixture(scope="module")
def vim1(tmp_path_factory):
    return write_vim1(tmp_path_factory.mktemp("crcns") / "vim-1", n_train=100, n_val=20, n_voxels=16)


def test_registered_dataset_reads_the_users_folder_with_its_images(vim1):
    data = datasets.load("kay2008_vim1", data_dir=vim1, subject=2)
    assert data.subject == "S2" and data.n_samples == 120
    assert (data.split == "train").sum() == 100 and (data.split == "test").sum() == 20
    assert data.stimuli is not None and list(data.stimuli.ids) == [str(s) for s in data.stimulus_ids]
    img = data.stimuli.load(0)
    assert img.dtype == np.uint8 and img.shape[:2] == (128, 128)
    assert {"EstimatedResponses.mat", "Stimuli.mat"} <= set(data.provenance["files"])
    assert int(data.rois["V4"].sum()) == 3 and not data.rois["LatOcc"].any()
    assert datasets.load("kay2008_vim1", data_dir=vim1, stimuli=False).stimuli is None


def test_missing_file_in_data_dir_is_named(tmp_path):
    (tmp_path / "EstimatedResponses.mat").write_bytes(b"")
    with pytest.raises(datasets.DataNotAvailableError, match=r"data_dir .*Stimuli.mat not found"):
        datasets.load("kay2008_vim1", data_dir=tmp_path)


def test_map_command_with_and_without_retina_warp(vim1, tmp_path, capsys):
    out = tmp_path / "kay-conv3-v4"
    torch.manual_seed(0)  # the random-weight network of this in-process run
    rc = main(["map", "--dataset", "kay2008_vim1", "--data-dir", str(vim1), "--option", "subject=1",
               "--model", "torchvision:alexnet", "--random-weights", "--layers", "conv3", "--rois", "V1", "V4",
               "--n-heldout", "20", "--inner-cv", "3", "--pls-components", "1", "2", "4", "--retina-warp", "both",
               "--quiet", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "fit on 80 samples; evaluated on heldout: 20, validation: 20" in text
    vox = pd.read_csv(out / "voxel_scores.csv")
    assert set(vox["stimuli"]) == {"plain", "warped"} and set(vox["method"]) == {"ridge", "pls"}
    assert set(vox["split"]) == {"heldout", "validation"}
    assert len(vox) == 2 * 2 * 2 * (4 + 3)  # variants x methods x splits x (V1 + V4 voxels)
    roi = pd.read_csv(out / "roi_average_scores.csv")
    plain = roi[(roi.stimuli == "plain") & (roi.method == "ridge") & (roi.split == "validation")]
    assert (plain["r"] > 0.6).all(), plain  # planted receptive fields are recovered from conv3
    figs = {p.name for p in (out / "figures").glob("*.png")}
    assert {"layer_profiles.png", "roi_average_fit_conv3_V4_plain.png", "roi_average_fit_conv3_V4_warped.png"} <= figs


def test_missing_weights_is_one_line_naming_random_weights(vim1, tmp_path, monkeypatch, capsys):
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    rc = main(["map", "--dataset", "kay2008_vim1", "--data-dir", str(vim1), "--model", "torchvision:alexnet",
               "--layers", "conv3", "--rois", "V4", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "torch hub cache" in err and "--random-weights" in err and len(err.strip().splitlines()) == 1


@pytest.mark.realdata
def test_offline_training_images_with_the_validation_split_left_out(mirror, vim1, tmp_path, capsys):
    """The 1750 real training images (ids '0'..'1749') serve responses of the training split only."""
    base = ["map", "--dataset", "kay2008_vim1", "--data-dir", str(vim1), "--option", "stimuli=false",
            "--stimuli", "kay2008_vim1_stimuli", "--model", "torchvision:alexnet", "--random-weights",
            "--layers", "conv3", "--rois", "V4", "--methods", "ridge", "--inner-cv", "3", "--quiet",
            "--no-figures", "--out", str(tmp_path / "o")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "20 id(s) of the responses are missing from images of 'kay2008_vim1_stimuli'" in err
    assert "use_split" in err
    assert main(base + ["--use-split", "train", "--n-heldout", "15"]) == 0
    vox = pd.read_csv(tmp_path / "o" / "voxel_scores.csv")
    assert set(vox["split"]) == {"heldout"} and len(vox) == 3


def test_run_study_refuses_unknown_split(vim1):
    from brainlike import models
    from brainlike.mapping import run_study

    data = datasets.load("kay2008_vim1", data_dir=vim1)
    net = models.load("torchvision:alexnet", pretrained=False)
    with pytest.raises(ValueError, match=r"use_split: \['validation'\] not among the data's splits \['test', 'train'\]"):
        run_study(data, net, layers="conv3", rois="V4", use_split="validation")
