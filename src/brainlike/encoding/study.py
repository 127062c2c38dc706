"""Encoding studies (St-Yves et al. 2022): fwRF, GNet8j, GNet8r and ridge on the same images, folds and voxels.

``run_encoding_study(config, out)`` (``brainlike encode CONFIG --out DIR``) fits every requested
model per (model, subject, fold) — GNet8j and GNet8r jointly over subjects, per fold — and writes
each fit's predictions atomically (a job is done iff its file is there and reads back whole, so a
killed study resumes where it stopped; a damaged file is set aside and recomputed). It then scores
every voxel (Pearson r, R², and R² over the NSD noise ceiling where the data carry ``ncsnr``) and
runs the paper's analyses: the model comparison, the transfer matrix of GNet8r, the layer-wise and
bipartite tuning of fwRF named by the network's layers, and synthetic transfer. Folds are the
shared-1000 validation images (``validation: shared1000``, the data's ``test`` split, as the seed
does) or K folds over the training images (``validation: {kfold: K}``). Responses are averaged over
repetitions of an image before fitting; every pairing of responses and images is by stimulus id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._hash import ContentHasher
from brainlike._zscore import train_stats

__all__ = ["ENCODING_MODELS", "EncodingStudy", "EncodingStudyResult", "load_encoding_config", "run_encoding_study"]

log = logging.getLogger("brainlike")

ENCODING_MODELS = ("fwrf", "ridge", "pls", "gnet8j", "gnet8r")
ANALYSES = ("comparison", "transfer", "tuning", "synthetic_transfer")


@dataclass
class EncodingStudy:
    """A validated encoding-study configuration (``docs/encoding.md`` lists every key)."""

    dataset: dict
    subjects: list
    rois: list
    network: dict
    models: list = field(default_factory=lambda: ["fwrf", "ridge", "gnet8j", "gnet8r"])
    validation: object = "shared1000"
    analyses: list = field(default_factory=lambda: ["comparison", "transfer", "tuning"])
    fwrf: dict = field(default_factory=dict)
    ridge: dict = field(default_factory=dict)
    pls: dict = field(default_factory=dict)
    gnet: dict = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0

    @property
    def kfold(self) -> int | None:
        return int(self.validation["kfold"]) if isinstance(self.validation, dict) else None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _need(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"config key {key!r}: {msg}")


def load_encoding_config(config) -> EncodingStudy:
    """An ``EncodingStudy`` from a YAML file, a dict or an ``EncodingStudy``, every key checked."""
    if isinstance(config, EncodingStudy):
        return config
    if not isinstance(config, dict):
        import yaml

        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config: {path} not found")
        config = yaml.safe_load(path.read_text())
        _need(isinstance(config, dict), "config", f"{path} must hold a mapping of keys")
    known = [f.name for f in fields(EncodingStudy)]
    unknown = sorted(set(config) - set(known))
    _need(not unknown, unknown[0] if unknown else "", f"unknown key; valid keys: {known}")
    for key in ("dataset", "subjects", "rois", "network"):
        _need(key in config, key, "missing")
    ds = config["dataset"]
    _need(isinstance(ds, dict) and "name" in ds and set(ds) <= {"name", "data_dir", "options"}, "dataset",
          "must be a mapping with 'name' and optional 'data_dir' (your folder) and 'options'")
    subjects = config["subjects"]
    _need(isinstance(subjects, list) and len(subjects) >= 1, "subjects", "must list at least one subject")
    rois = config["rois"]
    _need(isinstance(rois, list) and rois and all(isinstance(r, str) for r in rois), "rois", "must list ROI names")
    net = config["network"]
    _need(isinstance(net, dict) and "model" in net and isinstance(net.get("layers"), list) and net["layers"],
          "network", "must give 'model' and a non-empty 'layers' list")
    bad = sorted(set(net) - {"model", "layers", "pretrained", "seed", "input_size"})
    _need(not bad, "network", f"unknown option(s) {bad}; valid: model, layers, pretrained, seed, input_size")
    size = net.get("input_size")
    _need(size is None or (isinstance(size, int) and size >= 16), "network.input_size",
          f"must be an integer >= 16 (pixels); got {size!r}")
    models = config.get("models", ["fwrf", "ridge", "gnet8j", "gnet8r"])
    bad = [m for m in models] if not isinstance(models, list) else [m for m in models if m not in ENCODING_MODELS]
    _need(isinstance(models, list) and models and not bad, "models",
          f"must list models among {list(ENCODING_MODELS)}; got {bad or models}")
    analyses = config.get("analyses", ["comparison", "transfer", "tuning"])
    bad = [a for a in analyses if a not in ANALYSES]
    _need(not bad, "analyses", f"must be among {list(ANALYSES)}; got {bad}")
    if {"transfer", "synthetic_transfer"} & set(analyses):
        _need("gnet8r" in models, "analyses", "transfer and synthetic_transfer need gnet8r in 'models'")
        _need(len(rois) >= 2, "analyses", "transfer needs at least 2 ROIs")
    if "tuning" in analyses:
        _need("fwrf" in models, "analyses", "tuning needs fwrf in 'models'")
    val = config.get("validation", "shared1000")
    ok = val == "shared1000" or (isinstance(val, dict) and set(val) == {"kfold"} and isinstance(val["kfold"], int)
                                 and val["kfold"] >= 2)
    _need(ok, "validation", f"must be 'shared1000' or {{kfold: K}} with K >= 2; got {val!r}")
    device = config.get("device", "auto")
    _need(device in ("auto", "cpu", "cuda"), "device", f"must be auto, cpu or cuda; got {device!r}")
    for key in ("fwrf", "ridge", "pls", "gnet"):
        _need(isinstance(config.get(key, {}), dict), key, "must be a mapping of options")
    for key in ("ridge", "pls"):
        layer = config.get(key, {}).get("layer")
        _need(layer is None or layer in net["layers"], f"{key}.layer",
              f"{layer!r} is not among network.layers {net['layers']}")
    return EncodingStudy(dataset=dict(ds), subjects=list(subjects), rois=list(rois), network=dict(net),
                         models=list(models), validation=val, analyses=list(analyses),
                         fwrf=dict(config.get("fwrf", {})), ridge=dict(config.get("ridge", {})),
                         pls=dict(config.get("pls", {})), gnet=dict(config.get("gnet", {})), device=device, seed=int(config.get("seed", 0)))


@dataclass
class EncodingStudyResult:
    """Tables of a study: ``voxels`` (one row per model, subject, ROI, voxel), ``comparison`` (per
    model and ROI), ``transfer`` (source x target ROI), ``tuning`` (per voxel and partition),
    ``fields`` (fwRF pooling field per voxel and fold). The HTML report is ``out/report/index.html``."""

    voxels: pd.DataFrame
    comparison: pd.DataFrame
    transfer: pd.DataFrame | None = None
    tuning: pd.DataFrame | None = None
    synthetic_transfer: pd.DataFrame | None = None
    fields: pd.DataFrame | None = None
    out: Path | None = None

    def summary(self) -> str:
        """Mean voxel r per model and ROI (and the transfer matrix), as printed by the command."""
        lines = ["mean voxel r (model x ROI):",
                 self.comparison.pivot(index="model", columns="roi", values="mean_r").to_string(
                     float_format=lambda v: f"{v:.3f}")]
        if self.transfer is not None:
            lines += ["transfer matrix (source ROI x target ROI, accuracy relative to the target's own GNet8r):",
                      self.transfer.to_string(float_format=lambda v: f"{v:.2f}")]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# data
def _load_subjects(study: EncodingStudy, brain=None) -> dict:
    from brainlike import datasets

    if brain is not None:
        items = {str(k): v for k, v in dict(brain).items()}
    else:
        ds = study.dataset
        opts = dict(ds.get("options") or {})
        opts.setdefault("roi", list(study.rois))
        opts.setdefault("stimuli", True)
        items = {str(s): datasets.load(ds["name"], data_dir=ds.get("data_dir"), subject=s, **opts)
                 for s in study.subjects}
    out = {}
    for s in map(str, study.subjects):
        if s not in items:
            raise ValueError(f"config key 'subjects': {s!r} not in the brain data; available: {list(items)}")
        d = items[s]
        missing = [r for r in study.rois if r not in d.rois]
        if missing:
            raise ValueError(f"config key 'rois': {missing} not found for subject {s!r}; available: {list(d.rois)}")
        empty = [r for r in study.rois if not np.asarray(d.rois[r]).any()]
        if empty:
            raise ValueError(f"config key 'rois': {empty} of subject {s!r} have no voxels")
        if d.stimuli is None:
            raise ValueError(f"subject {s!r}: the brain data carry no images (BrainData.stimuli)")
        out[s] = d
    return out


def _folds(study: EncodingStudy, data) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, eval) positions into the repetition-averaged samples of one subject."""
    split = np.asarray(data.split).astype(str) if data.split is not None else None
    if study.kfold is None:
        if split is None or not {"train", "test"} <= set(split.tolist()):
            raise ValueError("config key 'validation': shared1000 needs the data's test split (NSD shared-1000 "
                             "images); use validation: {kfold: K} otherwise")
        return [(np.flatnonzero(split == "train"), np.flatnonzero(split == "test"))]
    from brainlike.mapping.splits import make_splits

    train = np.flatnonzero(split != "test") if split is not None else np.arange(data.n_samples)
    splits = make_splits(train.size, None, scheme="cv", cv=study.kfold, seed=study.seed)
    return [(train[f.fit], train[f.predict["cv"]]) for f in splits.fits]


