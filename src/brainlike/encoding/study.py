"""Encoding studies (St-Yves et al. 2022): fwRF, GNet8j, GNet8r and ridge on the same images, folds and voxels.

``run_encoding_study(config, out)`` (``brainlike encode CONFIG --out DIR``, or ``brainlike run`` on
such a config) fits every requested model as jobs of the pipeline's executor
(``pipeline.execute.run_jobs``: synchronously, on a Dask LocalCluster or an existing Dask cluster;
claimed, so several processes on one folder split them) — fwRF, ridge and PLS per (model, subject,
ROI, fold), GNet8j and GNet8r per fold, jointly over subjects (``study_jobs``). Each fit's result
is written atomically (a job is done iff its file is there and reads back whole, so a killed study
resumes where it stopped; a damaged file is set aside and recomputed). It then scores
every voxel (Pearson r, R², and R² over the NSD noise ceiling where the data carry ``ncsnr``) and
runs the paper's analyses: the model comparison, the transfer matrix of GNet8r, the layer-wise and
bipartite tuning of fwRF named by the network's layers, and synthetic transfer. Folds are the
shared-1000 validation images (``validation: shared1000``, the data's ``test`` split, as the seed
does) or K folds over the training images (``validation: {kfold: K}``). Responses are averaged over
repetitions of an image before fitting; every pairing of responses and images is by stimulus id.
The tables, figures and report are published together as one results generation
(``pipeline.generations``: ``OUT/current``, read by ``load_results``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._hash import ContentHasher

__all__ = ["ENCODING_MODELS", "EncodingStudy", "EncodingStudyResult", "is_encoding_study", "load_encoding_config",
           "run_encoding_study"]

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


def is_encoding_study(raw) -> bool:
    """Whether a config mapping is an encoding study (a ``network``, ``models`` among :data:`ENCODING_MODELS`
    or left to their default) rather than an experiment of ``brainlike run`` (``dnns``)."""
    if not isinstance(raw, dict) or "dnns" in raw or "network" not in raw:
        return False
    models = raw.get("models", list(ENCODING_MODELS))
    return isinstance(models, list) and any(m in ENCODING_MODELS for m in models)


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
    jobs: dict | None = None  # the executor's job counts (n_jobs, n_done_before, n_run, n_by_others)

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


def _whole(path: Path, work: Path) -> bool:
    """Whether a subject's inputs file is there and whole (a damaged one is set aside and written again)."""
    from brainlike.pipeline.store import CorruptResultError, check_result, set_aside

    if not path.is_file():
        return False
    try:
        check_result(path, ("Y", "rows"))
    except CorruptResultError:
        set_aside(path, work)
        return False
    return True


# ---------------------------------------------------------------------------------------------
def _prepare(study: EncodingStudy, out: Path, brain, say):
    """The study's context, written once into ``OUT/jobs`` (per-subject arrays, feature maps in
    ``OUT/features``), its path, and what the tables need: {subject: averaged data}, trials per image."""
    from brainlike.ids import align
    from brainlike.pipeline.store import save_npz

    from .study_jobs import StudyContext, feature_maps

    subjects = _load_subjects(study, brain)
    avg = {s: d.average_repetitions() for s, d in subjects.items()}
    n_reps = {}  # trials averaged per image, in the order of the averaged samples
    for s, d in subjects.items():
        uniq, counts = np.unique(np.asarray(d.stimulus_ids).astype(str), return_counts=True)
        n_reps[s] = counts[align(uniq, np.asarray(avg[s].stimulus_ids).astype(str), source="trials",
                                 wanted="averaged samples")]
    sig = _signature(study, subjects)
    work = out / "jobs"
    folds = {s: _folds(study, a) for s, a in avg.items()}
    # one image set for all subjects (the GNets train jointly): the union of their images, by id
    all_ids = list(dict.fromkeys(i for a in avg.values() for i in np.asarray(a.stimulus_ids).astype(str)))
    images = _union_images({s: d.stimuli for s, d in subjects.items()}, all_ids)
    paths = {}
    for s, a in avg.items():
        paths[s] = str(work / f"inputs-{sig}" / f"{s}.npz")
        if not _whole(Path(paths[s]), work):
            rows = align(all_ids, np.asarray(a.stimulus_ids).astype(str), source="the images",
                         wanted=f"responses of subject {s!r}")
            save_npz(paths[s], Y=np.asarray(a.responses, dtype=np.float32), rows=rows,
                     **{f"roi_{r}": np.asarray(a.rois[r], bool) for r in study.rois},
                     **{f"{w}_{k}": f[i] for k, f in enumerate(folds[s]) for i, w in enumerate(("fit", "eval"))})
    maps = None
    if {"fwrf", "ridge", "pls"} & set(study.models):
        say(f"encoding study: features of {len(images)} images, layers {study.network['layers']}")
        maps = feature_maps(study, images, out / "features")
    ctx = StudyContext(workdir=str(work), study=study, sig=sig, subjects=paths,
                       n_folds=len(next(iter(folds.values()))), images=images, maps=maps)
    ctx_path = work / f"context-{sig}.pkl"
    import pickle

    from brainlike.pipeline.store import save_bytes

    blob = pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL)
    if not ctx_path.is_file() or ctx_path.read_bytes() != blob:  # unchanged: workers keep their cached copy
        save_bytes(ctx_path, blob)
    return ctx_path, avg, n_reps


