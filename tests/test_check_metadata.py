"""``--check`` reads subjects, ROIs and stimulus ids from the data's metadata, never the voxels.

Each format's metadata reader (``brainlike.datasets.metadata``) gives what its loader gives minus
the responses; ``--check`` passes on a file whose voxel matrix cannot be read, and still fails where
the run would (an ROI or a subject missing, a stimulus id without a feature file).
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from brainlike.cli import main
from brainlike.datasets import BrainData

ROIS = {"V1": np.r_[np.ones(4), np.zeros(6)].astype(bool), "V2": np.r_[np.zeros(4), np.ones(6)].astype(bool)}


def _same(meta, data):
    assert list(meta.stimulus_ids) == list(data.stimulus_ids)
    assert list(meta.split) == list(data.split)
    assert meta.n_voxels == data.n_voxels and sorted(meta.rois) == sorted(data.rois)
    for r in data.rois:
        np.testing.assert_array_equal(meta.rois[r], data.rois[r])


def _brain(n_train=12, n_test=4, reps=2, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"img{i}" for i in range(n_train)] + [f"test{i}" for i in range(n_test)] * reps
    split = ["train"] * n_train + ["test"] * (n_test * reps)
    return BrainData(rng.standard_normal((len(ids), 10)), ids, rois=ROIS, split=split)


def _npz_without_voxels(path, brain):
    """An .npz whose ``responses`` keeps its header (shape) but whose values are cut off: unreadable."""
    from brainlike.datasets.local import save_npz_subject

    full = path.with_suffix(".full.npz")
    save_npz_subject(full, brain)
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            raw = src.read(item.filename)
            dst.writestr(item.filename, raw[:128] if item.filename == "responses.npy" else raw)
    full.unlink()
    return path


def _feature_tree(root, ids, layers=("L1", "L2")):
    for layer in layers:
        (root / layer).mkdir(parents=True, exist_ok=True)
        for i in ids:
            (root / layer / f"{i}.mat").write_bytes(b"")  # --check looks for the file, the run reads it
    return root


def _config(tmp_path, rois=("V1", "V2"), subjects=("s1",)):
    cfg = {"name": "meta", "out": str(tmp_path / "out"), "subjects": list(subjects), "rois": list(rois),
           "dataset": {"format": "npz", "path": str(tmp_path / "{subject}.npz")},
           "dnns": {"net": {"features": str(tmp_path / "feat"), "layers": ["L1", "L2"]}},
           "analyses": ["decoding"], "execution": {"scheduler": "synchronous"}, "report": False}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    return path


def test_npz_check_reads_no_voxels(tmp_path, capsys):
    brain = _brain()
    _npz_without_voxels(tmp_path / "s1.npz", brain)
    _feature_tree(tmp_path / "feat", dict.fromkeys(brain.stimulus_ids))
    from brainlike.datasets.local import load_local

    with pytest.raises(Exception):  # the voxels really are unreadable: the run's loader fails on them
        load_local({"format": "npz", "path": str(tmp_path / "{subject}.npz")}, "s1")
    assert main(["run", str(_config(tmp_path)), "--check"]) == 0
    out = capsys.readouterr().out
    assert "s1: 12 training samples, 4 test images; voxels V1 4, V2 6" in out
    # where the run would fail, --check fails, naming what is at fault
    assert main(["run", str(_config(tmp_path, rois=("V1", "V9"))), "--check"]) == 2
    assert "V9" in capsys.readouterr().err
    assert main(["run", str(_config(tmp_path, subjects=("s1", "s2"))), "--check"]) == 2
    assert "s2" in capsys.readouterr().err
    (tmp_path / "feat" / "L2" / "test3.mat").unlink()
    assert main(["run", str(_config(tmp_path)), "--check"]) == 2
    assert "test3" in capsys.readouterr().err


def test_bdata_check_reads_no_voxel_column(tmp_path, monkeypatch, capsys):
    """The BData metadata path reads /metadata and the label columns; the voxel reader is never called."""
    from brainlike.datasets import bdata
    from brainlike.demo.layouts import write_bdata

    brain = _brain()
    labels = {i: k + 1.0 for k, i in enumerate(dict.fromkeys(brain.stimulus_ids))}
    write_bdata(tmp_path / "s1.h5", [("VoxelData", brain.responses),
                                     ("DataType", np.where(brain.split == "train", 1, 2)),
                                     ("stimulus_id", np.array([labels[i] for i in brain.stimulus_ids]))], ROIS)
    ref = bdata.load_bdata(tmp_path / "s1.h5")

    def no_voxels(*a, **k):
        raise AssertionError("the voxel columns were read")

    monkeypatch.setattr(bdata, "_read_columns", no_voxels)
    _same(bdata.bdata_meta(tmp_path / "s1.h5"), ref)
    _feature_tree(tmp_path / "feat", dict.fromkeys(ref.stimulus_ids))
    cfg = json.loads(_config(tmp_path).read_text())
    cfg["dataset"] = {"format": "bdata", "path": str(tmp_path / "{subject}.h5")}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["run", str(tmp_path / "c.json"), "--check"]) == 0
    assert "voxels V1 4, V2 6" in capsys.readouterr().out
    cfg["rois"] = ["V1", "HVC"]
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["run", str(tmp_path / "c.json"), "--check"]) == 2
    assert "HVC" in capsys.readouterr().err


def test_bhscore_bids_nsd_metadata_equal_the_loaders(tmp_path, monkeypatch):
    """BHscore's data folder, BIDS and NSD: the metadata reader gives the loader's ids, splits and ROIs."""
    from brainlike.datasets import bdata, load_horikawa_bids, load_nsd
    from brainlike.datasets.bhscore_data import bhscore_fmri_meta, load_bhscore_fmri
    from brainlike.datasets.horikawa import horikawa_bids_meta
    from brainlike.datasets.nsd import nsd_meta
    from brainlike.demo.horikawa import write_horikawa_bids
    from brainlike.demo.layouts import BH_DIR, bhscore_layout
    from brainlike.demo.nsd import write_nsd

    bh = bhscore_layout(tmp_path / "BHscore", subjects=["sub-01"], n_train=12, n_test=4, voxels_per_roi=4)
    ref = load_bhscore_fmri(bh["data"], "sub-01", [BH_DIR], rois=["V1", "HVC"])
    write_horikawa_bids(tmp_path / "bids", n_train=20, n_test=5, test_repeats=4, blocks_per_run=10, features=False)
    ref_bids = load_horikawa_bids(tmp_path / "bids", subject="sub-01", roi=["V1", "HVC"])
    write_nsd(tmp_path / "nsd", subjects=(1,), n_shared=12, n_own=30, image_size=32)
    ref_nsd = load_nsd(tmp_path / "nsd", subject=1, roi=["V1", "V2"])
    monkeypatch.setattr(bdata, "_read_columns", lambda *a, **k: pytest.fail("voxels read"))
    _same(bhscore_fmri_meta(bh["data"], "sub-01", [BH_DIR], rois=["V1", "HVC"]), ref)
    _same(horikawa_bids_meta(tmp_path / "bids", subject="sub-01", roi=["V1", "HVC"]), ref_bids)
    _same(nsd_meta(tmp_path / "nsd", subject=1, roi=["V1", "V2"]), ref_nsd)
    with pytest.raises(ValueError, match="V9"):
        horikawa_bids_meta(tmp_path / "bids", subject="sub-01", roi=["V9"])
