"""The jobs of an encoding study, run by the pipeline's executor (``pipeline.execute.run_jobs``).

Granularity: fwRF, ridge and PLS are one job per (model, subject, fold), fitted on all of the
subject's voxels (the union of its ROIs) at once, as the single-process study did and as
nsd_gnet8x fits fwRF: fwRF pays its shared work (pooling, Gram matrices and their
eigendecompositions, independent of the number of voxels) once per subject instead of once per
ROI; a voxel in two ROIs is fitted once, so its rows in both ROIs agree; PLS's components are
shared by every voxel of the fit, so fits per ROI would be other models; and the results are
bitwise those of one fit over all voxels (fits per ROI differ in float32 rounding). ROIs enter
only when the fits are scored. GNet8j and GNet8r are one job per fold: they train one network
jointly over every subject's voxels (GNet8r with a readout per ROI), so a fit cannot be split.
When the study asks for the tuning, the fwRF job of fold 0 also writes the tuning of its voxels
(kind ``fwrf_tuning``), since it needs the fitted model.

The study's context (:class:`StudyContext`: settings, per-subject arrays, the feature-map handles
of the study's feature store, the images) is pickled once into the work folder; a worker process
reads it there and runs each job with :meth:`StudyContext.run_job`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainlike._zscore import train_stats
from brainlike.pipeline.jobs import Job, register_kind
from brainlike.pipeline.store import load_npz, save_npz

VOXELWISE = ("fwrf", "ridge", "pls")  # one job per (subject, fold), every voxel of the subject
JOINT = {"gnet8j": "joint", "gnet8r": "roi"}  # one job per fold, every subject together
TUNING_COLUMNS = "tuning__"  # prefix of the tuning table's columns in a fwrf_tuning result

for _kind in ("ridge", "pls"):
    register_kind(_kind, ("pred", "eval_rows"))
register_kind("fwrf", ("pred", "eval_rows", "fields"))
register_kind("fwrf_tuning", ("pred", "eval_rows", "fields", TUNING_COLUMNS + "voxel"))
for _kind in JOINT:
    register_kind(_kind, ("subjects",))


def fold_name(k: int) -> str:
    return f"fold{k}"


# ---------------------------------------------------------------------------------------------- models
def device_of(study) -> str:
    if study.device != "auto":
        return study.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def network(study):
    from brainlike import models

    n = study.network
    model = models.load(n["model"], pretrained=bool(n.get("pretrained", True)), seed=int(n.get("seed", 0)))
    size = n.get("input_size")
    if size is None:
        return model
    import dataclasses

    pre = model.preprocess  # images shown at their own size (e.g. NSD's 227 px crops) instead of the net's default
    return dataclasses.replace(model, input_size=(int(size), int(size)),
                               preprocess=models.Preprocess(int(size), mean=pre.mean, std=pre.std,
                                                            interpolation=pre.interpolation))


def feature_maps(study, images, store) -> list:
    """The study's layers extracted into its feature store: handles, read as maps by each worker."""
    from brainlike import features

    fs = features.extract(network(study), images, list(study.network["layers"]), store=store, progress=False)
    return [fs[layer] for layer in study.network["layers"]]


def _fit_fwrf(study, maps, Y, fit, ev):
    from brainlike.encoding.fwrf import FWRF, rf_grid

    opts = dict(study.fwrf)
    grid = opts.pop("grid", {})
    cand = rf_grid(**grid) if isinstance(grid, dict) else np.asarray(grid, dtype=np.float64)
    device = device_of(study)
    model = FWRF(cand, random_state=study.seed, backend="torch" if device == "cuda" else "numpy",
                 device=device if device == "cuda" else None, **opts)
    model.fit([m[fit] for m in maps], Y[fit])
    return model, model.predict([m[ev] for m in maps])


