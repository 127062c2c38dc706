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
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from brainlike._backend import resolve_device
from brainlike._estimator import RenamedParams, TargetScoreMixin, accepts_renamed
from brainlike._zscore import train_stats
from brainlike.folds import kfold
from brainlike._validate import as_2d_float, check_choice, check_positive
from brainlike.encoding.fwrf import column_score
from brainlike.encoding.gnet_inputs import (  # noqa: F401  (re-exported)
    CHECKPOINT_FORMAT,
    SubjectResponses,
    _is_brain,
    _load_checkpoint,
    _normalise_responses,
    _save_checkpoint,
    _subject_rois,
    _subjects,
)
from brainlike.encoding.gnet_modules import (  # noqa: F401  (re-exported)
    ImagePreprocess,
    PrefilteredImages,
    _build_modules,
    _images_array,
    _modules,
    _torch,
    alexnet_prefilter,
    efficientnet_prefilter,
    logtanh_np,
    make_prefilter,
)


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
