"""The ``Model`` object: an eval-mode network, its preprocessing, layer aliases and a content fingerprint."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess:
    """uint8 (N, H, W, 3) -> float32 tensor (N, 3, size, size): resize the whole image, scale to [0, 1], normalise.

    The one image preprocessing of brainlike (feature extraction and GNet's pre-filter alike).
    The whole stimulus is resized (no centre crop), as in BHscore's extraction scripts:
    the network sees what the subject saw. ``size=None`` keeps each image's own resolution (GNet's
    fully convolutional trunk). Anything but uint8 pixels is refused: a float image in [0, 1]
    divided by 255 again would reach the network as a near-constant, wrongly normalised input.
    """

    def __init__(self, size, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation: str = "bilinear"):
        if size is None:
            self.size = None
        else:
            self.size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"interpolation must be one of ['bilinear', 'bicubic', 'nearest']; got {interpolation!r}")
        self.interpolation = interpolation

    def spec(self) -> dict:
        return {"kind": "resize-normalize", "size": None if self.size is None else list(self.size), "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation}

    def __repr__(self) -> str:
        return f"Preprocess(size={self.size}, mean={self.mean}, std={self.std}, interpolation={self.interpolation!r})"

    def __call__(self, images):
        import torch
        import torch.nn.functional as F

        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3); got {arr.dtype} {arr.shape}")
        x = torch.from_numpy(arr.astype(np.float32)).permute(0, 3, 1, 2).div_(255.0)  # a fresh, writable copy
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            if self.interpolation == "nearest":
                x = F.interpolate(x, size=self.size, mode="nearest")
            else:
                x = F.interpolate(x, size=self.size, mode=self.interpolation, align_corners=False, antialias=True)
                x = x.clamp_(0.0, 1.0)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


def _probe_images() -> np.ndarray:
    rng = np.random.default_rng(12345)
    return rng.integers(0, 256, size=(2, 37, 53, 3), dtype=np.uint8)


def preprocess_fingerprint(preprocess: Callable) -> str:
    """Hash of the preprocessing: its spec (when it has one) and its output on fixed probe images.

    Hashing the output catches a changed custom function even when its name is unchanged.
    """
    h = hashlib.sha256(b"brainlike.preprocess.v1")
    spec = getattr(preprocess, "spec", None)
    if callable(spec):
        h.update(json.dumps(spec(), sort_keys=True).encode())
    out = preprocess(_probe_images())
    arr = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
    h.update(str(arr.shape).encode() + str(arr.dtype).encode())
    h.update(np.ascontiguousarray(np.round(arr.astype(np.float64), 5)).tobytes())
    return h.hexdigest()


def _eval(module):
    """Eval mode, no gradients: the network is only read."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


_WEIGHTS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _state_token(module) -> tuple:
    # storage address + in-place version counter of every tensor: any write to the weights
    # (optimizer step, load_state_dict, ``p += 1`` under no_grad) bumps a version
    return tuple((name, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype), str(t.device))
                 for name, t in module.state_dict(keep_vars=True).items())


def weights_fingerprint(module) -> str:
    """SHA-256 of the module class and every parameter/buffer (names, dtypes, shapes, bytes).

    Cached per module until any tensor is replaced or modified in place.
    """
    token = _state_token(module)
    hit = _WEIGHTS_CACHE.get(module)
    if hit is not None and hit[0] == token:
        return hit[1]
    digest = _weights_digest(module)
    _WEIGHTS_CACHE[module] = (token, digest)
    return digest


def _weights_digest(module) -> str:
    """Content key (xxh3-128) of the module's class and every tensor of its state dict."""
    import torch

    from brainlike._hash import ContentHasher

    h = ContentHasher().bytes(b"brainlike.weights.v2")
    h.bytes(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.bytes(name.encode()).bytes(str(t.dtype).encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.array(t.numpy())  # dtype, shape and bytes
    return h.hexdigest()


@dataclass
class Model:
    """A network ready for feature extraction.

    ``module`` is in eval mode; ``preprocess`` maps uint8 (N, H, W, 3) to the float tensor the
    network expects; ``aliases`` maps literature layer names (e.g. ``conv1``, ``fc7``) to module paths.
    """

    module: object
    preprocess: Callable
    name: str
    pretrained: bool = False
    aliases: dict = field(default_factory=dict)
    input_size: tuple | None = None
    seed: int | None = None  # the seed random weights were drawn from (None: pretrained or not known)
    hidden: frozenset = frozenset()  # modules that are not layers (constants of a converted graph)
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """Content hash of the weights, the preprocessing and the seed of random weights (recomputed)."""
        h = hashlib.sha256(b"brainlike.Model.v1")
        h.update(weights_fingerprint(self.module).encode())
        h.update(preprocess_fingerprint(self.preprocess).encode())
        if not self.pretrained and self.seed is not None:
            h.update(f"seed={int(self.seed)}".encode())
        return h.hexdigest()

    def layers(self) -> list[str]:
        from ._layers import layers

        return layers(self)
