"""One run, one results generation; damaged job results; undefined (NaN) BH scores in the report."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.pipeline import ResultsError, load_results, run_experiment
from brainlike.pipeline import run as run_mod
from brainlike.pipeline.store import CorruptResultError, check_result, load_result
from brainlike.report import write_report

from test_pipeline import make_experiment, result_files, small_config


def _run(out, feats, brains, **kw):
    return run_experiment(small_config(out, **kw), brain=brains, features={"net": feats}, progress=False)


def _tables(out) -> dict:
    r = load_results(out)
    return {k: v for k, v in r.tables.items()}


@pytest.fixture
def data(rng):
    return make_experiment(rng)


# ------------------------------------------------------------------------------ generations
def test_layout_manifest_and_reader(tmp_path, data):
    feats, brains = data
    res = _run(tmp_path / "o", *data, report=True)
    out = tmp_path / "o"
    gen = (out / "current").resolve()
    assert gen.parent == (out / "generations").resolve() and (gen / "MANIFEST.json").is_file()
    assert os.path.islink(out / "results") and (out / "results").resolve() == gen / "results"
    assert res.report == out / "report" / "index.html" and (gen / "report" / "index.html").is_file()
    man = json.loads((gen / "MANIFEST.json").read_text())
    assert man["complete"] and man["analyses"] == ["decoding", "encoding"]
    names = {"decoding": "bh_decoding", "encoding": "bh_encoding", "average": "bh_average"}  # each score saved whole
    saved = {f"results/scores/{d}/{names[k]}.{e}" for d, k in zip(res.scores["dnn"], res.scores["kind"])
             for e in ("json", "npz")}
    assert len(saved) == 6
    assert set(man["files"]) == {f"results/{t}.{e}" for t in ("decoding_accuracy", "encoding_accuracy", "bh_scores",
                                                               "data_quality") for e in ("parquet", "csv")
                                 } | {"results/provenance.json"} | saved
    r = load_results(out)
    assert r.generation == gen.name
    assert set(r.tables) == {"decoding_accuracy", "encoding_accuracy", "bh_scores", "data_quality"}
    pd.testing.assert_frame_equal(r.tables["bh_scores"], res.scores)
    # the same generation from each way of naming it
    for p in (out / "results", gen, gen / "results"):
        assert load_results(p).generation == gen.name
    assert not list((out / "generations").glob("*.incomplete"))


def test_crash_in_scoring_leaves_previous_generation_current(tmp_path, data, monkeypatch):
    out = tmp_path / "o"
    first = _run(out, *data)
    before = _tables(out)
    gen_before = (out / "current").resolve()

    def boom(*a, **k):
        raise RuntimeError("scoring failed")

    # another setting (new accuracies) and a crash after the accuracy tables are written
    monkeypatch.setattr(run_mod, "compute_scores", boom)
    with pytest.raises(RuntimeError, match="scoring failed"):
        _run(out, *data, decoding={"alpha": 50.0})
    stale = list((out / "generations").glob("*.incomplete"))
    assert len(stale) == 1 and (stale[0] / "results" / "decoding_accuracy.parquet").is_file()
    assert not (stale[0] / "MANIFEST.json").exists()
    assert (out / "current").resolve() == gen_before
    after = _tables(out)
    for k in before:
        pd.testing.assert_frame_equal(after[k], before[k])
    with pytest.raises(ResultsError, match="incomplete results generation"):
        load_results(stale[0] / "results")
    # the report shows the previous complete run
    index = write_report(out, tmp_path / "rep")
    assert first.scores["score"].map("{:.3f}".format).iloc[0] in index.read_text()
    # the next complete run replaces it; the dead run's staging folder is cleaned up
    monkeypatch.undo()
    _run(out, *data, decoding={"alpha": 50.0})
    assert not list((out / "generations").glob("*.incomplete"))
    assert not _tables(out)["decoding_accuracy"].equals(before["decoding_accuracy"])


def test_fewer_analyses_leave_no_old_table_current(tmp_path, data):
    out = tmp_path / "o"
    _run(out, *data, analyses=["decoding", "encoding"])
    assert (out / "results" / "encoding_accuracy.parquet").is_file()
    _run(out, *data, analyses=["decoding"], report=True)
    assert not (out / "results" / "encoding_accuracy.parquet").exists()
    r = load_results(out)
    assert set(r.tables) == {"decoding_accuracy", "bh_scores", "data_quality"}
    assert set(r.tables["bh_scores"]["kind"]) == {"decoding"}
    text = (out / "report" / "index.html").read_text()
    assert "best_layer_distribution" not in text and "encoding:" not in text
    # two complete generations are kept (the current one and the one before), older ones removed
    _run(out, *data, analyses=["decoding"], decoding={"alpha": 20.0})
    assert len([p for p in (out / "generations").iterdir() if (p / "MANIFEST.json").is_file()]) == 2


def test_changed_table_is_named_not_read(tmp_path, data):
    out = tmp_path / "o"
    _run(out, *data, analyses=["decoding"])
    p = (out / "results" / "bh_scores.csv").resolve()
    good = p.read_bytes()
    p.write_bytes(good.replace(b"decoding", b"encoding", 1))
    with pytest.raises(ResultsError, match=r"bh_scores\.csv: content differs"):
        load_results(out)
    p.write_bytes(good)
    assert load_results(out).tables["bh_scores"]["kind"].eq("decoding").all()
    (out / "results" / "decoding_accuracy.parquet").resolve().unlink()
    with pytest.raises(ResultsError, match=r"decoding_accuracy\.parquet: listed in .* but missing"):
        load_results(out)
    done = subprocess.run([sys.executable, "-m", "brainlike", "report", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "decoding_accuracy.parquet" in done.stderr


def test_no_complete_generation_and_earlier_layout(tmp_path, data):
    out = tmp_path / "o"
    (out / "generations" / "20260101T000000Z-abcdef.incomplete" / "results").mkdir(parents=True)
    with pytest.raises(ResultsError, match="no complete results generation yet"):
        load_results(out)
    # an output folder of an earlier layout: its results folder is moved aside, never current
    legacy = tmp_path / "l"
    (legacy / "results").mkdir(parents=True)
    pd.DataFrame({"dnn": ["old"], "kind": ["encoding"], "score": [0.9]}).to_csv(legacy / "results" / "bh_scores.csv")
    _run(legacy, *data, analyses=["decoding"])
    assert set(load_results(legacy).tables["bh_scores"]["dnn"]) == {"net"}
    assert len(list(legacy.glob("results.before-generations-*"))) == 1


# ------------------------------------------------------------------------------ damaged job results
@pytest.mark.parametrize("damage", ["truncate", "wrong_keys", "flip_byte", "empty"])
def test_damaged_job_result_is_set_aside_and_recomputed(tmp_path, data, damage, caplog):
    out = tmp_path / "o"
    _run(out, *data)
    files = result_files(out)
    scores = pd.read_csv(out / "results" / "bh_scores.csv")
    victim = sorted((out / "work").rglob("chunk-*.npz"))[5]
    raw = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "wrong_keys":
        np.savez(open(victim, "wb"), units=np.arange(3), accuracy=np.zeros(3))
    else:  # a flipped byte inside an array: the zip directory is intact, the CRC is not
        z = bytearray(raw)
        z[200] ^= 0xFF
        victim.write_bytes(bytes(z))
    with caplog.at_level(logging.WARNING, logger="brainlike"):
        again = _run(out, *data)
    assert again.summary["n_run"] == 1
    assert any(str(victim) in r.getMessage() and "moved to" in r.getMessage() for r in caplog.records)
    aside = list((out / "work" / "corrupt").rglob("chunk-*.npz.*"))
    assert len(aside) == 1 and aside[0].name.startswith(victim.name)
    assert result_files(out) == files  # recomputed bit for bit
    pd.testing.assert_frame_equal(pd.read_csv(out / "results" / "bh_scores.csv"), scores)


def test_damaged_kernel_is_recomputed_by_its_encode_job(tmp_path, data, caplog):
    out = tmp_path / "o"
    _run(out, *data)
    files = result_files(out)
    kernel = sorted((out / "work").rglob("kernels-*/*/*.npz"))[0]
    encode = sorted((out / "work").rglob("encoding-*/*/*/*/*.npz"))[0]
    z = bytearray(kernel.read_bytes())
    z[300] ^= 0xFF  # passes the cheap check (zip directory whole), fails the CRC when read
    kernel.write_bytes(bytes(z))
    encode.unlink()
    with caplog.at_level(logging.WARNING, logger="brainlike"):
        _run(out, *data)
    assert any(str(kernel) in r.getMessage() for r in caplog.records)
    assert result_files(out) == files


def test_result_checks_name_the_file(tmp_path):
    p = tmp_path / "r.npz"
    p.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CorruptResultError, match=r"r\.npz: damaged job result \(BadZipFile"):
        check_result(p, ("z",))
    with pytest.raises(CorruptResultError, match=r"r\.npz: damaged job result"):
        load_result(p, ("z",))
    np.savez(open(p, "wb"), a=np.ones(3))
    with pytest.raises(CorruptResultError, match=r"arrays \['z'\] missing; has \['a'\]"):
        check_result(p, ("z",))
    check_result(p, ("a",))


# ------------------------------------------------------------------------------ NaN scores
def test_all_nan_scores_are_reported_with_their_reason(tmp_path):
    # 3 test images: no accuracy is significant, every BH score is undefined
    feats, brains = make_experiment(np.random.default_rng(1), n_train=60, n_test=3, noise=5.0)
    res = run_experiment(small_config(tmp_path / "o", report=True, scores={"n_boot": 5, "n_perm": 5}),
                         brain=brains, features={"net": feats}, progress=False)
    s = res.scores.set_index("kind")
    assert s["score"].isna().all()
    assert "no unit is significantly decoded (p < 0.05 with 3 test images)" in s.loc["decoding", "reason"]
    assert "no voxel is significantly predicted" in s.loc["encoding", "reason"]
    assert s.loc["average", "reason"].startswith("decoding: no unit is significantly decoded")
    text = res.report.read_text()
    assert "net, decoding: BH score undefined (NaN): no unit is significantly decoded" in text
    # the CLI renders the same folder
    done = subprocess.run([sys.executable, "-m", "brainlike", "report", str(tmp_path / "o"), "--out",
                           str(tmp_path / "r")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_report_of_nan_scores_without_reason(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame({"dnn": ["a", "b", "a"], "kind": ["decoding", "decoding", "encoding"],
                  "score": [np.nan, 0.4, np.nan]}).to_csv(res / "bh_scores.csv", index=False)
    text = write_report(res, tmp_path / "r").read_text()
    assert "a, decoding: BH score undefined (NaN): undefined (no reason recorded)" in text
    # the defined score ranks first, the undefined one after it
    assert text.index("<th>b</th>") < text.index("<th>a</th>")
