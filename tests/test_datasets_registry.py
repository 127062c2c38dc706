"""Registry: mirror, data home, checksums, resumable downloads (from a local server), CLI."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading

import numpy as np
import pytest

from brainlike.cli import main as cli_main
from brainlike.datasets import ChecksumError, DataNotAvailableError, RemoteFile, fetch, info, list_datasets, load
from brainlike.datasets import _fetch
from brainlike.datasets.registry import DATASETS, DatasetInfo


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Server:
    """Local HTTP server with Range support; ``cut`` bytes makes the next response stop early."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[dict] = []
        self.cut: int | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = outer.files.get(self.path)
                outer.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if outer.cut is not None:
                    self.wfile.write(part[: outer.cut])
                    outer.cut = None
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    payload = np.random.default_rng(0).bytes(300_000)
    s = _Server({"/data.bin": payload})
    s.payload = payload
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAINLIKE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


def test_registry_lists_required_names_with_urls_and_checksums():
    names = list_datasets()
    for required in ("cowley2023_v4", "kriegeskorte2008_92", "kay2008_vim1_stimuli", "bhscore_settings", "nsd",
                     "shen2019_deeprecon", "kay2008_vim1", "horikawa2019_decodability"):
        assert required in names
    for rf in info("cowley2023_v4").file_list(session="210325", raw=True):
        assert rf.url.startswith("https://raw.githubusercontent.com/cowleygroup/V4_compact_models/f4552ad9")
        assert len(rf.sha256) == 64
    assert all(rf.sha256 for rf in info("kriegeskorte2008_92").file_list())
    with pytest.raises(ValueError, match="session must be one of"):
        info("cowley2023_v4").file_list(session="999999")
    with pytest.raises(ValueError, match="raw repeats exist only for session"):
        info("cowley2023_v4").file_list(session="190923", raw=True)
    with pytest.raises(ValueError, match="options for 'cowley2023_v4' must be among"):
        info("cowley2023_v4").file_list(sesion="190923")
    with pytest.raises(ValueError, match="name must be one of"):
        info("nope")


def test_tampered_mirror_copy_names_file_and_both_hashes(mirror, tmp_path, monkeypatch):
    rel = "bhscore/settings.json"
    good = (mirror / rel).read_bytes()
    fake = tmp_path / "mirror"
    (fake / "bhscore").mkdir(parents=True)
    (fake / rel).write_bytes(good.replace(b"AlexNet", b"AlexNey", 1))
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(fake))
    expected = info("bhscore_settings").file_list()[0].sha256
    with pytest.raises(ChecksumError) as err:
        fetch("bhscore_settings")
    msg = str(err.value)
    assert rel in msg and expected in msg and sha((fake / rel).read_bytes()) in msg
    (fake / rel).write_bytes(good)
    assert fetch("bhscore_settings")[rel] == fake / rel


def test_mirror_set_never_downloads(tmp_path, monkeypatch, server):
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    rf = RemoteFile("x/data.bin", server.url + "/data.bin", sha(server.payload))
    with pytest.raises(DataNotAvailableError, match="nothing is downloaded"):
        _fetch.resolve_file(rf, progress=False)
    assert server.requests == []


def test_download_verifies_and_resumes(home, server):
    rf = RemoteFile("x/data.bin", server.url + "/data.bin", sha(server.payload))
    # first attempt is cut after 100 kB: no file under the final name, a .part is kept
    server.cut = 100_000
    with pytest.raises(Exception):
        _fetch.resolve_file(rf, progress=False)
    final = home / "x" / "data.bin"
    assert not final.exists()
    parts = list((home / "x").glob(".*.part"))
    assert len(parts) == 1
    kept = parts[0].stat().st_size
    assert 0 < kept <= 100_000
    # second attempt resumes with a Range request and verifies the whole file
    path = _fetch.resolve_file(rf, progress=False)
    assert path == final and final.read_bytes() == server.payload
    assert server.requests[-1]["range"] == f"bytes={kept}-"
    assert not list((home / "x").glob(".*.part"))
    # later calls use the local copy (no request)
    n = len(server.requests)
    _fetch.resolve_file(rf, progress=False)
    assert len(server.requests) == n


