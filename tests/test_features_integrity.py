"""Feature-store integrity: chunk checksums in the completion records, detection of a missing,
truncated or corrupt chunk file or a damaged record (naming file, layer and batch), repair by
extract, ``verify`` / ``brainlike extract --verify``, and the lossless codec."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import xxhash

from brainlike import features, models
from brainlike.cli import main
from brainlike.features import DamagedStoreError, FeatureSet, _extract
from brainlike.stimuli import ImageSet

LAYERS = ["relu1", "fc"]


class TinyNet(torch.nn.Module):
    """Conv + in-place ReLU (half its outputs are zeros) + linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.relu1 = torch.nn.ReLU(inplace=True)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(6 * 16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu1(self.conv1(x))), 1))


def tiny():
    return models.wrap(TinyNet(), input_size=32, name="tiny")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # 400 units x 4 images a chunk: relu1 (1,536 units) spans 4 chunk files per batch, fc one
    monkeypatch.setattr(_extract, "_CHUNK_BYTES", 400 * 4 * 4)


@pytest.fixture
def images(tmp_path, rng):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(14):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    return ImageSet.from_folder(d)


@pytest.fixture
def clean(images, tmp_path):
    """A finished store (4 batches: 4 + 4 + 4 + 2 images) and its values."""
    store = tmp_path / "clean"
    fs = features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)
    return store, {name: np.asarray(fs[name]) for name in LAYERS}


def damaged_copy(clean, tmp_path, how: str):
    store = tmp_path / "damaged"
    shutil.copytree(clean[0], store)
    file = {"delete": "L0/c/2/1", "flip": "L0/c/1/3", "truncate": "L1/c/3/0",
            "record-truncate": "_done/batch_000002", "record-edit": "_done/batch_000001"}[how]
    path = store / file
    data = bytearray(path.read_bytes())
    if how == "delete":
        path.unlink()
    elif how == "flip":
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    elif how in ("truncate", "record-truncate"):
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "record-edit":  # valid JSON, a recorded size changed: the record's own checksum catches it
        rec = json.loads(data)
        key = sorted(rec["chunks"])[0]
        rec["chunks"][key][0] += 1
        path.write_text(json.dumps(rec))
    return store, file


EXPECT = {  # file damaged -> (batch, layer, what the message says)
    "delete": (2, "relu1", "missing"),
    "flip": (1, "relu1", "checksum mismatch"),
    "truncate": (3, "fc", "truncated"),
    "record-truncate": (2, None, "completion record damaged"),
    "record-edit": (1, None, "completion record damaged"),
}


@pytest.mark.parametrize("how", list(EXPECT))
def test_damage_is_detected_named_and_repaired_bitwise(clean, tmp_path, images, how, capsys):
    store, file = damaged_copy(clean, tmp_path, how)
    batch, layer, what = EXPECT[how]
    state = features.verify(store)
    assert not state.ok and state.damaged == [batch] and state.unfinished == []
    [problem] = state.problems
    assert (problem.file, problem.batch, problem.layer) == (file, batch, layer) and what in problem.what
    with pytest.raises(DamagedStoreError, match=f"{file}.*batch {batch}.*{what}") as info:
        FeatureSet.open(store)
    assert info.value.problems == [problem]
    assert main(["extract", "--verify", "--out", str(store)]) == 2
    out = capsys.readouterr()
    assert f"damaged: {file}" in out.out and "is damaged" in out.err
    m = tiny()
    calls = []
    models.layers(m)
    m.module.register_forward_pre_hook(lambda *a: calls.append(1))
    fs = features.extract(m, images, LAYERS, store=store, batch_size=4, progress=False)
    assert fs.computed == [batch] and len(calls) == 1 and fs.repaired == [problem]
    for name in LAYERS:
        assert np.array_equal(np.asarray(fs[name]), clean[1][name])
    assert features.verify(store).ok


