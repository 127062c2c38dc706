"""Content keys cover the whole content: any changed element changes the key."""

import numpy as np

from brainlike import _hash


class Handle:
    def __init__(self, arr):
        self.arr, self.shape = arr, arr.shape

    def read(self, units):
        return self.arr[:, units]


def test_every_element_changes_the_key():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 40)).astype(np.float32)
    base = _hash.hash_arrays(a)
    for i, j in [(0, 0), (3, 17), (6, 39), (2, 8)]:
        b = a.copy()
        b[i, j] += 1e-3
        assert _hash.hash_arrays(b) != base
        assert _hash.hash_handle(Handle(b)) != _hash.hash_handle(Handle(a))


def test_dtype_and_shape_in_key():
    a = np.arange(12, dtype=np.float32)
    assert _hash.hash_arrays(a) != _hash.hash_arrays(a.reshape(3, 4))
    assert _hash.hash_arrays(a) != _hash.hash_arrays(a.astype(np.float64))


def test_blocked_equals_whole(monkeypatch, tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 30)).astype(np.float32)
    whole = _hash.hash_arrays(a)
    path = tmp_path / "a.npy"
    np.save(path, a)
    monkeypatch.setattr(_hash, "BLOCK_BYTES", 256)  # forces row blocks
    assert _hash.hash_arrays(np.load(path, mmap_mode="r")) == whole
    h = Handle(a)
    assert _hash.ContentHasher().handle(h, units_per_block=7).hexdigest() == \
        _hash.ContentHasher().handle(h, units_per_block=30).hexdigest()


def test_string_arrays_and_json():
    assert _hash.hash_arrays(np.array(["ab", "c"])) != _hash.hash_arrays(np.array(["a", "bc"]))
    assert _hash.hash_json({"a": 1, "b": 2}) == _hash.hash_json({"b": 2, "a": 1})
