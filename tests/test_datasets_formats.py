"""Format loaders, each on small files written in the exact format with the format's own library."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from brainlike.datasets import (
    NaNVoxelWarning,
    float_label_to_id,
    id_to_float_label,
    load_bdata,
    load_kay_npz,
    load_kay_stimuli_mat,
    load_kay_vim1,
    load_nsd,
)
from brainlike.datasets import nsd as nsd_module

# ---------------------------------------------------------------- BData (bdpy) ----------
ROIS = {"V1": (0, 8), "V2": (8, 16), "V3": (16, 22), "hV4": (22, 28), "HVC": (28, 40)}
LABELS = np.array([1518878.005958, 1443537.022563, 1621127.019020, 2071294.046212])


def write_bdata(path, rng, n_vox=40, datatype=False, vmap=False, nan_voxel=None):
    import bdpy

    n = 16
    x = rng.standard_normal((n, n_vox))
    if nan_voxel is not None:
        x[3, nan_voxel] = np.nan
    b = bdpy.BData()
    b.add(x, "VoxelData")
    b.add(np.repeat(np.arange(1, 5), 4)[:, None].astype(float), "Run")
    b.add(np.tile(np.arange(1, 5), 4)[:, None].astype(float), "Block")
    labels = np.tile(LABELS, 4)
    b.add(labels[:, None], "stimulus_id")
    b.add(np.tile(np.arange(1, 5), 4)[:, None].astype(float), "image_index")
    if datatype:
        b.add(np.array([1] * 8 + [2] * 4 + [3] * 4, dtype=float)[:, None], "DataType")
    if vmap:
        b.add(np.tile(np.arange(1, 5), 4)[:, None].astype(float), "stimulus_name")
        b.add_vmap("stimulus_name", {float(i + 1): float_label_to_id(v) + ".JPEG" for i, v in enumerate(LABELS)})
    for name, (lo, hi) in ROIS.items():
        m = np.zeros(n_vox)
        m[lo:hi] = 1
        b.add_metadata(f"ROI_{name}", m, f"ROI {name}", where="VoxelData")
    b.add_metadata("ROI_VC", np.ones(n_vox), "VC", where="VoxelData")
    for k, axis in enumerate(("voxel_x", "voxel_y", "voxel_z")):
        b.add_metadata(axis, np.arange(n_vox) + 100 * k, axis, where="VoxelData")
    b.save(str(path))
    return b, x, labels


def test_float_labels_round_trip():
    assert float_label_to_id(1518878.005958) == "n01518878_5958"
    assert float_label_to_id(2071294.046212) == "n02071294_46212"
    for v in LABELS:
        assert id_to_float_label(float_label_to_id(v)) == v


def test_bdata_reads_rois_labels_runs_like_bdpy(tmp_path, rng):
    path = tmp_path / "sub-01_perceptionNaturalImageTraining_VC_v2.h5"
    b, x, labels = write_bdata(path, rng)
    d = load_bdata(path, split="train", subject="sub-01")
    assert d.responses.shape == (16, 40) and d.split[0] == "train"
    assert set(d.roi_names) == {"V1", "V2", "V3", "hV4", "HVC", "VC"}
    assert d.stimulus_ids[0] == "n01518878_5958" and d.stimulus_ids[2] == "n01621127_19020"
    np.testing.assert_array_equal(d.sample_info["run"], np.repeat(np.arange(1, 5), 4))
    np.testing.assert_array_equal(d.repetition, np.repeat(np.arange(4), 4))
    np.testing.assert_array_equal(d.voxel_info["voxel_y"], np.arange(40) + 100)
    # reference: bdpy's own reader
    import bdpy

    ref = bdpy.BData(str(path))
    for roi in ("V1", "hV4", "HVC"):
        sub = load_bdata(path, roi=roi)
        np.testing.assert_allclose(sub.responses, ref.select(f"ROI_{roi} = 1"), rtol=1e-6)
    both = load_bdata(path, roi=["V1", "V3"])
    np.testing.assert_allclose(both.responses, np.hstack([x[:, 0:8], x[:, 16:22]]), rtol=1e-6)
    assert both.rois["V1"].sum() == 8 and both.rois["VC"].all()
    with pytest.raises(ValueError, match="roi must be among"):
        load_bdata(path, roi="FFA")
    with pytest.raises(ValueError, match="label_key must be one of the metadata keys"):
        load_bdata(path, label_key="nope")
    idx = load_bdata(path, label_key="image_index")
    assert idx.stimulus_ids[:4].tolist() == ["1", "2", "3", "4"]


def test_bdata_datatype_splits_vmap_and_nan(tmp_path, rng):
    path = tmp_path / "Subject1.h5"
    write_bdata(path, rng, datatype=True, vmap=True, nan_voxel=5)
    with pytest.warns(NaNVoxelWarning, match=r"1 of 40 voxel"):
        d = load_bdata(path)
    assert d.splits == ["train", "test", "imagery"]
    assert d.stimulus_ids[0] == "n01518878_5958.JPEG"  # the vmap label wins
    with pytest.warns(NaNVoxelWarning, match="dropped"):
        clean = load_bdata(path, nan="drop")
    assert clean.n_voxels == 39 and clean.rois["V1"].sum() == 7


def test_truncated_hdf5_is_a_clear_error(tmp_path, rng):
    path = tmp_path / "full.h5"
    write_bdata(path, rng)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.h5.*truncated, corrupt or not HDF5"):
        load_bdata(cut)
    with pytest.raises(FileNotFoundError, match="existing HDF5 file"):
        load_bdata(tmp_path / "absent.h5")


# ---------------------------------------------------------------- Kay vim-1 --------------
def test_kay_vim1_mat73_and_stimuli(tmp_path, rng):
    import hdf5storage

    n_vox, n_trn, n_val = 25, 30, 6
    codes = rng.integers(0, 8, n_vox)
    trn = rng.standard_normal((n_vox, n_trn))  # MATLAB orientation: voxels x images
    val = rng.standard_normal((n_vox, n_val))
    trn[3, :] = np.nan  # vim-1 has NaN voxels
    mat = {"dataTrnS1": trn, "dataValS1": val, "roiS1": codes[:, None].astype(np.uint8),
           "voxIdxS1": (np.arange(n_vox) * 7 + 1)[:, None].astype(np.float64),
           "dataTrnS2": trn[:5], "dataValS2": val[:5], "roiS2": codes[:5, None].astype(np.uint8)}
    path = tmp_path / "EstimatedResponses.mat"
    hdf5storage.savemat(str(path), mat, format="7.3", matlab_compatible=True)
    with pytest.warns(NaNVoxelWarning, match="1 of 25"):
        d = load_kay_vim1(path, subject=1)
    assert d.responses.shape == (n_trn + n_val, n_vox)
    np.testing.assert_allclose(d.responses, np.vstack([trn.T, val.T]).astype(np.float32))
    assert d.stimulus_ids[0] == "0" and d.stimulus_ids[n_trn] == "test0"
    for k, name in enumerate(("V1", "V2", "V3", "V3A", "V3B", "V4", "LatOcc"), start=1):
        np.testing.assert_array_equal(d.rois[name], codes == k)
    v4 = load_kay_vim1(path, subject=1, roi=["V3A", "V4"], nan="ignore")
    sel = np.isin(codes, [4, 6])
    np.testing.assert_allclose(v4.responses[:n_trn], trn[sel].T.astype(np.float32))
    np.testing.assert_array_equal(v4.voxel_info["vox_idx"], (np.arange(n_vox) * 7 + 1)[sel])
    with pytest.raises(ValueError, match="subject must be 1 or 2"):
        load_kay_vim1(path, subject=3)
    # Stimuli.mat (v7.3)
    stim_trn = rng.random((n_trn, 8, 8))
    stim_val = rng.random((n_val, 8, 8))
    spath = tmp_path / "Stimuli.mat"
    hdf5storage.savemat(str(spath), {"stimTrn": stim_trn, "stimVal": stim_val}, format="7.3", matlab_compatible=True)
    images = load_kay_stimuli_mat(spath)
    assert len(images) == n_trn + n_val and images.ids[n_trn] == "test0"
    arr = images.array()[:, :, :, 0].astype(float)
    ref = np.concatenate([stim_trn, stim_val])
    assert np.corrcoef(arr.ravel(), ref.ravel())[0, 1] > 0.999  # same images, same orientation


def test_kay_npz(tmp_path, rng):
    n_vox = 12
    roi = rng.integers(0, 8, n_vox)
    names = np.array(["Other", "V1", "V2", "V3", "V3A", "V3B", "V4", "LatOcc"])
    path = tmp_path / "kay_images.npz"
    np.savez(path, stimuli=rng.random((10, 8, 8)), stimuli_test=rng.random((3, 8, 8)),
             responses=rng.standard_normal((10, n_vox)), responses_test=rng.standard_normal((3, n_vox)),
             roi=roi, roi_names=names)
    d = load_kay_npz(path)
    assert d.responses.shape == (13, n_vox) and "Other" not in d.rois
    np.testing.assert_array_equal(d.rois["V1"], roi == 1)
    assert d.stimuli.ids == list(d.stimulus_ids)
    v1 = load_kay_npz(path, roi="V1", stimuli=False)
    assert v1.n_voxels == int((roi == 1).sum())


# ---------------------------------------------------------------- NSD --------------------
SHAPE = (16, 18, 14)  # X, Y, Z
T = 750


def write_nsd(root, rng, n_sessions=2, chunks=(T, 4, 4, 4)):
    import nibabel as nib
    from scipy.io import savemat

    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True)
    n_trials = n_sessions * T
    subjectim = rng.integers(0, 73000, (8, 10000)) + 1  # 1-based NSD ids
    subjectim[:, :1000] = rng.permutation(73000)[:1000] + 1  # as in NSD, the first 1000 are shared
    shared = subjectim[0, :1000]
    masterordering = rng.integers(1, 10001, 30000)
    masterordering[:50] = np.arange(1, 51)  # some shared trials early on
    savemat(exp / "nsd_expdesign.mat", {"masterordering": masterordering[None, :].astype(np.float64),
                                          "subjectim": subjectim.astype(np.float64),
                                          "sharedix": shared[None, :].astype(np.float64)})
    roi_dir = root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    vis = np.zeros(SHAPE, dtype=np.int16) - 1
    vis[2:5, 3:6, 1:4] = 1  # V1v
    vis[5:7, 3:6, 1:4] = 2  # V1d
    vis[12:15, 14:16, 10:13] = 7  # hV4
    nib.save(nib.Nifti1Image(vis, np.eye(4)), roi_dir / "prf-visualrois.nii.gz")
    gen = (vis > 0).astype(np.int16)
    nib.save(nib.Nifti1Image(gen, np.eye(4)), roi_dir / "nsdgeneral.nii.gz")
    bdir = root / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    bdir.mkdir(parents=True)
    vols = []
    for k in range(1, n_sessions + 1):
        v = rng.integers(-3000, 3000, (*SHAPE, T)).astype(np.int16)  # X, Y, Z, trials
        vols.append(v)
        with h5py.File(bdir / f"betas_session{k:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=np.transpose(v, (3, 2, 1, 0)), chunks=chunks)  # (T, Z, Y, X)
        nib.save(nib.Nifti1Image(v, np.eye(4)), bdir / f"betas_session{k:02d}.nii.gz")
    nc = rng.random(SHAPE).astype(np.float32)
    nib.save(nib.Nifti1Image(nc, np.eye(4)), bdir / "ncsnr.nii.gz")
    images = subjectim[0, masterordering[:n_trials] - 1] - 1
    return {"vis": vis, "vols": vols, "ncsnr": nc, "images": images, "shared": shared - 1}


@pytest.fixture(scope="module")
def nsd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    truth = write_nsd(root, np.random.default_rng(1))
    return root, truth


@pytest.mark.parametrize("fmt", ["hdf5", "nifti"])
def test_nsd_single_trials_roi_split(nsd_root, fmt):
    root, truth = nsd_root
    d = load_nsd(root, subject=1, sessions=(1, 2), roi=["V1", "hV4"], betas_format=fmt)
    mask = np.isin(truth["vis"], [1, 2, 7])
    coords = np.argwhere(mask)
    ref = np.concatenate([v[mask].T for v in truth["vols"]]).astype(np.float32) / 300
    np.testing.assert_allclose(d.responses, ref, rtol=1e-6)
    np.testing.assert_array_equal(d.voxel_info["ijk"], coords)
    np.testing.assert_allclose(d.voxel_info["ncsnr"], truth["ncsnr"][mask])
    assert d.stimulus_ids.tolist() == [str(i) for i in truth["images"]]
    is_shared = np.isin(truth["images"], truth["shared"])
    assert is_shared.sum() >= 50
    np.testing.assert_array_equal(d.split == "test", is_shared)
    np.testing.assert_array_equal(d.rois["V1"], np.isin(truth["vis"][mask], [1, 2]))
    np.testing.assert_array_equal(d.sample_info["session"], np.repeat([1, 2], T))


def test_nsd_reading_one_roi_reads_a_small_part_of_the_file(nsd_root, monkeypatch):
    root, truth = nsd_root
    counted = {"bytes": 0}

    class Counting(io.RawIOBase):
        def __init__(self, path):
            self.f = open(path, "rb")

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, *a):
            return self.f.seek(*a)

        def tell(self):
            return self.f.tell()

        def readinto(self, b):
            n = self.f.readinto(b)
            counted["bytes"] += n
            return n

        def close(self):
            self.f.close()
            super().close()

    handles = []

    def open_counting(path):
        fh = Counting(path)
        handles.append(fh)
        return h5py.File(fh, "r")

    monkeypatch.setattr(nsd_module, "_open_h5", open_counting)
    d = load_nsd(root, sessions=(1,), roi="V1")
    for h in handles:
        h.close()
    size = (root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5").stat().st_size
    assert d.n_voxels == 3 * 3 * 3 + 2 * 3 * 3
    print(f"read {counted['bytes']} of {size} bytes ({counted['bytes'] / size:.1%})")
    assert 0 < counted["bytes"] < 0.15 * size, (counted["bytes"], size)


def test_nsd_bad_inputs(nsd_root, tmp_path):
    root, _ = nsd_root
    with pytest.raises(ValueError, match="roi must be among"):
        load_nsd(root, roi="FFA")
    with pytest.raises(ValueError, match="betas_format must be"):
        load_nsd(root, betas_format="mgz")
    # a mask whose shape does not match the functional data
    import shutil

    import nibabel as nib

    bad = tmp_path / "nsd_bad"
    shutil.copytree(root, bad)
    roi_file = bad / "nsddata/ppdata/subj01/func1pt8mm/roi/prf-visualrois.nii.gz"
    vis = np.zeros((10, 10, 10), dtype=np.int16)
    vis[1:3, 1:3, 1:3] = 1
    nib.save(nib.Nifti1Image(vis, np.eye(4)), roi_file)
    with pytest.raises(ValueError, match=r"mask shape \(10, 10, 10\).*does not match"):
        load_nsd(bad, roi="V1")
    with pytest.raises(ValueError, match=r"mask shape \(10, 10, 10\).*does not match"):
        load_nsd(bad, roi="V1", betas_format="nifti")


# ---------------------------------------------------------------- through the registry ---
def test_registry_loads_shen_and_nsd_from_a_mirror(tmp_path, rng, nsd_root, monkeypatch):
    import shutil

    from brainlike.datasets import load

    mirror = tmp_path / "mirror"
    (mirror / "shen2019_deeprecon").mkdir(parents=True)
    write_bdata(mirror / "shen2019_deeprecon/sub-01_perceptionNaturalImageTraining_VC_v2.h5", rng)
    write_bdata(mirror / "shen2019_deeprecon/sub-01_perceptionNaturalImageTest_VC_v2.h5", rng)
    root, truth = nsd_root
    shutil.copytree(root, mirror / "nsd", ignore=shutil.ignore_patterns("betas_session02*", "*.nii.gz"))
    for rel in ("nsddata/ppdata/subj01/func1pt8mm/roi", "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"):
        for f in (root / rel).glob("*.nii.gz"):
            if "betas_session" not in f.name:
                shutil.copy(f, mirror / "nsd" / rel / f.name)
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    d = load("shen2019_deeprecon", subject="sub-01", roi="V1")
    assert d.splits == ["train", "test"] and d.n_samples == 32 and d.n_voxels == 8
    assert set(d.provenance["parts"][0]["files"]) == {"sub-01_perceptionNaturalImageTraining_VC_v2.h5"}
    v1 = load("nsd", subject=1, sessions=(1,), roi="V1")
    assert v1.n_samples == T and v1.n_voxels == int(np.isin(truth["vis"], [1, 2]).sum())
    assert "ncsnr" in v1.voxel_info


def test_nsd_stimuli_from_imgbrick(nsd_root, tmp_path):
    import shutil

    root, truth = nsd_root
    local = tmp_path / "nsd"
    shutil.copytree(root, local, ignore=shutil.ignore_patterns("betas_session02*", "*session01.nii.gz"))
    sdir = local / "nsddata_stimuli" / "stimuli" / "nsd"
    sdir.mkdir(parents=True)
    first = int(truth["images"][0])
    with h5py.File(sdir / "nsd_stimuli.hdf5", "w") as f:
        brick = f.create_dataset("imgBrick", shape=(73000, 4, 4, 3), dtype=np.uint8, chunks=(1, 4, 4, 3), fillvalue=0)
        brick[first] = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    d = load_nsd(local, sessions=(1,), roi="hV4", stimuli=True)
    d.check_stimuli()
    assert len(d.stimuli) == len(set(d.stimulus_ids.tolist()))
    np.testing.assert_array_equal(d.stimuli.array([0])[0], np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