def test_corrupt_chunk_is_caught_when_read_never_decoded(clean, tmp_path, images):
    """Opened without the full check (sizes only), a flipped byte is caught as the chunk is read."""
    store, file = damaged_copy(clean, tmp_path, "flip")
    fs = FeatureSet.open(store, verify=False)
    np.testing.assert_array_equal(fs["fc"].read(slice(None)), clean[1]["fc"])  # other layers read fine
    with pytest.raises(DamagedStoreError, match=f"{file} \\(layer 'relu1', batch 1\\): checksum mismatch"):
        np.asarray(fs["relu1"])
    with pytest.raises(DamagedStoreError, match=file):
        fs["relu1"].read(slice(1500, 1536))  # units of chunk 3 only
    np.testing.assert_array_equal(fs["relu1"].read(slice(0, 100)), clean[1]["relu1"][:, :100])
    fast = features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False, verify=False)
    assert fast.computed == []  # sizes only: the flipped byte is found when read, not before
    with pytest.raises(DamagedStoreError, match=file):
        np.asarray(fast["relu1"])


def test_chunk_deleted_after_opening_is_an_error_not_zeros(clean, tmp_path):
    store = tmp_path / "s"
    shutil.copytree(clean[0], store)
    fs = FeatureSet.open(store)
    (store / "L0" / "c" / "3" / "0").unlink()
    with pytest.raises(DamagedStoreError, match="L0/c/3/0 \\(layer 'relu1', batch 3\\): missing"):
        fs["relu1"].read(slice(0, 10))
    (store / "L1" / "c" / "0" / "0").write_bytes(b"")
    with pytest.raises(DamagedStoreError, match="L1/c/0/0 .*truncated: 0 of"):
        np.asarray(fs["fc"])


def test_deleted_record_means_unfinished_and_is_recomputed(clean, tmp_path, images):
    store = tmp_path / "s"
    shutil.copytree(clean[0], store)
    (store / "_done" / "batch_000000").unlink()
    state = features.verify(store)
    assert state.unfinished == [0] and not state.problems and not state.ok
    with pytest.raises(ValueError, match="incomplete"):
        FeatureSet.open(store)
    fs = features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)
    assert fs.computed == [0] and fs.repaired == []
    assert np.array_equal(np.asarray(fs["relu1"]), clean[1]["relu1"])


def test_records_hold_xxh3_of_each_chunk_file(clean):
    store = clean[0]
    rec = json.loads((store / "_done" / "batch_000001").read_text())
    assert sorted(rec["chunks"]) == [f"L0/c/1/{j}" for j in range(4)] + ["L1/c/1/0"]
    for key, (size, digest) in rec["chunks"].items():
        data = (store / key).read_bytes()
        assert size == len(data) and digest == xxhash.xxh3_128(data).hexdigest()
    assert rec["rows"] == [4, 8]
    state = features.verify(store)
    assert state.ok and state.n_files == 4 * 5 and state.n_bytes == sum(
        f.stat().st_size for f in store.glob("L*/c/*/*"))