def _layer_matrix(study, options: dict, maps, fit):
    """One layer's maps flattened to (images, units), z-scored with the fitting images' statistics."""
    layers = list(study.network["layers"])
    X = maps[layers.index(options.pop("layer", layers[len(layers) // 2]))]
    X = X.reshape(len(X), -1)
    # a constant unit gets scale 1 (brainlike._zscore): it carries nothing and stays 0 after centring
    return train_stats(X[fit], what="units").apply(X)


def _fit_ridge(study, maps, Y, fit, ev):
    from brainlike.linear import RidgeCV

    opts = dict(study.ridge)
    X = _layer_matrix(study, opts, maps, fit)
    alphas = np.asarray(opts.pop("alphas", np.logspace(-1, 5, 13)), dtype=np.float64)
    model = RidgeCV(alphas=alphas, alpha_per_target=True, **opts).fit(X[fit], Y[fit])
    return model, model.predict(X[ev])


def _fit_pls(study, maps, Y, fit, ev):
    from brainlike.linear import PLSCV

    opts = dict(study.pls)
    X = _layer_matrix(study, opts, maps, fit)
    model = PLSCV(**{"n_components": (1, 2, 4, 8, 16), **opts}).fit(X[fit], Y[fit])
    return model, model.predict(X[ev])


FITTERS = {"fwrf": _fit_fwrf, "ridge": _fit_ridge, "pls": _fit_pls}


def gnet(study, mode, checkpoints):
    from brainlike.encoding.gnet import GNet, alexnet_prefilter, efficientnet_prefilter

    opts = dict(study.gnet)
    prefilter = opts.pop("prefilter", "alexnet")
    pretrained = bool(study.network.get("pretrained", True))
    if prefilter == "alexnet":
        pf = alexnet_prefilter(pretrained=pretrained, seed=int(study.network.get("seed", 0)))
    elif prefilter == "efficientnet_lite0":
        pf = efficientnet_prefilter(pretrained=pretrained)
    else:
        raise ValueError(f"config key 'gnet.prefilter': must be alexnet or efficientnet_lite0; got {prefilter!r}")
    return GNet(pf, mode=mode, random_state=study.seed, device=device_of(study), checkpoint_dir=checkpoints,
                progress=False, **opts)


def tuning_table(study, est, ev_maps, Y_ev, subject: str):
    """Layer-wise and bipartite tuning of a fitted fwRF on its evaluation images, partitions named by layer."""
    import pandas as pd

    from brainlike.encoding.analyses import bipartite_partitions, layer_partitions, n_readout_features, tuning_analysis

    names = list(study.network["layers"])
    parts_of = []
    for kind, parts in (("layer", layer_partitions(est, names=names)),
                        ("bipartite", bipartite_partitions(est, names=names))):
        res = tuning_analysis(lambda mask: est.predict(ev_maps, feature_mask=mask), Y_ev, parts,
                              n_readout_features(est))
        t = res.table()
        t.insert(0, "analysis", kind)
        t.insert(0, "subject", subject)
        parts_of.append(t)
    return pd.concat(parts_of, ignore_index=True)


# ---------------------------------------------------------------------------------------------- context
@functools.lru_cache(maxsize=4)
def _subject_arrays(path: str) -> dict:
    return load_npz(path)


@dataclass
class StudyContext:
    """Everything a job of the study needs, pickled once into the work folder.

    subjects: {subject: .npz with ``Y`` (repetition-averaged responses), ``rows`` (row of each sample
    in ``images``), ``fit_<k>``/``eval_<k>`` (sample positions of fold k) and ``roi_<name>`` masks};
    maps: the feature store's layer handles (None without fwRF/ridge/PLS); images: the union of the
    subjects' images (GNets).
    """

    workdir: str
    study: object  # EncodingStudy
    sig: str
    subjects: dict
    n_folds: int
    images: object
    maps: list | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}  # a worker's maps stay with it
        return state

    def arrays(self, subject: str) -> dict:
        return _subject_arrays(self.subjects[subject])

    def layer_maps(self) -> list[np.ndarray]:
        if "maps" not in self._cache:
            self._cache["maps"] = [np.ascontiguousarray(h.maps(), dtype=np.float32) for h in self.maps]
        return self._cache["maps"]

    def checkpoints(self, model: str, k: int) -> Path:
        return Path(self.workdir) / f"{model}-{self.sig}" / f"{fold_name(k)}-checkpoints"

    def plan(self) -> list[Job]:
        """Every fit of the study: per (model, subject, fold) or, for the GNets, per fold."""
        st = self.study
        jobs = []
        for k in range(self.n_folds):
            for model in VOXELWISE:
                if model not in st.models:
                    continue
                kind = "fwrf_tuning" if model == "fwrf" and k == 0 and "tuning" in st.analyses else model
                jobs += [Job(kind, "", fold_name(k), str(s), sig=self.sig) for s in self.subjects]
            jobs += [Job(model, "", fold_name(k), sig=self.sig) for model in JOINT if model in st.models]
        return jobs

    def run_job(self, job: Job) -> Path:
        out = job.path(self.workdir)
        if out.is_file():
            return out
        k = int(job.layer.removeprefix("fold"))
        if job.kind in JOINT:
            self._run_gnet(job.kind, k, out)
        else:
            self._run_voxelwise(job, k, out)
        return out

    def _run_voxelwise(self, job: Job, k: int, out: Path) -> None:
        a = self.arrays(job.subject)
        model = "fwrf" if job.kind == "fwrf_tuning" else job.kind
        fit, ev = a[f"fit_{k}"], a[f"eval_{k}"]
        maps = [m[a["rows"]] for m in self.layer_maps()]
        est, pred = FITTERS[model](self.study, maps, a["Y"], fit, ev)
        extra = {}
        if model == "fwrf":  # each voxel's chosen pooling field (x, y, sigma), image width 1
            extra["fields"] = np.stack([est.rf_x_, est.rf_y_, est.rf_sigma_], axis=1)
        if job.kind == "fwrf_tuning":
            t = tuning_table(self.study, est, [m[ev] for m in maps], a["Y"][ev], job.subject)
            for c in t.columns:  # names as text arrays: a result file holds no pickled objects
                v = t[c].to_numpy()
                extra[TUNING_COLUMNS + c] = v.astype(str) if v.dtype == object else v
        save_npz(out, pred=np.asarray(pred, np.float32), eval_rows=ev, **extra)

    def _run_gnet(self, model: str, k: int, out: Path) -> None:
        from brainlike.encoding.gnet import PrefilteredImages

        subs = {s: self.arrays(s) for s in self.subjects}
        g = gnet(self.study, JOINT[model], self.checkpoints(model, k))
        pre = g.prefilter_images(self.images)
        rois = {s: {r: a[f"roi_{r}"] for r in self.study.rois} for s, a in subs.items()}
        g.fit(pre, {s: a["Y"][a[f"fit_{k}"]] for s, a in subs.items()},
              image_index={s: a["rows"][a[f"fit_{k}"]] for s, a in subs.items()},
              rois=rois if JOINT[model] == "roi" else None)
        done = {"subjects": np.asarray(list(subs), dtype=str)}
        for s, a in subs.items():
            ev = a[f"eval_{k}"]
            done[f"pred_{s}"] = g.predict(PrefilteredImages(pre.maps[a["rows"][ev]]), subject=s)
            done[f"rows_{s}"] = ev
        save_npz(out, **done)