class _UnionLoader:
    """Image i of a union of image sets: (set, position) per image; picklable for worker processes."""

    def __init__(self, sets: list, where: list[tuple[int, int]]):
        self.sets, self.where = sets, where

    def __call__(self, i: int) -> np.ndarray:
        k, j = self.where[i]
        return self.sets[k].load(j)


def _union_images(stimuli: dict, ids: list[str]):
    """The images ``ids`` drawn from the subjects' image sets (an id shown to several subjects is one image)."""
    from brainlike.ids import align
    from brainlike.stimuli import ImageSet

    sets = list(stimuli.values())
    where: dict[str, tuple[int, int]] = {}
    for k, st in enumerate(sets):
        for j, i in enumerate(st.ids):
            where.setdefault(str(i), (k, j))
    align(list(where), ids, source="the images of the brain data", wanted="the responses")  # names what is missing
    return ImageSet(ids, _UnionLoader(sets, [where[i] for i in ids]), name=getattr(sets[0], "name", "images"))


def _signature(study: EncodingStudy, subjects: dict) -> str:
    """Content key of the fits: settings + every response, id and image (jobs of another key are not reused)."""
    h = ContentHasher().json({k: getattr(study, k) for k in ("network", "fwrf", "ridge", "pls", "gnet",
                                                               "validation", "seed", "rois")})
    for s, d in subjects.items():
        h.json(s).array(np.asarray(d.stimulus_ids).astype(str)).array(np.asarray(d.responses))
        for r in study.rois:
            h.array(np.asarray(d.rois[r], bool))
        h.json(d.stimuli.fingerprint())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# models
