"""Report: a synthetic results folder in the contract's format -> HTML + PNG/SVG figures."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.report import figures as F
from brainlike.report import read_results, write_report
from brainlike.scores import bh_score

ROIS = ["V1", "V2", "V3", "V4", "HVC"]


def synthetic_results(root: Path, seed: int = 0, n_units: int = 40, n_vox: int = 30, subjects=("sub-01", "sub-02", "sub-03"),
                      write_csv_only: bool = False) -> Path:
    """A results folder: 'hier' has a planted layer->ROI hierarchy, 'flat' none."""
    rng = np.random.default_rng(seed)
    dec, enc = [], []
    nets = {"hier": 6, "flat": 4}
    for net, n_layers in nets.items():
        # unit decodability shared across subjects (Horikawa: consistent between subjects)
        base = {li: rng.uniform(0.0, 0.35, size=n_units) for li in range(n_layers)}
        for s in subjects:
            for li in range(n_layers):
                for ri, roi in enumerate(ROIS):
                    match = abs(li / (n_layers - 1) - ri / (len(ROIS) - 1))
                    bonus = 0.35 * (0.5 - match) if net == "hier" else 0.0
                    acc = base[li] + bonus + 0.06 * rng.normal(size=n_units)
                    dec.append(pd.DataFrame({"dnn": net, "subject": s, "roi": roi, "layer": f"L{li + 1}",
                                             "layer_index": li, "unit": np.arange(n_units), "accuracy": acc}))
                    vacc = rng.uniform(0.0, 0.3, size=n_vox) + bonus + 0.05 * rng.normal(size=n_vox)
                    enc.append(pd.DataFrame({"dnn": net, "subject": s, "roi": roi, "layer": f"L{li + 1}",
                                             "layer_index": li, "voxel": np.arange(n_vox), "accuracy": vacc}))
    dec, enc = pd.concat(dec, ignore_index=True), pd.concat(enc, ignore_index=True)
    res = root / "results"
    res.mkdir(parents=True)
    for name, t in (("decoding_accuracy", dec), ("encoding_accuracy", enc)):
        t.to_csv(res / f"{name}.csv", index=False)
        if not write_csv_only:
            t.to_parquet(res / f"{name}.parquet")
    rows = []
    for net, kind, score, lo, hi, p in [("hier", "decoding", 0.62, 0.55, 0.69, 0.001), ("hier", "encoding", 0.48, 0.40, 0.55, 0.001),
                                        ("hier", "average", 0.55, 0.49, 0.61, 0.001), ("flat", "decoding", 0.02, -0.08, 0.11, 0.4),
                                        ("flat", "encoding", -0.03, -0.12, 0.06, 0.7), ("flat", "average", 0.0, -0.07, 0.07, 0.5)]:
        rows.append({"dnn": net, "kind": kind, "score": score, "ci_low": lo, "ci_high": hi, "p_perm": p})
    pd.DataFrame(rows).to_csv(res / "bh_scores.csv", index=False)
    (res / "provenance.json").write_text(json.dumps({"config": {"rois": ROIS},
                                                     "inputs": {"subjects": {s: {"n_test_images": 50} for s in subjects}},
                                                     "versions": {"brainlike": "0.1.0"}}))
    return res


def test_write_report(tmp_path):
    synthetic_results(tmp_path)
    index = write_report(tmp_path, tmp_path / "rep")
    assert index == tmp_path / "rep" / "index.html"
    text = index.read_text()
    names = ["bh_ranking", "best_roi_distribution", "best_layer_distribution", "accuracy_violins", "subject_scatter",
             "intersubject_matrix"]
    for n in names:
        png = (tmp_path / "rep" / "figures" / f"{n}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "rep" / "figures" / f"{n}.svg").read_text().lstrip().startswith("<?xml")
        # the same PNG is embedded: the page is self-contained
        assert base64.b64encode(png).decode() in text
    assert "src='figures/" not in text and "<img alt='bh_ranking' src='data:image/png;base64," in text
    assert re.search(r"hier</th><td>0\.620", text)
    assert not list((tmp_path / "rep").rglob("*.part"))


def test_results_dir_forms_and_errors(tmp_path):
    res = synthetic_results(tmp_path, write_csv_only=True)
    r = read_results(res)  # the results folder itself, CSV only
    assert r["n_samples"] == 50 and r["decoding"] is not None and len(r["scores"]) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results tables"):
        write_report(tmp_path / "empty")
    bad = tmp_path / "bad" / "results"
    bad.mkdir(parents=True)
    pd.DataFrame({"dnn": ["a"], "score": [1.0]}).to_csv(bad / "bh_scores.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['kind'\]"):
        read_results(bad)


def test_only_scores_and_default_out(tmp_path):
    res = tmp_path / "o" / "results"
    res.mkdir(parents=True)
    pd.DataFrame({"dnn": ["a", "b"], "kind": ["decoding"] * 2, "score": [0.3, 0.1]}).to_csv(res / "bh_scores.csv", index=False)
    index = write_report(tmp_path / "o")
    assert index == tmp_path / "o" / "report" / "index.html"
    assert (tmp_path / "o" / "report" / "figures" / "bh_ranking.png").is_file()
    assert not (tmp_path / "o" / "report" / "figures" / "accuracy_violins.png").exists()


def test_best_roi_distribution_counts_match_bh(tmp_path):
    res = synthetic_results(tmp_path)
    dec = pd.read_parquet(res / "decoding_accuracy.parquet")
    arrays = F.accuracy_arrays(dec, "hier", ROIS)
    assert len(arrays) == 6 and arrays[0].shape == (5, 3 * 40)
    # independent assembly of layer 2 (index 1), ROI V3 row, subjects concatenated in order
    expect = np.concatenate([dec[(dec.dnn == "hier") & (dec.layer == "L2") & (dec.roi == "V3") & (dec.subject == s)]
                             .sort_values("unit")["accuracy"].to_numpy() for s in ("sub-01", "sub-02", "sub-03")])
    np.testing.assert_allclose(arrays[1][2], expect)
    assert bh_score(arrays, n_samples=50).score > 0.6
    fig = F.best_roi_distribution(dec, rois=ROIS, n_samples=50)
    assert "hier: BH = " in fig.axes[0].get_title()


def test_cli_report(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame({"dnn": ["a", "b"], "kind": ["average"] * 2, "score": [0.3, 0.1]}).to_csv(res / "bh_scores.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "brainlike", "report", str(tmp_path / "results"), "--out",
                           str(tmp_path / "r2")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r2" / "index.html").is_file() and "index.html" in done.stdout
    done = subprocess.run([sys.executable, "-m", "brainlike", "report", str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "results folder not found" in done.stderr
