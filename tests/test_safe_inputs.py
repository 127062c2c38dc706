"""Safe by construction: names that become files stay inside their folder, and no checkpoint or
cache is unpickled (GNet checkpoints load with torch.load(weights_only=True))."""

from __future__ import annotations

import os
import re
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from brainlike._validate import check_relpath
from brainlike.features import LayerFeatures, export_bhscore
from brainlike.stimuli import ImageSet

SRC = Path(__file__).resolve().parents[1] / "src" / "brainlike"


def _png() -> bytes:
    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, names) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, _png())
    return path


@pytest.mark.parametrize("name, reason", [
    ("/etc/evil.png", "is an absolute path"),
    ("\\evil.png", "is an absolute path"),
    ("C:/evil.png", "starts with a drive letter"),
    ("C:evil.png", "starts with a drive letter"),
    ("imgs\\..\\evil.png", "contains a backslash"),
    ("imgs/../../evil.png", "contains a '..' component"),
    ("imgs/./a.png", "contains an empty or '.' path component"),
    ("imgs//a.png", "contains an empty or '.' path component"),
])
def test_zip_slip_members_are_refused_naming_the_member(tmp_path, name, reason):
    z = _zip(tmp_path / "images.zip", ["imgs/ok.png", name])
    with pytest.raises(ValueError, match=rf"member of .*images.zip {re.escape(repr(name))} {reason}"):
        ImageSet.from_zip(z)


def test_zip_symlink_member_is_refused(tmp_path):
    z = tmp_path / "images.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.png", _png())
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (0o120777 << 16)  # S_IFLNK, as zip -y stores a symbolic link
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match=r"member of .*images.zip 'link.png' is a symbolic link"):
        ImageSet.from_zip(z)


def test_absolute_member_never_reaches_export_outside_the_folder(tmp_path):
    """The issue's case: `brainlike extract --export-bhscore` on a zip with an absolute member."""
    from brainlike.cli import main

    outside = tmp_path / "outside"
    z = _zip(tmp_path / "images.zip", ["a.png", str(outside / "planted.png")])
    rc = main(["extract", "--model", "efficientnet_lite0", "--images", str(z), "--layers", "block1",
               "--out", str(tmp_path / "store"), "--export-bhscore", str(tmp_path / "export"), "--no-progress"])
    assert rc == 2
    assert not outside.exists() and not (tmp_path / "store").exists()


def test_folder_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_png())
    (tmp_path / "secret.png").write_bytes(_png())
    os.symlink(tmp_path / "secret.png", tmp_path / "imgs" / "b.png")
    with pytest.raises(ValueError, match=r"image file of .*imgs '.*b.png' resolves to '.*secret.png', outside the "
                                         r"folder"):
        ImageSet.from_folder(tmp_path / "imgs")
    os.unlink(tmp_path / "imgs" / "b.png")
    os.symlink(tmp_path / "imgs" / "a.png", tmp_path / "imgs" / "c.png")  # inside the folder: fine
    assert ImageSet.from_folder(tmp_path / "imgs").ids == ["a", "c"]


@pytest.mark.parametrize("bad_id, reason", [
    ("/tmp/x", "is an absolute path"),
    ("../x", "contains a path separator"),
    ("..", "contains a '..' component"),
    ("sub/x", "contains a path separator"),
    ("D:x", "starts with a drive letter"),
    ("a\\b", "contains a backslash"),
    ("", "is empty"),
])
def test_export_refuses_ids_that_are_not_one_file_name(tmp_path, bad_id, reason):
    ids = ["ok1", bad_id, "ok2"]
    lf = {"L1": LayerFeatures(np.zeros((3, 2), np.float32), ids, (2,), name="L1")}
    with pytest.raises(ValueError, match=rf"image id of layer 'L1' {re.escape(repr(bad_id))} {reason}"):
        export_bhscore(lf, tmp_path / "out", "set", "pytorch", "net")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_export_refuses_unsafe_folder_and_layer_names(tmp_path):
    lf = {"..": LayerFeatures(np.zeros((1, 2), np.float32), ["a"], (2,), name="..")}
    with pytest.raises(ValueError, match=r"layer folder name '\.\.' contains a '\.\.' component"):
        export_bhscore(lf, tmp_path / "out", "set", "pytorch", "net")
    ok = {"L": LayerFeatures(np.zeros((1, 2), np.float32), ["a"], (2,), name="L")}
    with pytest.raises(ValueError, match=r"network '\.\.' contains a '\.\.' component"):
        export_bhscore(ok, tmp_path / "out", "set", "pytorch", "..")
    with pytest.raises(ValueError, match=r"image_set '/abs' is an absolute path"):
        export_bhscore(ok, tmp_path / "out", "/abs", "pytorch", "net")
    assert export_bhscore(ok, tmp_path / "out", "set", "pytorch", "net") == tmp_path / "out" / "set" / "pytorch" / "net"


def test_check_relpath_accepts_ordinary_names():
    for name in ("n01440764_10026", "im10", "sub/a.png", "fc6:relu", "a.b.c", "trial 3"):
        assert check_relpath(name, "name") == name


# ------------------------------------------------------------------------------------ pickle
def test_no_untrusted_pickle_in_the_package():
    """torch.load only with weights_only=True; np.load never with allow_pickle=True; the only
    pickle.load is the pipeline's job context, which each run writes before its workers read it."""
    import re

    hits = []
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                hits.append(f"{f.name}: torch.load({m.group(1)})")
        if "allow_pickle=True" in text:
            hits.append(f"{f.name}: allow_pickle=True")
        if re.search(r"pickle\.loads?\(", text) and f.name != "jobs.py":
            hits.append(f"{f.name}: pickle.load")
    assert hits == []


def test_planted_gnet_checkpoint_runs_no_code(tmp_path):
    """A .pt that runs code when unpickled is refused with an error naming the file; nothing runs."""
    torch = pytest.importorskip("torch")
    from brainlike.encoding.gnet import _load_checkpoint

    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "g0.pt"
    torch.save({"trunk": Planted()}, ckpt)
    with pytest.raises(ValueError, match=rf"checkpoint {ckpt} is not a GNet checkpoint of this version"):
        _load_checkpoint(ckpt, "cpu")
    assert not marker.exists()
    ckpt.write_bytes(ckpt.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=r"is damaged"):
        _load_checkpoint(ckpt, "cpu")


@pytest.mark.parametrize("kw, match", [
    ({"ids": ["ok", "/etc/x"]}, r"image id '/etc/x' is an absolute path"),
    ({"ids": ["ok", "a\\b"]}, r"image id 'a\\\\b' contains a backslash"),
    ({"net": "../net"}, r"net '../net' contains a path separator"),
    ({"layer": ".."}, r"layer '..' contains a '..' component"),
])
def test_decodability_feature_files_refuse_unsafe_names(tmp_path, kw, match):
    from brainlike.datasets.decodeddnn import write_features

    args = {"net": "AlexNet", "layer": "conv1", "ids": ["ok", "ok2"], **kw}
    with pytest.raises(ValueError, match=match):
        write_features(tmp_path / "out", args["net"], args["layer"], args["ids"], np.zeros((2, 3)), subject="S1")
    assert not (tmp_path / "out").exists()