def _device(study) -> str:
    if study.device != "auto":
        return study.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _network(study):
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


def _maps(study, net, images, store) -> list[np.ndarray]:
    from brainlike import features

    fs = features.extract(net, images, list(study.network["layers"]), store=store, progress=False)
    return [np.ascontiguousarray(fs[layer].maps(), dtype=np.float32) for layer in study.network["layers"]]


def _fit_fwrf(study, maps, Y, fit, ev):
    from brainlike.encoding.fwrf import FWRF, rf_grid

    opts = dict(study.fwrf)
    grid = opts.pop("grid", {})
    cand = rf_grid(**grid) if isinstance(grid, dict) else np.asarray(grid, dtype=np.float64)
    device = _device(study)
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


def _gnet(study, mode, checkpoints):
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
    return GNet(pf, mode=mode, random_state=study.seed, device=_device(study), checkpoint_dir=checkpoints, progress=False,
                **opts)


def _finished(path: Path, read):
    """``read(path)`` of a finished job or analysis file, or None when it is absent; a damaged file is
    moved aside (``.corrupt``, named in a warning) and None returned, so its work runs again."""
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as err:
        bad = path.with_name(path.name + ".corrupt")
        path.replace(bad)
        log.warning("encoding study: %s could not be read (%s); moved to %s and recomputed", path, err, bad.name)
        return None


def _job_result(path: Path):
    """A finished fit's arrays, or None (see :func:`_finished`)."""
    from brainlike.pipeline.store import load_npz

    return _finished(path, load_npz)


