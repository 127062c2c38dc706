"""Feature extraction: correctness vs a plain forward pass, the content-keyed store, resume after a kill,
disk-full handling, lazy reading, BHscore layout and the CLI."""

from __future__ import annotations

import errno
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from brainlike import features, models
from brainlike.features import _extract, _store
from brainlike.features import extract
from brainlike.stimuli import ImageSet

REPO = Path(__file__).resolve().parents[1]

NET_SRC = '''
import time
import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """Small CNN with an in-place ReLU, a residual add and a linear head."""

    def __init__(self, delay=0.0):
        super().__init__()
        self.delay = delay
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(6 * 16, 5)

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        a = self.relu1(self.conv1(x))
        b = self.conv2(a) + a
        return self.fc(torch.flatten(self.pool(b), 1))


def make(delay=0.0):
    torch.manual_seed(0)
    return TinyNet(delay)
'''
_ns: dict = {}
exec(compile(NET_SRC, "tinynet", "exec"), _ns)
make_net = _ns["make"]


def tiny_model(delay=0.0):
    return models.wrap(make_net(delay), input_size=32, name="tiny")


@pytest.fixture
def images(rng):
    return ImageSet.from_array(rng.integers(0, 256, size=(16, 24, 24, 3), dtype=np.uint8), name="rand16")


def reference(model, images):
    """Independent forward pass computing each layer by hand."""
    net = model.module
    with torch.no_grad():
        x = model.preprocess(images.array())
        c1 = net.conv1(x)
        r1 = torch.relu(c1)
        add = net.conv2(r1) + r1
        out = net.fc(torch.flatten(net.pool(add), 1))
    return {"conv1": c1.numpy(), "relu1": r1.numpy(), "conv2": net.conv2(r1).detach().numpy(), "fc": out.numpy()}


def count_forwards(model):
    models.layers(model)  # the one-off tracing pass happens before counting
    calls = []
    model.module.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("threaded", [False, True], ids=["inline-writer", "writer-thread"])
def test_extract_matches_plain_forward_in_one_pass(images, tmp_path, monkeypatch, threaded):
    monkeypatch.setattr(_extract, "WRITER_THREAD", threaded)
    m = tiny_model()
    calls = count_forwards(m)
    fs = extract(m, images, ["conv1", "relu1", "fc", "conv2"], store=tmp_path / "s", batch_size=5, progress=False)
    assert len(calls) == 4  # ceil(16 / 5) batches, one forward pass each for all layers
    ref = reference(m, images)
    assert list(fs) == ["conv1", "relu1", "fc", "conv2"] and fs.ids == images.ids
    for name in fs:
        lf = fs[name]
        np.testing.assert_allclose(np.asarray(lf), ref[name].reshape(16, -1), rtol=1e-5, atol=1e-6)
        assert lf.dtype == np.float32 and lf.ids == images.ids
    # the conv output is copied before the in-place ReLU overwrites it
    assert (np.asarray(fs["conv1"]) < 0).any() and (np.asarray(fs["relu1"]) >= 0).all()
    assert fs["conv1"].unit_shape == (6, 16, 16) and fs["fc"].unit_shape == (5,)
    np.testing.assert_allclose(fs["conv2"].maps([2, 0]), ref["conv2"][[2, 0]], rtol=1e-5, atol=1e-6)


def test_forward_stops_after_last_requested_layer(images):
    m = tiny_model()
    models.layers(m)
    fc_calls = []
    m.module.fc.register_forward_hook(lambda *a: fc_calls.append(1))
    extract(m, images, ["relu1"], batch_size=8, progress=False)
    assert fc_calls == []


def test_same_request_is_read_back_changed_one_is_refused(images, tmp_path, rng):
    m = tiny_model()
    store = tmp_path / "s"
    first = np.asarray(extract(m, images, ["fc"], store=store, batch_size=4, progress=False)["fc"])
    calls = count_forwards(m)
    again = extract(m, images, ["fc"], store=store, batch_size=8, progress=False)
    assert calls == [] and np.array_equal(np.asarray(again["fc"]), first)
    with pytest.raises(ValueError, match="written for another request"):
        extract(m, images, ["conv1"], store=store, progress=False)  # other layers
    arr = images.array().copy()
    arr[3, 0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="another request"):
        extract(m, ImageSet.from_array(arr, ids=images.ids), ["fc"], store=store, progress=False)  # other pixels
    with torch.no_grad():
        m.module.fc.bias[0] += 1.0
    with pytest.raises(ValueError, match="another request"):
        extract(m, images, ["fc"], store=store, progress=False)  # other weights
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="neither"):
        extract(m, images, ["fc"], store=tmp_path / "junk", progress=False)