def test_download_with_wrong_checksum_leaves_nothing(home, server):
    rf = RemoteFile("x/data.bin", server.url + "/data.bin", "0" * 64)
    with pytest.raises(ChecksumError, match="x/data.bin"):
        _fetch.resolve_file(rf, progress=False)
    assert not (home / "x" / "data.bin").exists()


def test_unknown_checksum_recorded_on_first_download_then_verified(home, server):
    rf = RemoteFile("y/data.bin", server.url + "/data.bin", None)
    path = _fetch.resolve_file(rf, progress=False)
    assert _fetch._recorded(home)["y/data.bin"] == sha(server.payload)
    path.write_bytes(server.payload[:-10])  # later corruption is caught
    with pytest.raises(ChecksumError, match=sha(server.payload)):
        _fetch.resolve_file(rf, progress=False)


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong structure", "deleted"])
def test_damaged_checksum_record_means_verify_from_scratch(home, server, damage, caplog):
    """A damaged record never switches verification off: a corrupted file is still caught."""
    rf = RemoteFile("y/data.bin", server.url + "/data.bin", None)
    path = _fetch.resolve_file(rf, progress=False)
    record = home / ".brainlike-checksums.json"
    good = record.read_bytes()
    damaged = {"truncated": good[: len(good) // 2], "not json": b"\x00\xff garbage",
               "wrong structure": b'{"y/data.bin": "abc"}', "deleted": None}[damage]

    def harm_record():
        if damaged is None:
            record.unlink(missing_ok=True)
        else:
            record.write_bytes(damaged)

    harm_record()
    corrupt = bytearray(server.payload)
    corrupt[1234] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with caplog.at_level("WARNING", logger="brainlike"):
        with pytest.raises(ChecksumError, match=r"y/data\.bin"):
            _fetch.resolve_file(rf, progress=False)
    if damage != "deleted":
        assert "checksum record damaged" in caplog.text and ".brainlike-checksums.json" in caplog.text
        assert list(home.glob(".brainlike-checksums.json.damaged-*"))
    # an intact file passes the fresh comparison and is recorded again
    harm_record()
    path.write_bytes(server.payload)
    n = len(server.requests)
    assert _fetch.resolve_file(rf, progress=False) == path
    assert len(server.requests) == n + 1  # verified against a fresh copy
    assert _fetch._read_record(home)["y/data.bin"] == sha(server.payload)
    assert not (home / ".verify").exists() or not any((home / ".verify").iterdir())


def test_damaged_record_offline_refuses_rather_than_trusts(home, server, tmp_path, monkeypatch):
    rf = RemoteFile("y/data.bin", server.url + "/data.bin", None)
    _fetch.resolve_file(rf, progress=False)
    (home / ".brainlike-checksums.json").write_text('{"y/data.bin": "')
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(tmp_path / "empty-mirror"))  # the mirror forbids downloads
    n = len(server.requests)
    with pytest.raises(DataNotAvailableError, match=r"no recorded checksum.*may not be downloaded here"):
        _fetch.resolve_file(rf, progress=False)
    assert len(server.requests) == n
    monkeypatch.delenv("BRAINLIKE_DATA_MIRROR")
    server.close()
    with pytest.raises(DataNotAvailableError, match=r"data\.bin has no recorded checksum.*cannot be verified"):
        _fetch.resolve_file(rf, progress=False)


def test_fetch_and_load_named_dataset_through_registry(home, server, monkeypatch):
    entry = DatasetInfo("toy", "toy", "", "", "", "", lambda **_: [RemoteFile("toy/data.bin", server.url + "/data.bin",
                                                                          sha(server.payload))],
                        "brainlike.datasets._fetch:file_sha256")
    monkeypatch.setitem(DATASETS, "toy", entry)
    paths = fetch("toy", progress=False)
    assert paths["toy/data.bin"].read_bytes() == server.payload
    assert cli_main(["datasets", "fetch", "toy", "--no-progress"]) == 0


def test_no_url_gives_clear_error(home):
    with pytest.raises(DataNotAvailableError, match="CRCNS"):
        fetch("kay2008_vim1")