# ---------------------------------------------------------------------------------------------
def run_encoding_study(config, out, *, brain=None, progress: bool = False) -> EncodingStudyResult:
    """Run an encoding study (see the module docstring); ``brain``: {subject: BrainData} in place of
    the config's dataset. Returns the tables, also written under ``out/results``."""
    from brainlike.encoding.analyses import comparison_table, plot_comparison
    from brainlike.encoding.gnet import PrefilteredImages
    from brainlike.ids import align
    from brainlike.pipeline.store import save_json, save_npz, save_table

    say = log.info if progress else log.debug
    study = load_encoding_config(config)
    out = Path(out)
    subjects = _load_subjects(study, brain)
    avg = {s: d.average_repetitions() for s, d in subjects.items()}
    n_reps = {}  # trials averaged per image, in the order of the averaged samples
    for s, d in subjects.items():
        uniq, counts = np.unique(np.asarray(d.stimulus_ids).astype(str), return_counts=True)
        n_reps[s] = counts[align(uniq, np.asarray(avg[s].stimulus_ids).astype(str), source="trials",
                                 wanted="averaged samples")]
    jobs_dir = out / "jobs" / _signature(study, subjects)
    folds = {s: _folds(study, a) for s, a in avg.items()}
    n_folds = len(next(iter(folds.values())))
    # one image set for all subjects (the GNets train jointly): the union of their images, by id
    all_ids = list(dict.fromkeys(i for a in avg.values() for i in np.asarray(a.stimulus_ids).astype(str)))
    images = _union_images({s: d.stimuli for s, d in subjects.items()}, all_ids)
    rows_of = {s: align(all_ids, np.asarray(a.stimulus_ids).astype(str), source="the images",
                        wanted=f"responses of subject {s!r}") for s, a in avg.items()}
    Y = {s: np.asarray(a.responses, dtype=np.float32) for s, a in avg.items()}
    rois = {s: {r: np.asarray(a.rois[r], bool) for r in study.rois} for s, a in avg.items()}
    preds = {m: {s: np.full_like(Y[s], np.nan) for s in Y} for m in study.models}

    maps = None
    if {"fwrf", "ridge", "pls"} & set(study.models):
        say(f"encoding study: features of {len(images)} images, layers {study.network['layers']}")
        maps = _maps(study, _network(study), images, out / "features")
    fitted_fwrf, fields_of = {}, {}
    for k in range(n_folds):
        for model, fitter in (("fwrf", _fit_fwrf), ("ridge", _fit_ridge), ("pls", _fit_pls)):
            if model not in study.models:
                continue
            for s in Y:
                fit, ev = folds[s][k]
                path = jobs_dir / model / f"{s}-fold{k}.npz"
                done = _job_result(path)
                keep = (model == "fwrf" and k == 0 and "tuning" in study.analyses  # the tuning needs the model
                        and _job_table(jobs_dir / "tuning" / f"{s}.parquet") is None)
                if done is None or keep:
                    say(f"encoding study: {model}, subject {s}, fold {k + 1}/{n_folds}")
                    sub_maps = [m[rows_of[s]] for m in maps]
                    est, pred = fitter(study, sub_maps, Y[s], fit, ev)
                    if keep:
                        fitted_fwrf[s] = (est, [m[ev] for m in sub_maps])
                    if done is None:
                        extra = {}
                        if model == "fwrf":  # each voxel's chosen pooling field (x, y, sigma), image width 1
                            extra["fields"] = np.stack([est.rf_x_, est.rf_y_, est.rf_sigma_], axis=1)
                        save_npz(path, pred=np.asarray(pred, np.float32), eval_rows=ev, **extra)
                        done = {"pred": pred, "eval_rows": ev, **extra}
                preds[model][s][done["eval_rows"]] = done["pred"]
                if model == "fwrf":
                    fields_of.setdefault(s, []).append(done["fields"])
        for model, mode in (("gnet8j", "joint"), ("gnet8r", "roi")):
            if model not in study.models:
                continue
            path = jobs_dir / model / f"fold{k}.npz"
            done = _job_result(path)
            if done is None:
                say(f"encoding study: {model}, fold {k + 1}/{n_folds}, {len(Y)} subject(s)")
                g = _gnet(study, mode, jobs_dir / model / f"fold{k}-checkpoints")
                pre = g.prefilter_images(images)
                g.fit(pre, {s: Y[s][folds[s][k][0]] for s in Y},
                      image_index={s: rows_of[s][folds[s][k][0]] for s in Y}, rois=rois if mode == "roi" else None)
                done = {}
                for s in Y:
                    ev = folds[s][k][1]
                    done[f"pred_{s}"] = g.predict(PrefilteredImages(pre.maps[rows_of[s][ev]]), subject=s)
                    done[f"rows_{s}"] = ev
                save_npz(path, **done)
            for s in Y:
                preds[model][s][done[f"rows_{s}"]] = done[f"pred_{s}"]

    voxels = _score_voxels(study, Y, preds, folds, avg, rois, n_reps)
    acc = {m: {roi: voxels[(voxels.model == m) & (voxels.roi == roi)]["r"].to_numpy() for roi in study.rois}
           for m in study.models}
    comparison = comparison_table(acc)
    results = out / "results"
    save_table(voxels, results / "voxel_accuracy.parquet")
    save_table(comparison, results / "comparison.parquet")
    plot_comparison(acc, results / "comparison.png", reference=study.models[0])
    save_npz(results / "predictions.npz", **{f"{m}__{s}": preds[m][s] for m in study.models for s in Y},
             **{f"ids__{s}": np.asarray(avg[s].stimulus_ids).astype(str) for s in Y})
    result = EncodingStudyResult(voxels=voxels, comparison=comparison, out=out)
    if fields_of:
        result.fields = _fields_table(study, fields_of, rois)
        save_table(result.fields, results / "fwrf_fields.parquet")
    if "tuning" in study.analyses:
        result.tuning = _tuning(study, fitted_fwrf, Y, folds, jobs_dir)
        save_table(result.tuning, results / "tuning.parquet")
    if {"transfer", "synthetic_transfer"} & set(study.analyses):
        _transfer(study, result, images, Y, folds, rows_of, rois, jobs_dir, results)
    save_json(results / "study.json", {"signature": jobs_dir.name, "config": study.as_dict(), "n_folds": n_folds,
                                       "subjects": list(Y),
                                       "trials_per_image": {s: float(n_reps[s].mean()) for s in Y}})
    from brainlike.report.encoding import write_encoding_report

    write_encoding_report(out)
    return result


