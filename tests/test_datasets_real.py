"""Real validation sets through the offline mirror (skipped when it is absent)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from brainlike.datasets import BrainData, load

pytestmark = pytest.mark.realdata


def test_cowley_session_responses_images_ids(mirror):
    d = load("cowley2023_v4", session="190923")
    assert isinstance(d, BrainData)
    raw = np.load(mirror / "cowley2023_v4/responses_repeat_averaged/responses_190923.npy")
    assert raw.shape == (33, 1200) and d.responses.shape == (1200, 33)
    assert d.responses.dtype == np.float32 and d.roi_names == ["V4"] and d.rois["V4"].all()
    np.testing.assert_allclose(d.responses[7], raw[:, 7].astype(np.float32))  # image 8 <-> column 7
    assert list(d.stimulus_ids) == d.stimuli.ids and d.stimulus_ids[7] == "image0008"
    d.check_stimuli()
    with zipfile.ZipFile(mirror / "cowley2023_v4/images/images_190923.zip") as z:
        ref = np.asarray(Image.open(io.BytesIO(z.read("images_190923/image0008.jpg"))).convert("RGB"))
    np.testing.assert_array_equal(d.stimuli.array([7])[0], ref)
    assert d.provenance["files"]["cowley2023_v4/responses_repeat_averaged/responses_190923.npy"]["sha256"].startswith("741672d3")
    # aligning to the image set's order is the identity
    assert list(d.align(d.stimuli).stimulus_ids) == d.stimuli.ids


def test_cowley_raw_repeats_average_back_and_are_reliable(mirror):
    r = load("cowley2023_v4", session="210325", raw=True, stimuli=False)
    avg = load("cowley2023_v4", session="210325", stimuli=False)
    assert r.n_voxels == 50 and 6 * 640 <= r.n_samples <= 10 * 640
    assert not np.isnan(r.responses).any()  # NaN-padded repeats are not samples
    back = r.average_repetitions()
    assert list(back.stimulus_ids) == list(avg.stimulus_ids)
    assert back.n_averaged.min() == 6 and back.n_averaged.max() == 10
    np.testing.assert_allclose(back.responses, avg.responses, rtol=1e-5, atol=1e-5)
    # odd/even split-half reliability (Spearman-Brown), 0.75 on average per SOURCES.md
    ev = r.select_samples(r.repetition % 2 == 0).average_repetitions()
    od = r.select_samples(r.repetition % 2 == 1).average_repetitions().align(ev.stimulus_ids)
    rel = np.array([np.corrcoef(ev.responses[:, j], od.responses[:, j])[0, 1] for j in range(r.n_voxels)])
    sb = 2 * rel / (1 + rel)
    assert 0.65 < sb.mean() < 0.85 and sb.min() > 0.4


def test_kriegeskorte_92_images_and_rdms(mirror):
    k = load("kriegeskorte2008_92")
    assert len(k.stimuli) == 92 and k.stimuli.array([0]).shape == (1, 175, 175, 3)
    assert k.rdms["hIT"].shape == (8, 92, 92) and k.rdms["mIT"].shape == (1, 92, 92)
    for r in (k.rdms["hIT"], k.rdms["mIT"]):
        np.testing.assert_allclose(r, np.swapaxes(r, 1, 2))
        assert np.all(np.diagonal(r, axis1=1, axis2=2) == 0)
    iu = np.triu_indices(92, 1)
    # the subjects' mean ranks like the fig. 1 human IT RDM; human vs monkey IT ~0.44
    assert spearmanr(k.rdms["hIT"].mean(0)[iu], k.rdms["hIT_fig1"][0][iu])[0] > 0.999
    assert 0.40 < spearmanr(k.rdms["hIT_fig1"][0][iu], k.rdms["mIT"][0][iu])[0] < 0.48
    assert k.rdm_labels["hIT"][0] == "hIT | BE | Session: 1"
    assert k.categories["animate"].sum() == 48 and k.categories["face"].sum() == 24
    assert k.category.count("human face") == 12


def test_kay_stimuli_and_bhscore_settings(mirror):
    s = load("kay2008_vim1_stimuli")
    assert len(s) == 1750 and s.ids[:3] == ["0", "1", "2"] and s.ids[-1] == "1749"
    img = s.array([0])[0]
    assert img.shape == (128, 128, 3)
    settings = load("bhscore_settings")
    assert settings["subjects"] == ["sub-01", "sub-02", "sub-03"]
    assert len(settings["dnns"]) == 29