def run_encoding_study(config, out, *, brain=None, progress: bool = False, scheduler: str = "synchronous",
                       n_workers: int | None = None, client=None) -> EncodingStudyResult:
    """Run an encoding study (see the module docstring); ``brain``: {subject: BrainData} in place of
    the config's dataset. scheduler: "synchronous" (in this process, the default), "local" (a Dask
    LocalCluster of ``n_workers`` processes) or a Dask scheduler address; or pass a
    ``distributed.Client`` as ``client``. Returns the tables, also published under ``out/results``."""
    from brainlike.pipeline import generations
    from brainlike.pipeline.execute import run_jobs
    from brainlike.pipeline.jobs import load_context
    from brainlike.pipeline.spawn import check_spawn_safe
    from brainlike.pipeline.store import CorruptResultError

    from .study_tables import DamagedJobs, collect

    say = log.info if progress else log.debug
    study = load_encoding_config(config)
    if not isinstance(scheduler, str) or not (scheduler in ("synchronous", "local") or "://" in scheduler):
        raise ValueError(f"scheduler: must be 'synchronous', 'local' or a Dask address (tcp://host:port); "
                         f"got {scheduler!r}")
    if client is None:
        scheduler = check_spawn_safe(scheduler)
    out = Path(out)
    ctx_path, avg, n_reps = _prepare(study, out, brain, say)
    ctx = load_context(ctx_path)
    jobs = ctx.plan()
    say(f"encoding study: {len(jobs)} jobs ({sum(not j.done(ctx.workdir) for j in jobs)} to run) on "
        f"{'a Dask client' if client is not None else scheduler}")
    summary = None
    for attempt in range(3):
        s = run_jobs(jobs, ctx_path, ctx.workdir, scheduler=scheduler, n_workers=n_workers, client=client,
                     progress=progress)
        summary = s if summary is None else {**summary, "n_run": summary["n_run"] + s["n_run"],
                                             "n_by_others": summary["n_by_others"] + s["n_by_others"]}
        try:
            collected = collect(ctx, jobs)
            break
        except DamagedJobs as e:  # set aside: their jobs run again
            if attempt == 2:
                raise CorruptResultError(e.paths[0], f"damaged again after recomputing {len(e.paths)} result(s)")
    stage = generations.start_generation(out)
    try:
        result = _write_generation(study, ctx, collected, avg, n_reps, summary, stage)
    except BaseException as e:
        generations.mark_failed(stage, e)
        raise
    gen = generations.publish(out, stage, analyses=list(study.analyses), study="encoding")
    say(f"encoding study: results generation {gen.name} published: {out / 'results'}")
    result.out, result.jobs = out, summary
    return result


def _write_generation(study, ctx, collected, avg, n_reps, summary, stage: Path) -> EncodingStudyResult:
    """Tables, figures, study.json and the report into the (unpublished) generation ``stage``."""
    from brainlike.encoding.analyses import comparison_table, plot_comparison
    from brainlike.pipeline.store import save_json, save_npz, save_table
    from brainlike.report.encoding import write_encoding_report

    from .study_tables import fields_table, score_voxels, transfer_tables

    results = stage / "results"
    preds = collected["preds"]
    voxels = score_voxels(study, ctx, preds, avg, n_reps)
    acc = {m: {roi: voxels[(voxels.model == m) & (voxels.roi == roi)]["r"].to_numpy() for roi in study.rois}
           for m in study.models}
    comparison = comparison_table(acc)
    save_table(voxels, results / "voxel_accuracy.parquet")
    save_table(comparison, results / "comparison.parquet")
    plot_comparison(acc, results / "comparison.png", reference=study.models[0])
    save_npz(results / "predictions.npz", **{f"{m}__{s}": preds[m][s] for m in study.models for s in ctx.subjects},
             **{f"ids__{s}": np.asarray(avg[s].stimulus_ids).astype(str) for s in ctx.subjects})
    result = EncodingStudyResult(voxels=voxels, comparison=comparison)
    if collected["fields"]:
        result.fields = fields_table(study, collected["fields"], lambda s, roi: ctx.arrays(s)[f"roi_{roi}"])
        save_table(result.fields, results / "fwrf_fields.parquet")
    if "tuning" in study.analyses:
        result.tuning = pd.concat(collected["tuning"], ignore_index=True)
        save_table(result.tuning, results / "tuning.parquet")
    if {"transfer", "synthetic_transfer"} & set(study.analyses):
        for name, matrix in transfer_tables(ctx, results).items():
            setattr(result, name, matrix)
    jobs = {k: summary[k] for k in ("n_jobs", "n_done_before", "n_run", "n_by_others", "scheduler")}
    save_json(results / "study.json", {"signature": ctx.sig, "config": study.as_dict(), "n_folds": ctx.n_folds,
                                       "subjects": list(ctx.subjects), "jobs": jobs,
                                       "trials_per_image": {s: float(n_reps[s].mean()) for s in ctx.subjects}})
    write_encoding_report(stage, staged=True)
    return result