def test_unreachable_host_gives_clear_error_and_no_file(home):
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rf = RemoteFile("w/data.bin", f"http://127.0.0.1:{port}/data.bin", "0" * 64)
    with pytest.raises(DataNotAvailableError, match=r"could not download w/data.bin .*BRAINLIKE_DATA_MIRROR"):
        _fetch.resolve_file(rf, progress=False)
    assert not (home / "w" / "data.bin").exists()


def test_cli_list_info_fetch(mirror, capsys):
    assert cli_main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "cowley2023_v4" in out and "kriegeskorte2008_92" in out
    assert cli_main(["datasets", "list", "--kind", "rdms"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["kriegeskorte2008_92", "rdms"]
    assert cli_main(["datasets", "list", "--kind", "fmri"]) == 2
    assert "kind must be one of" in capsys.readouterr().err
    assert cli_main(["datasets", "info", "cowley2023_v4", "-o", "session=210325"]) == 0
    out = capsys.readouterr().out
    assert "555e67037182611969ab90da291dcc39601de4411f651a64ad60e90572cf59d3" in out and "kind:     brain" in out
    assert cli_main(["datasets", "fetch", "bhscore_settings"]) == 0
    assert "verified" in capsys.readouterr().out
    assert cli_main(["datasets", "info", "nope"]) == 2
    assert "name must be one of" in capsys.readouterr().err


def test_load_passes_options(mirror):
    d = load("cowley2023_v4", session="210224", stimuli=False)
    assert d.responses.shape == (800, 67) and d.stimuli is None
    with pytest.raises(ValueError, match="options for 'cowley2023_v4' must be among"):
        load("cowley2023_v4", bogus=1)


def test_bhscore_accuracy_tree_from_mirror_zip(mirror, tmp_path, monkeypatch):
    from brainlike.datasets.bhscore import read_settings, write_accuracy_tree

    settings = read_settings(mirror / "bhscore/settings.json")
    rng = np.random.default_rng(0)
    tree = {"AlexNet": {ly: {s: {r: rng.random(4) for r in settings["rois"]} for s in settings["subjects"]}
                        for ly in settings["dnns"]["AlexNet"]["layers"]}}
    build = tmp_path / "build"
    write_accuracy_tree(build / "decoding_accuracy" / "ImageNetTest", settings, tree)
    fake = tmp_path / "mirror" / "bhscore"
    fake.mkdir(parents=True)
    shutil.copy(mirror / "bhscore/settings.json", fake / "settings.json")
    shutil.make_archive(str(fake / "decoding_accuracy"), "zip", build)
    monkeypatch.setenv("BRAINLIKE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("BRAINLIKE_DATA", str(tmp_path / "home"))
    got = load("bhscore_accuracy", kind="decoding", dnns=["AlexNet"])
    np.testing.assert_allclose(got["AlexNet"]["fc8"]["sub-02"]["HVC"], tree["AlexNet"]["fc8"]["sub-02"]["HVC"])
    assert (tmp_path / "home" / "bhscore" / "decoding_accuracy").is_dir()  # unzipped once into the data home
    assert not list((tmp_path / "home" / "bhscore").glob(".unzip-*"))
    with pytest.raises(ValueError, match="kind must be one of"):
        load("bhscore_accuracy", kind="both")


def test_concurrent_fetches_of_one_file_do_not_mix(home, server):
    rf = RemoteFile("z/data.bin", server.url + "/data.bin", None)
    results, errors = [], []

    def work():
        try:
            results.append(_fetch.resolve_file(rf, progress=False).read_bytes())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3 and all(r == server.payload for r in results)
    assert sum(1 for r in server.requests if r["path"] == "/data.bin") == 1  # one download, the others waited


def test_accuracy_archive_download_is_checksummed_and_unpacked_once(home, tmp_path, monkeypatch):
    """reproduce's archives take the one download path: recorded SHA-256, corruption caught, mirror-aware."""
    import zipfile

    from brainlike.datasets import bhscore

    buf = tmp_path / "a.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("decoding_accuracy/ImageNetTest/caffe/AlexNet/conv1/sub-01/V1/accuracy.mat", b"x" * 10)
    srv = _Server({"/acc.zip": buf.read_bytes(), "/settings.json": b"{}"})
    try:
        monkeypatch.setitem(bhscore.ACCURACY_URLS, "decoding", srv.url + "/acc.zip")
        monkeypatch.setattr("brainlike.datasets.registry._bhscore_files",
                            lambda **_: [RemoteFile("bhscore/settings.json", srv.url + "/settings.json",
                                                    sha(b"{}"))])
        root = bhscore.download_accuracy("decoding", progress=False)
        assert root == home / "bhscore" / "decoding_accuracy"
        assert (root / "ImageNetTest/caffe/AlexNet/conv1/sub-01/V1/accuracy.mat").read_bytes() == b"x" * 10
        assert _fetch._read_record(home)["bhscore/decoding_accuracy.zip"] == sha(buf.read_bytes())
        n = len(srv.requests)
        assert bhscore.download_accuracy("decoding", progress=False) == root and len(srv.requests) == n
        zpath = home / "bhscore" / "decoding_accuracy.zip"
        zpath.write_bytes(zpath.read_bytes()[:-5])
        with pytest.raises(ChecksumError, match="decoding_accuracy.zip"):
            bhscore.download_accuracy("decoding", progress=False)
    finally:
        srv.close()
    zpath.unlink()
    with pytest.raises(DataNotAvailableError, match="could not download the decoding accuracies.*--accuracy-root"):
        bhscore.download_accuracy("decoding", progress=False)


def test_register_a_dataset_and_load_brain_always_gives_braindata(home):
    from brainlike.datasets import KINDS, BrainData, load_brain, register, unregister

    payload = np.arange(12, dtype=np.float32).reshape(4, 3)
    (home / "mylab").mkdir(parents=True)
    np.save(home / "mylab" / "resp.npy", payload)

    def read(paths, roi="all"):
        arr = np.load(paths["mylab/resp.npy"])
        return BrainData(arr, [f"img{i}" for i in range(len(arr))], rois={roi: np.ones(arr.shape[1], bool)})

    entry = DatasetInfo("mylab_v1", "My lab's V1", "4 images x 3 voxels", "-", "CC0", "-",
                        [RemoteFile("mylab/resp.npy", None, None, "made in the lab")], read,
                        {"roi": ("all", "name of the one ROI")}, kind="brain")
    register(entry)
    try:
        assert "mylab_v1" in list_datasets("brain") and "mylab_v1" not in list_datasets("rdms")
        bd = load_brain("mylab_v1", roi="V1")
        assert isinstance(bd, BrainData) and list(bd.rois) == ["V1"]
        np.testing.assert_array_equal(bd.responses, payload)
        with pytest.raises(ValueError, match="already registered"):
            register(entry)
        register(DatasetInfo("mylab_v1", "t", "d", "c", "l", "h", [], lambda paths: {"not": "brain"}),
                 replace=True)
        with pytest.raises(TypeError, match="returned dict, not BrainData"):
            load_brain("mylab_v1")
    finally:
        unregister("mylab_v1")
    assert "mylab_v1" not in list_datasets()
    with pytest.raises(ValueError, match="kind must be one of"):
        DatasetInfo("x", "t", "d", "c", "l", "h", [], read, kind="fmri")
    with pytest.raises(ValueError, match="loader of 'x' must be a function"):
        DatasetInfo("x", "t", "d", "c", "l", "h", [], "no_colon")
    assert all(info(n).kind in KINDS for n in list_datasets())


def test_load_brain_refuses_other_kinds_before_fetching(home):
    from brainlike.datasets import load_brain

    for name, kind in [("kriegeskorte2008_92", "rdms"), ("bhscore_settings", "config"),
                       ("bhscore_accuracy", "results"), ("kay2008_vim1_stimuli", "stimuli")]:
        with pytest.raises(ValueError, match=f"kind '{kind}'.*brainlike.datasets.load"):
            load_brain(name)
    assert not home.exists() or not any(home.rglob("*.*"))  # nothing fetched
    assert set(list_datasets("brain")) >= {"cowley2023_v4", "shen2019_deeprecon", "nsd", "kay2008_vim1"}
