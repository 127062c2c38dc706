"""`brainlike map` on real V4 data (few images) and its bad-input errors."""

from __future__ import annotations

import pandas as pd
import pytest

from brainlike.cli import main

pytestmark = pytest.mark.realdata

BASE = ["map", "--dataset", "cowley2023_v4", "--option", "session=190923", "--quiet"]


def test_map_cli_ridge_and_pls_with_retina_warp(mirror, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(BASE + ["--layers", "block5", "--rois", "V4", "--n-images", "45", "--scheme", "cv", "--cv", "3",
                      "--inner-cv", "3", "--pls-components", "1", "2", "4", "--retina-warp", "both",
                      "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "3-fold cross-validation over 45 samples" in text
    assert "mean voxel r — ridge, cv, warped stimuli" in text and "ROI-averaged response fit" in text
    vox = pd.read_csv(out / "voxel_scores.csv")
    assert set(vox["stimuli"]) == {"plain", "warped"} and set(vox["method"]) == {"ridge", "pls"}
    assert len(vox) == 2 * 2 * 33
    assert vox["r"].mean() > 0.05  # block5 predicts V4 above chance even on 60 images
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "layer_profiles.png" in figs and any(f.startswith("roi_average_fit_block5_V4_warped") for f in figs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "conv3"], "unknown layers ['conv3']; valid layers: ['block0'"),
        (["--layers", "block5", "--rois", "V1"], "unknown rois ['V1']; valid rois: ['V4']"),
        (["--layers", "block5", "--n-images", "4", "--cv", "5"], "cv=5 folds need at least 5 samples; got 4"),
        (["--layers", "block5", "--n-images", "12", "--cv", "2", "--inner-cv", "2", "--pls-components", "40"],
         "pls_components [40] exceed the rank"),
        (["--layers", "block5", "--stimuli", "{kay}"], "stimulus ids do not match"),
    ],
)
def test_map_cli_bad_input(mirror, tmp_path, capsys, extra, message):
    extra = [e.replace("{kay}", str(mirror / "kay2008_vim1_stimuli" / "kay_train_stimuli_1750_jpg.zip"))
             for e in extra]
    rc = main(BASE + extra + ["--out", str(tmp_path / "o")])
    assert rc == 2
    assert message in capsys.readouterr().err