def _fields_table(study, fields_of, rois) -> pd.DataFrame:
    """fwRF pooling field of every voxel, per fold (x, y: centre, image width 1, y up; sigma: size)."""
    rows = []
    for s, per_fold in fields_of.items():
        for k, f in enumerate(per_fold):
            for roi in study.rois:
                vox = np.flatnonzero(rois[s][roi])
                rows.append(pd.DataFrame({"subject": s, "roi": roi, "voxel": vox, "fold": k, "x": f[vox, 0],
                                          "y": f[vox, 1], "sigma": f[vox, 2]}))
    return pd.concat(rows, ignore_index=True)


def _score_voxels(study, Y, preds, folds, avg, rois, n_reps) -> pd.DataFrame:
    """Per voxel r and R² over every evaluated image; R² / noise ceiling where ncsnr is known."""
    from brainlike.metrics import pearson, r2
    from brainlike.metrics.ceiling import ncsnr_to_noise_ceiling

    rows = []
    for s in Y:
        ev = np.unique(np.concatenate([f[1] for f in folds[s]]))
        nc = None
        if "ncsnr" in (avg[s].voxel_info or {}):
            # NSD's ceiling for images averaged over different numbers of trials: the noise term is the
            # mean of 1/n over the evaluated images (NSD data manual, ncsnr), i.e. n = their harmonic mean
            n_eff = 1.0 / np.mean(1.0 / n_reps[s][ev])
            nc = ncsnr_to_noise_ceiling(np.asarray(avg[s].voxel_info["ncsnr"], np.float64), n_trials=n_eff) / 100
        for model in study.models:
            r = pearson(preds[model][s][ev], Y[s][ev])
            rr = r2(Y[s][ev], preds[model][s][ev])
            for roi in study.rois:
                vox = np.flatnonzero(rois[s][roi])
                df = pd.DataFrame({"model": model, "subject": s, "roi": roi, "voxel": vox, "r": r[vox],
                                   "r2": rr[vox], "n_images": ev.size})
                if nc is not None:
                    df["noise_ceiling"] = nc[vox]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        df["r2_norm"] = np.where(nc[vox] > 0, rr[vox] / nc[vox], np.nan)
                rows.append(df)
    return pd.concat(rows, ignore_index=True)


