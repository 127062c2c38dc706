"""Decodability (Horikawa et al. 2019): accuracies, ranks, averages, inter-subject consistency, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import io as sio
from scipy.stats import pearsonr

from brainlike.scores import (
    add_ranks,
    average_subjects,
    export_decodability,
    intersubject_correlation,
    intersubject_matrix,
    preferred_images,
    rank_units,
    unit_accuracy,
)


def make_table(rng, subjects=("S1", "S2", "S3"), layers=("conv1", "fc8"), rois=("VC",), n_units=80, noise=0.05):
    """Each unit has a true decodability shared by subjects, plus subject noise."""
    rows = []
    for li, layer in enumerate(layers):
        true = rng.uniform(-0.1, 0.6, size=n_units)
        for roi in rois:
            for s in subjects:
                acc = true + noise * rng.normal(size=n_units)
                rows.append(pd.DataFrame({"dnn": "net", "subject": s, "roi": roi, "layer": layer,
                                          "layer_index": li, "unit": np.arange(n_units), "accuracy": acc}))
    return pd.concat(rows, ignore_index=True)


def test_unit_accuracy_equals_scipy(rng):
    yt = rng.normal(size=(40, 6))
    yp = 0.5 * yt + rng.normal(size=(40, 6))
    acc = unit_accuracy(yt, yp)
    np.testing.assert_allclose(acc, [pearsonr(yt[:, j], yp[:, j])[0] for j in range(6)], atol=1e-12)
    with pytest.raises(ValueError, match="y_pred"):
        unit_accuracy(yt, yp[:30])


def test_rank_units():
    acc = np.array([0.1, np.nan, 0.5, 0.3, 0.5])
    np.testing.assert_array_equal(rank_units(acc), [4, 5, 1, 3, 2])
    # equals pandas' descending ordinal ranking on finite values
    r = np.random.default_rng(0).normal(size=50)
    np.testing.assert_array_equal(rank_units(r), pd.Series(-r).rank(method="first").astype(int).to_numpy())


def test_average_and_ranks(rng):
    t = make_table(rng)
    avg = average_subjects(t)
    assert set(avg["subject"]) == {"Average"} and len(avg) == 160
    expect = t.groupby(["layer", "unit"])["accuracy"].mean()
    got = avg.set_index(["layer", "unit"])["accuracy"]
    np.testing.assert_allclose(got.loc[expect.index].to_numpy(), expect.to_numpy())
    ranked = add_ranks(t)
    g = ranked[(ranked.subject == "S1") & (ranked.layer == "fc8")]
    assert g.loc[g["accuracy"].idxmax(), "rank"] == 1 and sorted(g["rank"]) == list(range(1, 81))


def test_intersubject_correlation_planted(rng):
    t = make_table(rng, noise=0.05)
    isc = intersubject_correlation(t)
    assert len(isc) == 2 * 3  # 2 layers x 3 pairs
    assert (isc["r"] > 0.9).all() and (isc["n_units"] == 80).all()
    # independent check of one value
    a = t[(t.subject == "S1") & (t.layer == "conv1")].sort_values("unit")["accuracy"].to_numpy()
    b = t[(t.subject == "S3") & (t.layer == "conv1")].sort_values("unit")["accuracy"].to_numpy()
    row = isc[(isc.layer == "conv1") & (isc.subject_a == "S1") & (isc.subject_b == "S3")]
    assert row["r"].item() == pytest.approx(pearsonr(a, b)[0], abs=1e-12)
    # no shared structure -> near 0
    t2 = t.copy()
    t2["accuracy"] = rng.normal(size=len(t2))
    assert intersubject_correlation(t2)["r"].abs().max() < 0.35
    m = intersubject_matrix(t)
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1) and (m.to_numpy() > 0.9).all()


def test_export_published_layout(tmp_path, rng):
    # names of KamitaniLab/brain-decoding-datasets bdds/decodeddnn.py 1.0.1 (accuracy-<net>-<layer>-<subject>.mat)
    t = make_table(rng, subjects=("S1", "S2"), n_units=10)
    paths = export_decodability(t, tmp_path)
    assert len(paths) == 2 * 3 * 2  # layers x (2 subjects + Averaged) x (accuracy, rank)
    f = tmp_path / "accuracy" / "net" / "fc8" / "accuracy-net-fc8-S2.mat"
    acc = sio.loadmat(f)["accuracy"]
    expect = t[(t.subject == "S2") & (t.layer == "fc8")].sort_values("unit")["accuracy"].to_numpy()
    assert acc.shape == (1, 10)
    np.testing.assert_allclose(acc[0], expect)
    rank = sio.loadmat(tmp_path / "rank" / "net" / "fc8" / "rank-net-fc8-Averaged.mat")["rank"][0]
    avg = average_subjects(t)
    np.testing.assert_array_equal(rank, rank_units(avg[avg.layer == "fc8"].sort_values("unit")["accuracy"].to_numpy()))
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob(".*.tmp-*"))
    # several ROIs -> one folder per ROI
    t2 = make_table(rng, subjects=("S1",), rois=("V1", "V4"), n_units=4)
    export_decodability(t2, tmp_path / "multi", average=False)
    assert (tmp_path / "multi" / "V4" / "rank" / "net" / "conv1" / "rank-net-conv1-S1.mat").is_file()
    with pytest.raises(ValueError, match="lacks column"):
        export_decodability(t.drop(columns="unit"), tmp_path)


@pytest.mark.parametrize("rois", [("VC",), ("V1", "HVC")])
def test_export_then_load_round_trip(tmp_path, rng, rois):
    from brainlike.datasets import load_decodability

    t = make_table(rng, subjects=("S1", "S2"), rois=rois, n_units=9)
    export_decodability(t, tmp_path)
    back = load_decodability(tmp_path).rename(columns={"net": "dnn"})
    expect = add_ranks(pd.concat([t, average_subjects(t, name="Averaged")], ignore_index=True))
    keys = ["dnn", "roi", "layer", "subject", "unit"]
    merged = expect.merge(back, on=keys, suffixes=("", "_back"), validate="one_to_one")
    assert len(merged) == len(expect) == len(back)
    np.testing.assert_allclose(merged["accuracy_back"], merged["accuracy"])
    np.testing.assert_array_equal(merged["rank_back"], merged["rank"])


def test_preferred_images():
    X = np.zeros((6, 4))
    X[3, 2] = 5.0
    X[1, 2] = 4.0
    X[5, 0] = 1.0
    acc = np.array([0.2, 0.1, 0.9, np.nan])
    df = preferred_images(X, acc, stimulus_ids=list("abcdef"), n_units=2, n_images=2)
    top = df[df.unit_rank == 1]
    assert (top["unit"] == 2).all() and list(top["stimulus_id"]) == ["d", "b"]
    assert list(df[df.unit_rank == 2]["stimulus_id"])[0] == "f"
    with pytest.raises(ValueError, match="accuracy"):
        preferred_images(X, acc[:3])