class DeadNet(torch.nn.Module):
    """A layer whose every output is zero (a dead ReLU) beside a live one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.dead = torch.nn.ReLU()

    def forward(self, x):
        return self.dead(-1.0 - self.conv1(x).abs())


def test_all_zero_chunks_are_written_recorded_and_read_back(tmp_path, images):
    """A dead layer's chunks are all zeros: they are written and recorded like any other (never
    skipped as 'empty', which left a batch without its chunk files and failed the extraction)."""
    store = tmp_path / "dead"
    fs = features.extract(models.wrap(DeadNet(), input_size=32, name="dead"), images, ["dead", "conv1"],
                          store=store, batch_size=4, progress=False)
    dead = np.asarray(fs["dead"])
    assert dead.shape == (14, 1536) and not dead.any() and np.asarray(fs["conv1"]).any()
    rec = json.loads((store / "_done" / "batch_000000").read_text())
    assert [k for k in rec["chunks"] if k.startswith("L0/")] == [f"L0/c/0/{j}" for j in range(4)]
    assert features.verify(store).ok and all((store / k).is_file() for k in rec["chunks"])


def test_chunk_files_are_the_bytes_zarr_writes(clean, tmp_path):
    """The store encodes its chunks itself (not through zarr's write path): each chunk file, edge
    chunks with their zero padding included, equals what zarr writes for the same values."""
    import zarr

    store, values = clean
    ref = zarr.open_group(str(tmp_path / "ref"), mode="w")
    for i, name in enumerate(LAYERS):
        have = zarr.open_array(store=str(store), path=f"L{i}", mode="r")
        arr = ref.create_array(f"L{i}", shape=have.shape, chunks=have.chunks, dtype=have.dtype,
                               compressors=have.compressors, fill_value=0, config={"write_empty_chunks": True})
        arr[:] = values[name]
        files = sorted(p.relative_to(store) for p in (store / f"L{i}" / "c").glob("*/*"))
        assert files and files == sorted(p.relative_to(tmp_path / "ref") for p in
                                         (tmp_path / "ref" / f"L{i}" / "c").glob("*/*"))
        for f in files:  # 14 images in batches of 4, 1,536 units in chunks of 400: edges both ways
            assert (store / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f


def test_codec_is_lossless_and_shrinks_relu_outputs(clean, images):
    store, values = clean
    meta = json.loads((store / "L0" / "zarr.json").read_text())
    [codec] = [c for c in meta["codecs"] if c["name"] == "blosc"]
    assert codec["configuration"]["cname"] == "lz4"
    # independent reference: the same forward pass without hooks or store, batch by batch
    m = tiny()
    net = m.module
    with torch.no_grad():
        ref = []
        for start in range(0, len(images), 4):
            x = m.preprocess(images.array(list(range(start, min(len(images), start + 4)))))
            ref.append(torch.relu(net.conv1(x)).reshape(x.shape[0], -1).numpy())
    ref = np.concatenate(ref)
    assert np.array_equal(values["relu1"], ref) and (ref == 0).mean() > 0.3
    stored = sum(f.stat().st_size for f in store.glob("L0/c/*/*"))
    assert stored < 0.9 * ref.nbytes


def test_damaged_top_metadata_and_old_format_are_named(clean, tmp_path, images):
    store = tmp_path / "s"
    shutil.copytree(clean[0], store)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["brainlike_features"]["format"] = 1
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format 1"):
        features.verify(store)
    with pytest.raises(ValueError, match="format 1"):
        features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)
    meta["attributes"]["brainlike_features"]["format"] = 2
    meta["attributes"]["brainlike_features"]["ids"][3] = "im99"  # parses, but is not what was written
    (store / "zarr.json").write_text(json.dumps(meta))
    for call in (lambda: FeatureSet.open(store), lambda: features.verify(store),
                 lambda: features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)):
        with pytest.raises(DamagedStoreError, match="zarr.json: store metadata .* damaged.*delete the store"):
            call()
    (store / "zarr.json").write_text("{")
    with pytest.raises(ValueError, match="zarr.json is missing or damaged"):
        FeatureSet.open(store)
    assert main(["extract", "--verify", "--out", str(tmp_path / "nothing")]) == 2


def test_cli_repairs_and_says_so(clean, tmp_path, images, monkeypatch, capsys):
    store, file = damaged_copy(clean, tmp_path, "truncate")
    real = models.load
    monkeypatch.setattr(models, "load", lambda name, *a, **k: tiny() if name == "tiny" else real(name, *a, **k))
    args = ["extract", "--model", "tiny", "--images", str(tmp_path / "imgs"), "--layers", *LAYERS,
            "--out", str(store), "--batch-size", "4", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"recomputed damaged: {file} (layer 'fc', batch 3): truncated" in out and "computed 1 of 4 batches" in out
    assert main(args) == 0
    assert "read back, nothing computed" in capsys.readouterr().out
    assert main(["extract", "--verify", "--out", str(store)]) == 0
    assert "every checksum verified" in capsys.readouterr().out
    assert np.array_equal(np.asarray(FeatureSet.open(store)["fc"]), clean[1]["fc"])
    assert main(["extract", "--out", str(store)]) == 2
    assert "--model, --images, --layers required" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_array_metadata_is_named_and_not_guessed(clean, tmp_path, images, damage):
    store = tmp_path / "s"
    shutil.copytree(clean[0], store)
    f = store / "L1" / "zarr.json"
    f.write_text(f.read_text()[:40]) if damage == "truncate" else f.unlink()
    what = "array metadata damaged" if damage == "truncate" else "array metadata missing"
    [problem] = features.verify(store).problems
    assert (problem.file, problem.batch, problem.layer) == ("L1/zarr.json", None, "fc") and problem.what.startswith(what)
    for call in (lambda: FeatureSet.open(store, verify=False),
                 lambda: features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)):
        with pytest.raises(DamagedStoreError, match=f"L1/zarr.json \\(layer 'fc'\\): {what}.*delete the store"):
            call()
    shutil.rmtree(store / "L0")
    (store / "zarr.json").unlink()
    with pytest.raises(ValueError, match="zarr.json is missing or damaged"):
        features.extract(tiny(), images, LAYERS, store=store, batch_size=4, progress=False)