def _job_table(path: Path):
    """A finished analysis table (Parquet), or None (see :func:`_finished`)."""
    return _finished(path, pd.read_parquet)


def _tuning(study, fitted_fwrf, Y, folds, jobs_dir) -> pd.DataFrame:
    """Layer-wise and bipartite tuning of each subject's fwRF (fold 0), partitions named by network layer."""
    from brainlike.encoding.analyses import bipartite_partitions, layer_partitions, n_readout_features, tuning_analysis
    from brainlike.pipeline.store import save_table

    names = list(study.network["layers"])
    tables = []
    for s in Y:
        path = jobs_dir / "tuning" / f"{s}.parquet"
        done = _job_table(path)
        if done is None:
            est, ev_maps = fitted_fwrf[s]
            ev = folds[s][0][1]
            parts_of = []
            for kind, parts in (("layer", layer_partitions(est, names=names)),
                                ("bipartite", bipartite_partitions(est, names=names))):
                res = tuning_analysis(lambda mask, e=est, m=ev_maps: e.predict(m, feature_mask=mask), Y[s][ev],
                                      parts, n_readout_features(est))
                t = res.table()
                t.insert(0, "analysis", kind)
                t.insert(0, "subject", s)
                parts_of.append(t)
            done = pd.concat(parts_of, ignore_index=True)
            save_table(done, path)
        tables.append(done)
    return pd.concat(tables, ignore_index=True)


def _transfer(study, result, images, Y, folds, rows_of, rois, jobs_dir, results) -> None:
    """Transfer matrix and synthetic transfer of GNet8r (fold 0; its fit resumes from the checkpoints)."""
    from brainlike.encoding.analyses import TransferResult, plot_transfer_matrix, synthetic_transfer, transfer_matrix
    from brainlike.encoding.gnet import PrefilteredImages
    from brainlike.pipeline.store import save_table

    wanted = [a for a in ("transfer", "synthetic_transfer") if a in study.analyses]
    done = {a: _job_table(jobs_dir / f"{a}.parquet") for a in wanted}
    if any(t is None for t in done.values()):
        g = _gnet(study, "roi", jobs_dir / "gnet8r" / "fold0-checkpoints")
        pre = g.prefilter_images(images)
        fit = {s: folds[s][0][0] for s in Y}
        ev = {s: folds[s][0][1] for s in Y}
        g.fit(pre, {s: Y[s][fit[s]] for s in Y}, image_index={s: rows_of[s][fit[s]] for s in Y}, rois=rois)
        if done.get("transfer", 0) is None:
            tm = transfer_matrix(g, pre, {s: Y[s][fit[s]] for s in Y}, pre, {s: Y[s][ev[s]] for s in Y},
                                 train_index={s: rows_of[s][fit[s]] for s in Y},
                                 val_index={s: rows_of[s][ev[s]] for s in Y})
            done["transfer"] = tm.relative.rename_axis("source").reset_index()
        if done.get("synthetic_transfer", 0) is None:
            fit_img = np.unique(np.concatenate([rows_of[s][fit[s]] for s in Y]))
            ev_img = np.unique(np.concatenate([rows_of[s][ev[s]] for s in Y]))
            st = synthetic_transfer(g, PrefilteredImages(pre.maps[fit_img]), PrefilteredImages(pre.maps[ev_img]),
                                    seed=study.seed)
            done["synthetic_transfer"] = st.relative.rename_axis("source").reset_index()
        for a in wanted:
            save_table(done[a], jobs_dir / f"{a}.parquet")
    for a in wanted:
        save_table(done[a], results / ("transfer_matrix.parquet" if a == "transfer" else f"{a}.parquet"))
        matrix = done[a].set_index("source")
        matrix.columns.name = "target"
        setattr(result, a, matrix)
    if "transfer" in wanted:
        plot_transfer_matrix(TransferResult(relative=result.transfer), results / "transfer_matrix.png")