def test_lazy_reading_of_unit_chunks(images, tmp_path):
    m = tiny_model()
    lf = extract(m, images, ["conv1"], store=tmp_path / "s", batch_size=4, progress=False)["conv1"]
    full = np.asarray(lf)
    np.testing.assert_array_equal(lf.read(slice(10, 30)), full[:, 10:30])
    idx = np.array([1535, 0, 7, 7])
    np.testing.assert_array_equal(lf.read(idx), full[:, idx])
    mask = np.zeros(lf.n_units, bool)
    mask[[3, 99]] = True
    np.testing.assert_array_equal(lf.read(mask), full[:, [3, 99]])
    np.testing.assert_array_equal(lf.read([2, 5], stimuli=[4, 1]), full[[4, 1]][:, [2, 5]])
    blocks = list(lf.iter_units(500))
    assert [b[0].start for b in blocks] == [0, 500, 1000, 1500]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks], axis=1), full)
    assert lf.maps().shape == (16, 6, 16, 16)
    with pytest.raises(ValueError, match="units must index"):
        lf.read([lf.n_units])
    reopened = features.FeatureSet.open(tmp_path / "s")
    np.testing.assert_array_equal(np.asarray(reopened["conv1"]), full)


def test_temporary_store_is_removed_with_the_result(images):
    fs = extract(tiny_model(), images, ["fc"], progress=False)
    path = Path(fs.path)
    assert path.is_dir()
    lf = fs["fc"]
    del fs
    gc.collect()
    assert path.is_dir()  # still readable through the layer
    _ = np.asarray(lf)
    del lf
    gc.collect()
    assert not path.exists()


