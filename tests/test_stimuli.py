"""ImageSet loaders, ids, fingerprints and the retina warp."""

from __future__ import annotations

import random
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image

from brainlike.stimuli import ImageSet, natural_key, retina_radius_map, retina_warp


def _write_images(folder, rng, n=6, size=(20, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    arrs = {}
    for i in range(n):
        a = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"img{i * 5}.png")  # img0, img5, img10, ... (natural order differs)
        arrs[f"img{i * 5}"] = a
    return arrs


def test_natural_sort_key():
    names = ["image10", "image2", "image1", "Image3", "a"]
    assert sorted(names, key=natural_key) == ["a", "image1", "image2", "Image3", "image10"]
    assert sorted(["10", "9", "100", "1"], key=natural_key) == ["1", "9", "10", "100"]


def test_from_folder_ids_natural_sorted_and_pixels_exact(tmp_path, rng):
    arrs = _write_images(tmp_path / "imgs", rng)
    s = ImageSet.from_folder(tmp_path / "imgs")
    assert s.ids == ["img0", "img5", "img10", "img15", "img20", "img25"]
    assert len(s) == 6 and s.name == "imgs"
    for i, k in enumerate(s.ids):
        np.testing.assert_array_equal(s.load(i), arrs[k])
    assert s.array().shape == (6, 20, 24, 3)
    assert s.image(1).mode == "RGB"


def test_gray_rgb_rgba_modes(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(gray, mode="L").save(d / "g.png")
    rgba = np.zeros((12, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :5, 3] = 255  # left half opaque red, right half fully transparent
    rgba[:, 5:, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(d / "t.png")
    s = ImageSet.from_folder(d)
    g = s.load(s.ids.index("g"))
    assert g.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(g[..., c], gray)
    t = s.load(s.ids.index("t"))
    # independent reference: PIL alpha compositing over a mid-gray background
    ref = Image.alpha_composite(Image.new("RGBA", (10, 12), (128, 128, 128, 255)), Image.fromarray(rgba))
    np.testing.assert_array_equal(t, np.asarray(ref.convert("RGB")))
    assert tuple(t[0, 0]) == (200, 0, 0) and tuple(t[0, 9]) == (128, 128, 128)


def _zip(path, members, top=None, shuffle=True):
    items = list(members.items())
    if shuffle:
        random.Random(1).shuffle(items)
    with zipfile.ZipFile(path, "w") as zf:
        if top:
            zf.writestr(f"{top}/", "")
        for name, data in items:
            zf.writestr(f"{top}/{name}" if top else name, data)
        zf.writestr((f"{top}/" if top else "") + "readme.txt", "not an image")


def test_from_zip_any_order_with_and_without_top_folder(tmp_path, rng):
    arrs = _write_images(tmp_path / "imgs", rng)
    members = {p.name: p.read_bytes() for p in (tmp_path / "imgs").iterdir()}
    _zip(tmp_path / "top.zip", members, top="stim")
    _zip(tmp_path / "flat.zip", members)
    folder = ImageSet.from_folder(tmp_path / "imgs")
    for z in ("top.zip", "flat.zip"):
        s = ImageSet.from_zip(tmp_path / z)
        assert s.ids == folder.ids
        assert s.fingerprint() == folder.fingerprint()
        np.testing.assert_array_equal(s.load(2), arrs[s.ids[2]])


def test_corrupt_image_names_the_file(tmp_path, rng):
    _write_images(tmp_path / "imgs", rng, n=3)
    (tmp_path / "imgs" / "img99.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    s = ImageSet.from_folder(tmp_path / "imgs")
    with pytest.raises(ValueError, match="img99.jpg"):
        s.fingerprint()
    with pytest.raises(ValueError, match="img99.jpg"):
        s.load(s.ids.index("img99"))
    members = {"a.png": (tmp_path / "imgs" / "img0.png").read_bytes(), "broken.png": b"\x89PNG\r\n garbage"}
    _zip(tmp_path / "c.zip", members, top="x")
    z = ImageSet.from_zip(tmp_path / "c.zip")
    with pytest.raises(ValueError, match=r"x/broken.png in .*c.zip"):
        z.verify()


def test_duplicate_and_empty_sets_fail_clearly(tmp_path, rng):
    d = tmp_path / "dup"
    d.mkdir()
    a = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(d / "a.png")
    Image.fromarray(a).save(d / "a.bmp")
    with pytest.raises(ValueError, match=r"duplicate ids \['a'\]"):
        ImageSet.from_folder(d)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="empty"):
        ImageSet.from_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        ImageSet.from_array(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="duplicate"):
        ImageSet.from_array(np.zeros((2, 4, 4, 3), np.uint8), ids=["x", "x"])
    with pytest.raises(FileNotFoundError, match="folder"):
        ImageSet.from_folder(tmp_path / "missing")
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as zf:
        zf.writestr("top/", "")
    with pytest.raises(ValueError, match="empty"):
        ImageSet.from_zip(tmp_path / "e.zip")


def test_from_array_dtypes_and_errors(rng):
    f = rng.random((3, 5, 6))
    s = ImageSet.from_array(f, ids=["c", "b", "a"])
    assert s.ids == ["c", "b", "a"]  # given order is kept
    np.testing.assert_array_equal(s.load(0)[..., 1], np.round(f[0] * 255).astype(np.uint8))
    rgba = rng.integers(0, 256, size=(2, 5, 6, 4), dtype=np.uint8)
    assert ImageSet.from_array(rgba).array().shape == (2, 5, 6, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageSet.from_array(f * 3)
    with pytest.raises(ValueError, match="one entry per image"):
        ImageSet.from_array(f, ids=["a"])
    with pytest.raises(ValueError, match="shape"):
        ImageSet.from_array(np.zeros((3, 4, 4, 2), np.uint8))
    src = rng.integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    copy = src.copy()
    s2 = ImageSet.from_array(src)
    src[:] = 0  # the set keeps its own copy; the input is not modified by the set either
    np.testing.assert_array_equal(s2.array(), copy)


def test_npz_and_hdf5_match_array(tmp_path, rng):
    arr = rng.integers(0, 256, size=(4, 9, 7, 3), dtype=np.uint8)
    ids = np.array(["s1", "s2", "s3", "s4"])
    np.savez(tmp_path / "x.npz", images=arr, names=ids)
    a = ImageSet.from_npz(tmp_path / "x.npz", key="images", ids_key="names")
    assert a.ids == list(ids)
    np.testing.assert_array_equal(a.array(), arr)
    with pytest.raises(ValueError, match="available keys"):
        ImageSet.from_npz(tmp_path / "x.npz")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["stim/img"] = arr[..., 0]  # grayscale
        f["stim/ids"] = ids.astype("S")
    h = ImageSet.from_hdf5(tmp_path / "x.h5", "stim/img", ids_dataset="stim/ids")
    assert h.ids == list(ids)
    np.testing.assert_array_equal(h.array()[..., 2], arr[..., 0])
    with pytest.raises(ValueError, match="stim/img"):
        ImageSet.from_hdf5(tmp_path / "x.h5", "nope")


def test_fingerprint_tracks_content_and_ids(rng):
    arr = rng.integers(0, 256, size=(3, 6, 6, 3), dtype=np.uint8)
    base = ImageSet.from_array(arr).fingerprint()
    assert ImageSet.from_array(arr.copy()).fingerprint() == base
    changed = arr.copy()
    changed[1, 2, 3, 0] ^= 1
    assert ImageSet.from_array(changed).fingerprint() != base
    assert ImageSet.from_array(arr, ids=["0", "1", "x"]).fingerprint() != base
    assert ImageSet.from_array(arr[::-1]).fingerprint() != base


def test_subset_map_resize(rng):
    arr = rng.integers(0, 256, size=(4, 6, 8, 3), dtype=np.uint8)
    s = ImageSet.from_array(arr, ids=list("abcd"))
    sub = s.subset(["d", "b"])
    np.testing.assert_array_equal(sub.array(), arr[[3, 1]])
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        s.subset(["a", "zz"])
    calls = []

    def invert(img):
        calls.append(1)
        return 255 - img

    inv = s.map(invert, name="inv")
    assert not calls  # lazy
    np.testing.assert_array_equal(inv.load(2), 255 - arr[2])
    assert len(calls) == 1 and inv.ids == s.ids and inv.name == "inv"
    assert s.resize((3, 5)).array().shape == (4, 3, 5, 3)
    mixed = ImageSet.from_array(arr[:2], ids=["p", "q"])
    mixed._loader = lambda i: arr[0] if i == 0 else arr[1][:4]  # two sizes
    with pytest.raises(ValueError, match="resize"):
        mixed.array()


# ----------------------------------------------------------------------------- retina warp
def test_retina_warp_identity_limit_and_fixed_centre(rng):
    img = rng.integers(0, 256, size=(33, 33, 3), dtype=np.uint8)
    np.testing.assert_array_equal(retina_warp(img, fovea=1e9), img)
    dot = np.zeros((33, 33, 3), np.uint8)
    dot[16, 16] = 255
    out = retina_warp(dot, fovea=0.2, order=0)
    assert tuple(out[16, 16]) == (255, 255, 255)
    assert out.shape == dot.shape and out.dtype == np.uint8
    np.testing.assert_allclose(retina_radius_map(16.5, 16.5, 0.2), 16.5)  # border maps onto itself


def test_retina_warp_magnifies_centre_compresses_periphery():
    n, half, fovea = 101, 50.5, 0.2
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy - 50, xx - 50)
    disc = np.where(r <= 6, 255, 0).astype(np.uint8)  # planted central disc, radius 6
    ring = np.where((r >= 40) & (r <= 46), 255, 0).astype(np.uint8)  # planted peripheral ring, width 6
    out_disc = retina_warp(disc, fovea=fovea, order=0)
    out_ring = retina_warp(ring, fovea=fovea, order=0)
    # analytic prediction: output radius rho reads input radius e(rho); invert e(rho) = 6
    e0 = fovea * half
    k = half / np.log1p(half / e0)
    rho_disc = k * np.log1p(6 / e0)
    measured = r[out_disc > 0].max()
    assert rho_disc > 6 * 1.5  # centre magnified
    assert abs(measured - rho_disc) <= 1.0
    radii = r[out_ring > 0]
    width_out = radii.max() - radii.min()
    width_pred = k * (np.log1p(46 / e0) - np.log1p(40 / e0))
    assert width_out < 6 and abs(width_out - width_pred) <= 1.5  # periphery compressed
    # angles preserved: a horizontal bar stays horizontal
    bar = np.zeros((n, n), np.uint8)
    bar[50, :] = 255
    out_bar = retina_warp(bar, fovea=fovea, order=0)
    far = np.abs(xx - 50) > 25  # the magnified centre thickens the bar; away from it, it stays on row 50
    assert set(yy[(out_bar > 0) & far]) == {50}
    assert (out_bar[50] == 255).all()


def test_retina_warp_matches_pointwise_reference(rng):
    img = rng.integers(0, 256, size=(15, 19, 3), dtype=np.uint8)
    out = retina_warp(img, fovea=0.3, order=0)
    h, w = img.shape[:2]
    cy, cx, half = (h - 1) / 2, (w - 1) / 2, min(h, w) / 2
    e0 = 0.3 * half
    k = half / np.log(1 + half / e0)
    ref = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            rho = np.hypot(y - cy, x - cx)
            s = 1.0 if rho == 0 else e0 * (np.exp(rho / k) - 1) / rho
            sy = min(max(int(np.floor(cy + (y - cy) * s + 0.5)), 0), h - 1)
            sx = min(max(int(np.floor(cx + (x - cx) * s + 0.5)), 0), w - 1)
            ref[y, x] = img[sy, sx]
    assert (out != ref).any(axis=2).mean() < 0.02  # ties at exact .5 may round either way


def test_retina_warp_through_imageset_map_and_bad_input(rng):
    arr = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    warped = ImageSet.from_array(arr).map(retina_warp, name="warped")
    np.testing.assert_array_equal(warped.load(1), retina_warp(arr[1]))
    with pytest.raises(ValueError, match="fovea"):
        retina_warp(arr[0], fovea=0)
    with pytest.raises(ValueError, match="shape"):
        retina_warp(np.zeros((2, 2, 2, 2), np.uint8))


# ----------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_zips_with_and_without_top_folder(mirror):
    kay = mirror / "kay2008_vim1_stimuli" / "kay_train_stimuli_1750_jpg.zip"
    with_top = mirror / "cowley2023_v4" / "images" / "images_190923.zip"
    shuffled_flat = mirror / "cowley2023_v4" / "images" / "images_190925.zip"
    for p in (kay, with_top, shuffled_flat):
        if not p.is_file():
            pytest.skip(f"{p} not in the mirror")
    k = ImageSet.from_zip(kay)
    assert len(k) == 1750 and k.ids[:3] == ["0", "1", "2"] and k.ids[-1] == "1749"
    assert k.load(0).shape == (128, 128, 3)
    a, b = ImageSet.from_zip(with_top), ImageSet.from_zip(shuffled_flat)
    expected = [f"image{i:04d}" for i in range(1, 1201)]
    assert a.ids == expected and b.ids == expected
    assert a.load(0).shape == (112, 112, 3)


def test_image_sets_pickle_for_worker_processes(tmp_path, rng):
    import pickle

    arrs = _write_images(tmp_path / "imgs", rng, n=3)
    members = {p.name: p.read_bytes() for p in (tmp_path / "imgs").iterdir()}
    _zip(tmp_path / "z.zip", members, top="t")
    z = ImageSet.from_zip(tmp_path / "z.zip")
    z.load(0)  # opens the archive in this process; the handle must not travel
    for s in (z, z.subset(["img10", "img0"]), z.map(retina_warp), z.resize(8),
              ImageSet.from_folder(tmp_path / "imgs")):
        s2 = pickle.loads(pickle.dumps(s))
        assert s2.ids == s.ids
        np.testing.assert_array_equal(s2.array(), s.array())
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(z)).load(1), arrs["img5"])
