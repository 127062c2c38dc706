"""Image sets with stable string ids, read lazily from folders, zips, arrays, npz and HDF5.

Every image comes out as uint8 (H, W, 3): grayscale is replicated to three channels,
RGBA is composited over a mid-gray background (the usual stimulus background; PIL's
plain ``convert("RGB")`` would expose whatever colour hides under transparent pixels).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from brainlike._validate import check_inside, check_relpath

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm", ".pbm")
BACKGROUND = 128  # gray level that RGBA images are composited over

_NUM = re.compile(r"(\d+)")


def natural_key(text: str):
    """Sort key putting ``image2`` before ``image10`` (digit runs compare as numbers)."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in _NUM.split(text) if part]


def to_rgb_uint8(arr, name: str = "image") -> np.ndarray:
    """One image as uint8 (H, W, 3) from gray (H, W) / (H, W, 1), RGB or RGBA, uint8 or float in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"{name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have a non-empty height and width; got shape {a.shape}")
    if a.dtype == np.uint8:
        u = a
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN/inf values")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(
                f"{name}: float images must lie in [0, 1]; got range [{a.min():.3g}, {a.max():.3g}] "
                "(pass uint8 for 0..255 data)"
            )
        u = np.round(a * 255.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"{name}: integer images must lie in 0..255; got range [{a.min()}, {a.max()}]")
        u = a.astype(np.uint8)
    else:
        raise ValueError(f"{name} must be uint8 or float in [0, 1]; got dtype {a.dtype}")
    if u.ndim == 2:
        return np.repeat(u[:, :, None], 3, axis=2)
    if u.shape[2] == 4:
        alpha = u[:, :, 3:4].astype(np.float32) / 255.0
        rgb = u[:, :, :3].astype(np.float32) * alpha + BACKGROUND * (1.0 - alpha)
        return np.round(rgb).astype(np.uint8)
    return np.ascontiguousarray(u)


def _decode(data: bytes, label: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                arr = np.asarray(img.convert("RGBA"))
            elif img.mode in ("L", "RGB"):
                arr = np.asarray(img)
            elif img.mode in ("I;16", "I;16B", "I", "F"):
                raw = np.asarray(img, dtype=np.float64)
                arr = np.clip(raw / (65535.0 if raw.max() > 255 else 255.0), 0, 1)
            else:
                arr = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {label}: {err}") from err
    return to_rgb_uint8(arr, name=f"image {label}")


def _check_ids(ids: Sequence[str], source: str) -> list[str]:
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError(f"image set from {source} is empty: expected at least one image")
    seen: dict[str, int] = {}
    dups = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        if seen[i] == 2:
            dups.append(i)
    if dups:
        raise ValueError(f"image set from {source} has duplicate ids {dups[:5]} ({len(dups)} in all); ids must be unique")
    return ids


def _strip_common_top(names: list[str]) -> list[str]:
    parts = [PurePosixPath(n).parts for n in names]
    if parts and all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
        return [str(PurePosixPath(*p[1:])) for p in parts]
    return names


def _id_from_relpath(rel: str) -> str:
    return str(PurePosixPath(rel).with_suffix(""))


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    """A zip member stored as a Unix symbolic link (S_IFLNK in the external attributes)."""
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _is_image_name(name: str) -> bool:
    p = PurePosixPath(name)
    if any(part.startswith(".") or part == "__MACOSX" for part in p.parts):
        return False
    return p.suffix.lower() in IMAGE_EXTENSIONS


class ImageSet:
    """An ordered set of images with unique string ids, decoded on demand.

    Build one with ``from_folder``, ``from_zip``, ``from_array``, ``from_npz`` or ``from_hdf5``.
    Images are read only when asked for, so a set of thousands of files costs no memory.
    """

    def __init__(self, ids: Sequence[str], loader: Callable[[int], np.ndarray], name: str = "", source: str = ""):
        self._ids = _check_ids(ids, source or name or "input")
        self._loader = loader
        self.name = name
        self.source = source
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_folder(cls, path, name: str | None = None, recursive: bool = True) -> ImageSet:
        """Images under ``path`` (sub-folders included); ids are the relative paths without extension.

        A file that resolves outside ``path`` (a symbolic link out of the folder) is refused, naming it."""
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"path must be an existing folder of images; got {str(path)!r}")
        pattern = "**/*" if recursive else "*"
        rels = [p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()]
        rels = [r for r in rels if _is_image_name(r)]
        for r in rels:  # an id names a file: it must stay inside the folder, symlinks resolved
            check_relpath(r, f"image file of {root}")
            check_inside(root / r, root, f"image file of {root}")
        if not rels:
            raise ValueError(f"image set from {root} is empty: no files ending in {', '.join(IMAGE_EXTENSIONS)}")
        ids = [_id_from_relpath(r) for r in rels]
        _check_ids(ids, str(root))
        order = sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))
        files = [str(root / rels[i]) for i in order]
        load = _FolderLoader(files)

        return cls([ids[i] for i in order], load, name=name or root.name, source=str(root))

    @classmethod
    def from_zip(cls, path, name: str | None = None) -> ImageSet:
        """Images in a zip archive, members in any order, with or without one top folder.

        Member names become ids, and ids name files (``export_bhscore``): an absolute name, a drive
        letter, a backslash, a ``..`` component or a symbolic link is refused, naming the member."""
        zpath = Path(path)
        if not zpath.is_file():
            raise FileNotFoundError(f"path must be an existing .zip file; got {str(path)!r}")
        try:
            with zipfile.ZipFile(zpath) as zf:
                infos = zf.infolist()
        except zipfile.BadZipFile as err:
            raise ValueError(f"cannot read zip archive {zpath}: {err}") from err
        for m in infos:  # zip slip: a member name becomes an id, and ids name files (export_bhscore)
            check_relpath(m.filename.rstrip("/") if m.is_dir() else m.filename, f"member of {zpath}")
            if _is_symlink(m):
                raise ValueError(f"member of {zpath} {m.filename!r} is a symbolic link; image zips must hold files")
        members = [m.filename for m in infos if not m.is_dir() and _is_image_name(m.filename)]
        if not members:
            raise ValueError(f"image set from {zpath} is empty: no image members ({', '.join(IMAGE_EXTENSIONS)})")
        ids = [_id_from_relpath(r) for r in _strip_common_top(members)]
        _check_ids(ids, str(zpath))
        order = sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))
        load = _ZipLoader(zpath, [members[i] for i in order])

        return cls([ids[i] for i in order], load, name=name or zpath.stem, source=str(zpath))

    @classmethod
    def from_array(cls, array, ids: Sequence[str] | None = None, name: str = "array") -> ImageSet:
        """In-memory images (N, H, W[, C]) with C in 1, 3, 4; uint8 or float in [0, 1]. Copied."""
        arr = np.asarray(array)
        if arr.ndim not in (3, 4):
            raise ValueError(f"array must be (N, H, W) or (N, H, W, C); got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError("image set from array is empty: expected at least one image")
        imgs = np.stack([to_rgb_uint8(arr[i], name=f"array[{i}]") for i in range(arr.shape[0])])
        imgs.setflags(write=False)
        if ids is None:
            ids = [str(i) for i in range(arr.shape[0])]
        ids = [str(i) for i in ids]
        if len(ids) != arr.shape[0]:
            raise ValueError(f"ids must have one entry per image ({arr.shape[0]}); got {len(ids)}")
        return cls(ids, _ArrayLoader(imgs), name=name, source=name)

    @classmethod
    def from_npz(cls, path, key: str | None = None, ids_key: str | None = None, name: str | None = None) -> ImageSet:
        """Images stored under ``key`` of an ``.npz`` file (the only array when ``key`` is None)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"path must be an existing .npz file; got {str(path)!r}")
        try:
            arr, ids = _read_npz(p, key, ids_key)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:  # truncated or not an npz at all
            raise ValueError(f"cannot read {p} as an .npz file (damaged or truncated?): {err}") from None
        return cls.from_array(arr, ids=ids, name=name or p.stem)

    @classmethod
    def from_hdf5(cls, path, dataset: str, ids_dataset: str | None = None, name: str | None = None) -> ImageSet:
        """Images in an HDF5 dataset (N, H, W[, C]), read one image at a time."""
        import h5py

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"path must be an existing HDF5 file; got {str(path)!r}")
        try:
            f = h5py.File(p, "r")
        except OSError as err:  # truncated or not HDF5
            raise ValueError(f"cannot read {p} as an HDF5 file (damaged or truncated?): {' '.join(str(err).split())}") \
                from None
        with f:
            if dataset not in f:
                avail = []
                f.visititems(lambda n, o: avail.append(n) if isinstance(o, h5py.Dataset) else None)
                raise ValueError(f"dataset must be one of {avail} in {p}; got {dataset!r}")
            shape = f[dataset].shape
            if len(shape) not in (3, 4) or shape[0] == 0:
                raise ValueError(f"dataset {dataset!r} must be (N, H, W[, C]) with N > 0; got shape {shape}")
            ids = None
            if ids_dataset is not None:
                raw = f[ids_dataset][()]
                ids = [i.decode() if isinstance(i, bytes) else str(i) for i in np.ravel(raw)]
        if ids is None:
            ids = [str(i) for i in range(shape[0])]
        if len(ids) != shape[0]:
            raise ValueError(f"ids_dataset must have one entry per image ({shape[0]}); got {len(ids)}")
        load = _HDF5Loader(p, dataset)

        return cls(ids, load, name=name or p.stem, source=f"{p}:{dataset}")

    # ------------------------------------------------------------------ access
    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ImageSet(name={self.name!r}, n={len(self)}, first ids={self._ids[:3]})"

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (H, W, 3)."""
        n = len(self._ids)
        if not -n <= int(i) < n:
            raise IndexError(f"image index must be in [0, {n}); got {i}")
        img = self._loader(int(i) % n)
        return to_rgb_uint8(img, name=f"image {self._ids[int(i) % n]!r}")

    def image(self, i: int):
        """Image ``i`` as a PIL RGB image."""
        from PIL import Image

        return Image.fromarray(self.load(i), mode="RGB")

    def array(self, indices=None) -> np.ndarray:
        """uint8 (N, H, W, 3) of the images at ``indices`` (all when None); sizes must agree."""
        idx = range(len(self)) if indices is None else [int(i) for i in np.atleast_1d(indices)]
        imgs = [self.load(i) for i in idx]
        if not imgs:
            return np.zeros((0, 0, 0, 3), np.uint8)
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            raise ValueError(
                f"images of {self.name!r} differ in size ({sorted(shapes)[:4]}); "
                "resize them first, e.g. imageset.resize((224, 224))"
            )
        return np.stack(imgs)

    def subset(self, ids: Sequence[str], name: str | None = None) -> ImageSet:
        """The images with these ids, in the given order (``brainlike.ids.align``: error naming unknown ids)."""
        from brainlike.ids import align

        index = align(self._ids, ids, source=f"image set {self.name!r}", wanted="the requested ids").tolist()
        ids = [self._ids[i] for i in index]
        return ImageSet(ids, _SubsetLoader(self._loader, index), name=name or self.name, source=self.source)

    def map(self, fn: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> ImageSet:
        """A lazily transformed copy: ``fn`` maps uint8 (H, W, 3) to an image, applied on read."""
        label = name or f"{self.name}|{getattr(fn, '__name__', 'map')}"
        load = _MapLoader(self, fn, label)

        return ImageSet(self._ids, load, name=label, source=self.source)

    def resize(self, size, name: str | None = None) -> ImageSet:
        """Every image resized (bicubic) to ``size`` = (height, width) or one int."""
        from PIL import Image

        h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive (height, width); got {size!r}")

        return self.map(_Resize(h, w), name=name or f"{self.name}|resize{h}x{w}")

    def verify(self) -> None:
        """Decode every image once (fails naming the first unreadable file)."""
        for i in range(len(self)):
            self.load(i)

    def fingerprint(self) -> str:
        """Content key (xxh3-128) of the ids and the decoded pixels, in order; cached.

        Images are decoded by a few threads (the decoders release the GIL) and hashed in order, so
        the key costs about one pass of decoding spread over the cores, not a second serial one.
        """
        if self._fingerprint is None:
            from concurrent.futures import ThreadPoolExecutor

            from brainlike._hash import ContentHasher

            h = ContentHasher().bytes(b"brainlike.ImageSet.v2")
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                for k, img in zip(self._ids, pool.map(self.load, range(len(self._ids)))):
                    h.bytes(k.encode()).array(np.ascontiguousarray(img))
            self._fingerprint = h.hexdigest()
        return self._fingerprint


# Loaders are small picklable classes (not closures) so that image sets travel to worker
# processes (multiprocessing, Dask); open file handles are per process and never pickled.
class _FolderLoader:
    def __init__(self, files):
        self.files = files

    def __call__(self, i: int) -> np.ndarray:
        try:
            with open(self.files[i], "rb") as fh:
                data = fh.read()
        except OSError as err:
            raise ValueError(f"cannot read image {self.files[i]}: {err}") from err
        return _decode(data, self.files[i])


class _ZipLoader:
    def __init__(self, path: Path, members: list[str]):
        self.path, self.members = path, members
        self._handle, self._pid = None, None

    def __getstate__(self):
        return {"path": self.path, "members": self.members, "_handle": None, "_pid": None}

    def __call__(self, i: int) -> np.ndarray:
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = zipfile.ZipFile(self.path), os.getpid()
        label = f"{self.members[i]} in {self.path}"
        try:
            data = self._handle.read(self.members[i])
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"cannot read image {label}: {err}") from err
        return _decode(data, label)


class _ArrayLoader:
    def __init__(self, images: np.ndarray):
        self.images = images

    def __call__(self, i: int) -> np.ndarray:
        return self.images[i]


class _HDF5Loader:
    def __init__(self, path: Path, dataset: str):
        self.path, self.dataset = path, dataset
        self._handle, self._pid = None, None

    def __getstate__(self):
        return {"path": self.path, "dataset": self.dataset, "_handle": None, "_pid": None}

    def __call__(self, i: int) -> np.ndarray:
        import h5py

        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = h5py.File(self.path, "r"), os.getpid()
        return to_rgb_uint8(self._handle[self.dataset][i], name=f"{self.path}:{self.dataset}[{i}]")


class _SubsetLoader:
    def __init__(self, parent, index: list[int]):
        self.parent, self.index = parent, index

    def __call__(self, i: int) -> np.ndarray:
        return self.parent(self.index[i])


class _MapLoader:
    def __init__(self, parent: ImageSet, fn, label: str):
        self.parent, self.fn, self.label = parent, fn, label

    def __call__(self, i: int) -> np.ndarray:
        return to_rgb_uint8(self.fn(self.parent.load(i)), name=f"{self.label}({self.parent._ids[i]!r})")


class _Resize:
    def __init__(self, h: int, w: int):
        self.h, self.w = h, w

    def __call__(self, img: np.ndarray) -> np.ndarray:
        from PIL import Image

        if img.shape[:2] == (self.h, self.w):
            return img
        return np.asarray(Image.fromarray(img).resize((self.w, self.h), Image.BICUBIC))


def _read_npz(p, key, ids_key):
    with np.load(p, allow_pickle=False) as data:
        keys = list(data.keys())
        if key is None:
            if len(keys) != 1:
                raise ValueError(f"key must name the image array of {p}; available keys: {keys}")
            key = keys[0]
        if key not in keys:
            raise ValueError(f"key must be one of {keys} in {p}; got {key!r}")
        arr = data[key]
        ids = None
        if ids_key is not None:
            if ids_key not in keys:
                raise ValueError(f"ids_key must be one of {keys} in {p}; got {ids_key!r}")
            ids = [str(i) for i in data[ids_key].tolist()]
    return arr, ids