def test_float64_and_bad_arguments(images, tmp_path):
    m = tiny_model()
    fs = extract(m, images, ["fc"], dtype="float64", progress=False)
    assert fs["fc"].dtype == np.float64
    with pytest.raises(ValueError, match="batch_size"):
        extract(m, images, ["fc"], batch_size=0)
    with pytest.raises(ValueError, match="unknown layer 'fc9'.*conv1"):
        extract(m, images, ["fc9"])
    with pytest.raises(ValueError, match="repeat"):
        extract(m, images, ["fc", "fc"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda.*is_available"):
            extract(m, images, ["fc"], device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(images):
    m = tiny_model()
    cpu = np.asarray(extract(m, images, ["fc"], progress=False)["fc"])
    gpu = np.asarray(extract(m, images, ["fc"], device="cuda", progress=False)["fc"])
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_progress_bar_is_shown(images, capsys):
    extract(tiny_model(), images, ["fc"], batch_size=4, progress=True)
    assert "extract tiny" in capsys.readouterr().err


# ----------------------------------------------------------------------------- interruption
def _script(tmp_path, store, delay, body=""):
    code = textwrap.dedent(
        f"""
        import sys, os
        import numpy as np
        sys.path.insert(0, {str(REPO / 'src')!r})
        ns = {{}}
        exec(compile({NET_SRC!r}, "tinynet", "exec"), ns)
        from brainlike import models
        from brainlike.features import _extract, _store, extract
        from brainlike.stimuli import ImageSet
        images = ImageSet.from_array(np.load({str(tmp_path / 'imgs.npy')!r}), name="rand16")
        model = models.wrap(ns["make"]({delay}), input_size=32, name="tiny")
        """
    ) + textwrap.dedent(body) + f"\nextract(model, images, ['relu1', 'fc'], store={str(store)!r}, batch_size=2, progress=False)\n"
    path = tmp_path / "run.py"
    path.write_text(code)
    return path


def test_killed_run_resumes_without_recomputing_finished_batches(images, tmp_path):
    np.save(tmp_path / "imgs.npy", images.array())
    store = tmp_path / "store"
    script = _script(tmp_path, store, delay=0.15)
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and len(_store._done_batches(store)) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _store._done_batches(store)
    assert 3 <= len(done) < 8, "the kill must land mid-run"
    with pytest.raises(ValueError, match="incomplete"):
        features.FeatureSet.open(store)
    m = tiny_model()
    calls = count_forwards(m)
    fs = extract(m, images, ["relu1", "fc"], store=store, batch_size=2, progress=False)
    assert len(calls) == 8 - len(done)
    fresh = extract(tiny_model(), images, ["relu1", "fc"], batch_size=16, progress=False)
    for name in ("relu1", "fc"):
        np.testing.assert_allclose(np.asarray(fs[name]), np.asarray(fresh[name]), rtol=1e-5, atol=1e-6)


def test_batch_written_but_not_recorded_is_recomputed(images, tmp_path):
    """Killed after a batch's data reached the store but before its completion record."""
    np.save(tmp_path / "imgs.npy", images.array())
    store = tmp_path / "store"
    body = """
    real = _extract._write_marker
    def marker(path, batch, info):
        if batch == 2:
            os._exit(9)  # data of batch 2 is on disk, its record is not
        real(path, batch, info)
    _extract._write_marker = marker
    """
    script = _script(tmp_path, store, delay=0.0, body=body)
    assert subprocess.run([sys.executable, str(script)]).returncode == 9
    assert _store._done_batches(store) == {0, 1}
    assert (store / "L0" / "c" / "2").is_dir()  # batch 2's rows exist but do not count
    m = tiny_model()
    calls = count_forwards(m)
    fs = extract(m, images, ["relu1", "fc"], store=store, batch_size=2, progress=False)
    assert len(calls) == 6
    ref = reference(m, images)
    np.testing.assert_allclose(np.asarray(fs["fc"]), ref["fc"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threaded", [False, True], ids=["inline-writer", "writer-thread"])
def test_disk_full_keeps_nothing_half_written(images, tmp_path, monkeypatch, threaded):
    monkeypatch.setattr(_extract, "WRITER_THREAD", threaded)
    m = tiny_model()
    real = _extract._write_layer
    seen = []

    def full_at_batch_2(chunks, codec, array, batch, blocks):
        if batch == 2:
            seen.append(array)
            if len(seen) == 2:  # the first layer of batch 2 landed, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
        real(chunks, codec, array, batch, blocks)

    monkeypatch.setattr(_extract, "_write_layer", full_at_batch_2)
    store = tmp_path / "s"
    with pytest.raises(OSError, match="no space left on device.*unfinished batch was removed") as info:
        extract(m, images, ["relu1", "fc"], store=store, batch_size=2, progress=False)
    assert info.value.errno == errno.ENOSPC
    assert _store._done_batches(store) == {0, 1}
    assert not (store / "L0" / "c" / "2").exists() and not (store / "L1" / "c" / "2").exists()
    assert seen == ["L0", "L1"]
    monkeypatch.setattr(_extract, "_write_layer", real)
    fs = extract(m, images, ["relu1", "fc"], store=store, batch_size=2, progress=False)
    np.testing.assert_allclose(np.asarray(fs["fc"]), reference(m, images)["fc"], rtol=1e-5, atol=1e-6)


def test_disk_full_on_first_batch_removes_the_store(images, tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_extract, "_write_layer", full)
    store = tmp_path / "s"
    with pytest.raises(OSError, match="nothing was kept"):
        extract(tiny_model(), images, ["fc"], store=store, batch_size=4, progress=False)
    assert not store.exists()


def test_corrupt_image_fails_before_any_work(tmp_path, rng):
    d = tmp_path / "imgs"
    d.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(d / f"i{i}.png")
    (d / "i3.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="i3.png"):
        extract(tiny_model(), ImageSet.from_folder(d), ["fc"], store=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


# ----------------------------------------------------------------------------- BHscore layout
def test_bhscore_export_import_roundtrip_and_bdpy_reader(images, tmp_path):
    bdpy_features = pytest.importorskip("bdpy.dataform").Features
    fs = extract(tiny_model(), images, ["conv1", "fc"], progress=False)
    out = features.export_bhscore(fs, tmp_path / "features", "rand16", "pytorch", "tiny", rows_per_read=5)
    assert out == tmp_path / "features" / "rand16" / "pytorch" / "tiny"
    from scipy.io import loadmat

    one = loadmat(out / "fc" / f"{images.ids[3]}.mat")["feat"]
    assert one.shape == (1, 5) and one.dtype == np.float32
    back = features.import_bhscore(tmp_path / "features", "rand16", "pytorch", "tiny")
    assert back.ids == images.ids  # natural order: 0, 1, ..., 10, ...
    for name in ("conv1", "fc"):
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(fs[name]))
    ref = bdpy_features(str(out))  # independent reader (BHscore's own library)
    lab = [str(x) for x in ref.labels]
    order = [lab.index(i) for i in images.ids]
    np.testing.assert_array_equal(ref.get("fc")[order], np.asarray(fs["fc"]))


def test_bhscore_import_of_caffe_style_v73_blobs(tmp_path, rng):
    """BHscore's Caffe script saves the whole blob (1, C, H, W) as MATLAB v7.3 through hdf5storage."""
    import hdf5storage

    d = tmp_path / "net" / "conv1"
    d.mkdir(parents=True)
    blobs = {f"n{i}": rng.standard_normal((1, 2, 3, 4)).astype(np.float32) for i in (1, 2, 10)}
    for k, v in blobs.items():
        hdf5storage.savemat(str(d / f"{k}.mat"), {"feat": v}, format="7.3", oned_as="column",
                            store_python_metadata=True)
    fs = features.import_bhscore(tmp_path / "net")
    lf = fs["conv1"]
    assert lf.ids == ["n1", "n2", "n10"] and lf.unit_shape == (2, 3, 4)
    np.testing.assert_array_equal(lf.maps(), np.concatenate([blobs[k] for k in lf.ids]))
    (d / "n11.mat").write_bytes(b"x")
    with pytest.raises(ValueError, match="n11.mat"):
        features.import_bhscore(tmp_path / "net")
    with pytest.raises(ValueError, match="not found"):
        features.import_bhscore(tmp_path / "net", layers=["conv9"])


# ----------------------------------------------------------------------------- CLI
def test_cli_extract_efficientnet_blocks(tmp_path, rng):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in (1, 2, 10):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(d / f"img{i}.jpg")
    exe = Path(sys.executable).parent / "brainlike"
    cmd = [str(exe), "extract", "--model", "efficientnet_lite0", "--images", str(d), "--layers", "block3", "block7",
           "--out", str(tmp_path / "out"), "--no-progress", "--export-bhscore", str(tmp_path / "bh")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "block7" in done.stdout and "(80, 14, 14)" in done.stdout
    fs = features.FeatureSet.open(tmp_path / "out")
    assert fs.ids == ["img1", "img2", "img10"] and fs["block3"].unit_shape == (40, 28, 28)
    m = models.load("efficientnet_lite0")
    net = m.module
    with torch.no_grad():  # independent forward: stem (conv, BN, ReLU6), then blocks 0..3
        x = net._swish(net._bn0(net._conv_stem(m.preprocess(ImageSet.from_folder(d).array()))))
        for block in net._blocks[:4]:
            x = block(x)
    np.testing.assert_allclose(fs["block3"].maps(), x.numpy(), rtol=1e-4, atol=1e-4)
    assert (tmp_path / "bh" / "imgs" / "pytorch" / "efficientnet_lite0" / "block7" / "img10.mat").is_file()


def test_cli_extract_errors_are_one_line(tmp_path, capsys):
    from brainlike.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    ImageSet.from_array(np.zeros((1, 8, 8, 3), np.uint8)).image(0).save(d / "a.png")
    code = main(["extract", "--model", "efficientnet_lite0", "--images", str(d), "--layers", "block99",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown layer 'block99'" in err and "block15" in err
    assert main(["extract", "--model", "efficientnet_lite0", "--images", str(tmp_path / "none"), "--layers",
                 "block1", "--out", str(tmp_path / "o")]) == 2
    assert "folder or a .zip" in capsys.readouterr().err


def test_images_of_different_sizes_are_preprocessed_one_by_one(tmp_path, rng):
    from PIL import Image

    d = tmp_path / "mixed"
    d.mkdir()
    arrs = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(20, 20, 3), (30, 24, 3), (17, 40, 3)]]
    for i, a in enumerate(arrs):
        Image.fromarray(a).save(d / f"m{i}.png")
    m = tiny_model()
    fs = extract(m, ImageSet.from_folder(d), ["fc"], batch_size=3, progress=False)
    with torch.no_grad():
        ref = torch.cat([m.module(m.preprocess(a[None])) for a in arrs]).numpy()
    np.testing.assert_allclose(np.asarray(fs["fc"]), ref, rtol=1e-5, atol=1e-6)
