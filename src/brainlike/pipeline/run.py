"""``run_experiment``: config -> prepared inputs -> job graph -> tables -> scores -> report.

Tables, scores, provenance and the report of a run are written into a new results generation and
published together (``generations.py``): a run that stops anywhere leaves the previous
generation current and complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainlike._validate import check_relpath
from brainlike.ids import align
from brainlike.stimuli import natural_key

from . import inputs as I
from .config import Experiment, load_config
from . import generations
from .execute import run_jobs
from .jobs import RESULT_KEYS, Context, Job, load_context, plan
from .spawn import check_spawn_safe
from .store import CorruptResultError, load_result, remove_stale_tmp, save_json, save_table, set_aside, sha256_file

log = logging.getLogger("brainlike")


@dataclass
class RunResult:
    """Where everything went, and what it took."""

    out: Path
    results_dir: Path
    scores: object  # pandas DataFrame of bh_scores.csv
    summary: dict
    report: Path | None = None
    timings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RunResult(out={str(self.out)!r}, jobs={self.summary.get('n_jobs')}, report={self.report})"


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _log(msg: str, progress: bool) -> None:
    """A step of the run on the "brainlike" logger: INFO when progress is asked for, else DEBUG."""
    logging.getLogger("brainlike").log(logging.INFO if progress else logging.DEBUG, msg)


def prepare(exp: Experiment, *, brain=None, stimuli=None, features=None, progress=True):
    """Write subject arrays and the context; return (context path, list of jobs, provenance inputs)."""
    out = Path(exp.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(work)
    brains = I.load_brain(exp, brain)
    for s, b in brains.items():
        prov = getattr(b, "provenance", {}) or {}
        runs = f", {prov['runs']} runs" if prov.get("runs") else ""  # BIDS: preprocessed or raw (asked for)
        _log(f"brain data of {s}: {b.n_samples} samples x {b.n_voxels} voxels ({prov.get('dataset', 'given')}{runs})",
             progress)
    rois = I.resolve_rois(exp, brains)
    subjects = {s: I.split_subject(b, rois, s) for s, b in brains.items()}
    # one row per stimulus used by any subject, in the order of the image set when there is one
    needed = set()
    for arr in subjects.values():
        needed.update(arr["train_ids"].tolist())
        needed.update(arr["test_ids"].tolist())
    stim = I.load_stimuli(exp, brains, stimuli)
    ids = sorted(needed, key=natural_key)
    if stim is not None:
        # every stimulus of the brain data must have an image (paired by id); rows in the image set's order
        found = align(stim.ids, ids, source=f"the images of {getattr(stim, 'name', '') or 'the stimuli'!r}",
                      wanted="the stimuli of the brain data")
        ids = [stim.ids[k] for k in np.sort(found)]
    # feature rows follow this order; given features are paired with it by stimulus id
    subject_paths, checksums = {}, {}
    for s, arr in subjects.items():
        path, checksums[s] = I.write_subject(work / "subjects" / f"{I.crc(s):08x}.npz", arr, ids)
        subject_paths[s] = str(path)
    train_all = np.unique(np.concatenate([align(ids, arr["train_ids"], source="the feature rows",
                                                wanted="the training samples") for arr in subjects.values()]))
    train_all = train_all.tolist()

    # features: one extraction per (model, pretrained); controls reuse their network's features. A DNN
    # with `encoding_features` (BHscore: features_all/) has a second source, read by the encoding jobs only.
    handles, fingerprints, enc_handles, enc_fingerprints, cache = {}, {}, {}, {}, {}
    decodes = bool({"decoding", "decodability"} & set(exp.analyses))

    def source(name, dnn, given):
        key = (dnn.model, dnn.pretrained, dnn.seed, json.dumps(dnn.model_options, sort_keys=True), dnn.input_size,
               json.dumps(dnn.features), dnn.feature_index, tuple(dnn.layers))
        if given is None and key in cache:
            h, fp = cache[key]
        else:
            _log(f"features of {name} ({len(dnn.layers)} layers, {len(ids)} images)", progress)
            h, fp = I.feature_handles(exp, dnn, stim, ids, out / "features", progress=progress, given=given)
            cache[key] = (h, fp)
        if dnn.control == "layer_shuffled":
            h = I.shuffled_layers(h, exp.seed, name)
            fp = {**fp, "control": "layer_shuffled", "seed": exp.seed}
        return h, fp

    for name, dnn in exp.dnns.items():
        given = None if features is None else features.get(name)
        enc_dnn = None if dnn.encoding_features is None or given is not None else I.encoding_source(dnn)
        if enc_dnn is not None and not decodes:
            dnn, enc_dnn = enc_dnn, None  # only the encoding analysis runs: its source is the one read
        handles[name], fingerprints[name] = source(name, dnn, given)
        if enc_dnn is not None and "encoding" in exp.analyses:
            enc_handles[name], enc_fingerprints[name] = source(name, enc_dnn, None)
    n_units = {d: {layer: I._shape(h)[1] for layer, h in hs.items()} for d, hs in handles.items()}
    units = {d: {layer: I.select_units(n, exp.decoding["units_per_layer"], exp.seed, d, layer)
                 for layer, n in ns.items()} for d, ns in n_units.items()}
    # result folders are keyed by everything that determines their content: changed settings or
    # inputs never reuse stale results
    sig_in = {"subjects": checksums, "rois": rois, "stimuli": ids}
    decoding_settings = {k: v for k, v in exp.decoding.items() if k != "voxel_cache_mb"}  # speed only
    enc = exp.encoding
    recipe = enc["method"] == "recipe"
    if recipe:  # what decides a recipe result (memory_mb and chunk_size only decide its speed)
        enc_sig = [{k: enc[k] for k in ("method", "alpha", "n_feat", "voxels_per_job", "dtype")}, exp.seed,
                   exp.scores["voxels_per_roi"]]
    else:
        enc_sig = {k: enc[k] for k in ("alphas", "cv", "chunk_size", "dtype")}
    enc_fp = {d: enc_fingerprints.get(d, fingerprints[d]) for d in handles}  # what the encoding jobs read
    sig = {
        "decode": {d: _hash([decoding_settings, sig_in, fingerprints[d], exp.seed, exp.dnns[d].layers]) for d in handles},
        "kernel": {d: _hash([exp.encoding["chunk_size"], ids, train_all, enc_fp[d], exp.dnns[d].layers])
                   for d in handles},
        "encode": {d: _hash([enc_sig, sig_in, enc_fp[d], exp.dnns[d].layers]) for d in handles},
    }
    roi_voxels = ({s: sample_voxels(arr, rois, exp.scores["voxels_per_roi"], exp.seed, s) for s, arr in subjects.items()}
                  if recipe and "encoding" in exp.analyses else {})
    ctx = Context(workdir=str(work), subjects=subject_paths, rois=rois, features=handles,
                  encoding_features=enc_handles, units=units,
                  n_units=n_units, decoding=exp.decoding, encoding=exp.encoding,
                  train_rows_all=np.asarray(train_all, dtype=np.int64), signatures=sig,
                  encoding_voxels={s: np.unique(np.concatenate(list(v.values()))) for s, v in roi_voxels.items()},
                  encoding_roi_voxels=roi_voxels)
    ctx_path = ctx.save(work / f"context-{_hash([sig, subject_paths])}.pkl")
    jobs = plan(ctx, {d: exp.dnns[d].layers for d in handles}, job_analyses(exp.analyses))
    prov_inputs = {"subjects": {s: {"xxh3_128": c, "n_train_samples": int(subjects[s]["train_x"].shape[0]),
                                    "n_test_images": int(subjects[s]["test_x"].shape[0]),
                                    "n_voxels": {r: int(subjects[s][f"roi_{r}"].sum()) for r in rois}}
                                for s, c in checksums.items()},
                   "stimuli": {"n": len(ids), "ids_sha256": hashlib.sha256("\x00".join(ids).encode()).hexdigest(),
                               "fingerprint": stim.fingerprint() if stim is not None and hasattr(stim, "fingerprint")
                               else None},
                   "features": fingerprints, "rois": rois,
                   # DNNs whose encoding analysis reads another feature tree (BHscore's features_all/)
                   "encoding_features": {d: {**fp, "n_units": {layer: I._shape(h)[1]
                                                               for layer, h in enc_handles[d].items()}}
                                         for d, fp in enc_fingerprints.items()},
                   "n_units": n_units, "units_analysed": {d: {k: int(len(v)) for k, v in u.items()}
                                                          for d, u in units.items()}}
    return ctx_path, jobs, prov_inputs


def job_analyses(analyses) -> list[str]:
    """The job kinds an experiment's analyses need: a decodability study runs the decode jobs."""
    out = list(analyses)
    if "decodability" in out and "decoding" not in out:
        out.append("decoding")
    return out


def sample_voxels(arrays: dict, rois: list[str], per_roi, seed: int, subject: str) -> dict[str, np.ndarray]:
    """{roi: sorted voxel columns} with at most ``per_roi`` voxels drawn at random (seeded per subject and
    ROI) from each ROI, as Nonaka et al. 2021 score encoding on 1000 random voxels per subject and ROI;
    ``per_roi`` None keeps every voxel."""
    out = {}
    for r in rois:
        cols = np.flatnonzero(arrays[f"roi_{r}"])
        if per_roi is not None and cols.size > per_roi:
            rng = np.random.default_rng(I.stable_seed(seed, subject, r, "encoding-voxels"))
            cols = np.sort(rng.choice(cols, size=int(per_roi), replace=False))
        out[r] = cols.astype(np.int64)
    return out


def run_experiment(config, *, out=None, brain=None, stimuli=None, features=None, features_root=None,
                   bhscore_data=None, bhscore_features=None, scheduler=None, n_workers=None, client=None,
                   progress=True, report=None) -> RunResult:
    """Run an experiment end to end; rerunning after a crash does only the missing jobs.

    config: a YAML/JSON path (BHscore's settings.json accepted), a dict or an Experiment.
    brain: BrainData, a list or {subject: BrainData} (instead of the config's dataset).
    stimuli: ImageSet (instead of config ``stimuli`` / ``BrainData.stimuli``).
    features: {dnn name: FeatureSet, or {layer: LayerFeatures}}, precomputed features instead of
    extracting them; their rows are paired with the brain data by stimulus id (any order, extra
    stimuli allowed). Plain arrays carry no ids: wrap them as ``FeatureSet({layer: array}, ids=...)``.
    features_root: BHscore feature tree (``features/<image set>``) for DNNs given by a ``dir``
    (BHscore's settings.json): layer files are read from ``features_root/<dir>/<layer>/<id>.mat``.
    bhscore_data: BHscore's ``data/`` folder (fMRI and both feature trees, see
    :func:`brainlike.pipeline.config.apply_bhscore_data`); accuracies of the networks given by a
    ``dir`` are then also written in BHscore's trees (``<out>/decoding_accuracy/ImageNetTest/...``).
    bhscore_features: None (decoding reads ``features/``, encoding ``features_all/``, as BHscore), or
    ``"features"`` / ``"features_all"`` for both analyses.
    scheduler: "local", "synchronous" or a Dask scheduler address (overrides the config).
    """
    t0 = time.perf_counter()
    ex = {"scheduler": scheduler, "n_workers": n_workers}
    exp = load_config(config, out=str(out) if out is not None else None, features_root=features_root,
                      bhscore_data=bhscore_data, bhscore_features=bhscore_features,
                      execution={k: v for k, v in ex.items() if v is not None} or None)
    if client is None:
        exp.execution["scheduler"] = check_spawn_safe(exp.execution["scheduler"])
    timings = {}
    ctx_path, jobs, prov_inputs = prepare(exp, brain=brain, stimuli=stimuli, features=features, progress=progress)
    timings["prepare_s"] = time.perf_counter() - t0
    ctx = load_context(ctx_path)
    _log(f"{len(jobs)} jobs ({sum(not j.done(ctx.workdir) for j in jobs)} to run) "
         f"on {exp.execution['scheduler']}", progress)
    t1 = time.perf_counter()
    summary = None
    for attempt in range(3):
        s = run_jobs(jobs, ctx_path, ctx.workdir, scheduler=exp.execution["scheduler"],
                     n_workers=exp.execution["n_workers"], threads_per_worker=exp.execution["threads_per_worker"],
                     retries=exp.execution["retries"], client=client, progress=progress,
                     lease_s=exp.execution.get("lease_s", 60.0))
        summary = s if summary is None else {**summary, "n_run": summary["n_run"] + s["n_run"],
                                             "n_by_others": summary["n_by_others"] + s["n_by_others"]}
        try:
            collected = collect(exp, ctx, jobs)
            break
        except _Damaged as e:  # set aside: their jobs run again
            if attempt == 2:
                raise CorruptResultError(e.paths[0], f"damaged again after recomputing {len(e.paths)} result(s)")
    timings["jobs_s"] = time.perf_counter() - t1
    out_dir = Path(exp.out)
    stage = generations.start_generation(out_dir)
    try:
        scores_df = _write_generation(exp, ctx, jobs, collected, stage, prov_inputs, summary, timings, ctx_path, t0,
                                      report)
    except BaseException as e:
        generations.mark_failed(stage, e)
        raise
    want_report = exp.report if report is None else report
    gen = generations.publish(out_dir, stage, analyses=list(exp.analyses))
    _log(f"results generation {gen.name} published: {out_dir / 'results'}", progress)
    return RunResult(out=out_dir, results_dir=out_dir / "results", scores=scores_df, summary=summary,
                     report=out_dir / "report" / "index.html" if want_report else None, timings=timings)


def _write_generation(exp, ctx, jobs, collected, stage, prov_inputs, summary, timings, ctx_path, t0, report):
    """Tables, scores, provenance, decodability files and report of a run into its (unpublished)
    generation folder."""
    results = stage / "results"
    t2 = time.perf_counter()
    from .quality import data_quality, summary as quality_summary

    collected["tables"]["data_quality"] = quality = data_quality(exp, ctx, collected)
    prov_inputs["data_quality"] = quality_summary(quality)
    for name, df in collected["tables"].items():
        save_table(df, results / f"{name}.parquet")
    if "decodability" in exp.analyses:
        from .decodability import write_decodability

        write_decodability(ctx, jobs, collected["tables"]["decoding_accuracy"], stage / "decodability")
    # networks given by a BHscore 'dir': the accuracies also in BHscore's own trees (OUT/decoding_accuracy, ...)
    from .bhscore_tree import write_bhscore_trees

    unit_shapes = {d: fp.get("unit_shapes", {}) for d, fp in prov_inputs["features"].items()}
    write_bhscore_trees(exp, collected["tables"], unit_shapes, out=stage)
    timings["tables_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    scores_df = compute_scores(exp, collected, save_dir=results / "scores")
    save_table(scores_df, results / "bh_scores.parquet")
    timings["scores_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    save_json(results / "provenance.json", provenance(exp, prov_inputs, summary, timings, ctx_path))
    want_report = exp.report if report is None else report
    if want_report:
        from brainlike.report import write_report

        write_report(results, stage / "report", staged=True)
    return scores_df


class _Damaged(Exception):
    def __init__(self, paths):
        super().__init__(f"{len(paths)} damaged job result(s) set aside")
        self.paths = paths


def _loader(workdir, keep_pred: bool):
    """Load job results; damaged ones are set aside and reported together at the end."""
    damaged = []

    def load(job: Job):
        try:
            r = load_result(job.path(workdir), RESULT_KEYS[job.kind])
        except CorruptResultError as e:
            set_aside(e.path, workdir)
            damaged.append(e.path)
            return None
        if not keep_pred:  # only the number of test images is needed
            empty = np.empty((r["truth"].shape[0], 0), r["truth"].dtype)
            r["prediction"], r["truth"] = empty, empty
        return r

    def check():
        if damaged:
            raise _Damaged(damaged)

    return load, check


def _per_subject_results(keep_pred: bool) -> dict:
    """Accuracies and test sizes per subject; predictions and truths only when they will be used."""
    return {"acc": [], "n_test": [], "pred": [] if keep_pred else None, "truth": [] if keep_pred else None}


def _add_subject(results: dict, accs, n_test, preds, truths) -> None:
    results["acc"].append(accs)
    results["n_test"].append(n_test)
    if results["pred"] is not None:
        results["pred"].append(preds)
        results["truth"].append(truths)


def collect(exp: Experiment, ctx: Context, jobs: list[Job]) -> dict:
    """Read every job result into tidy tables and the arrays the scores need."""
    import pandas as pd

    subjects = list(ctx.subjects)
    tables, dec, enc = {}, {}, {}
    # test predictions are only needed for the bootstrap over test images
    # (a decodability-only study has no BH score to bootstrap: its predictions stay on disk)
    keep_pred = exp.scores["n_boot"] > 0 and any(a in exp.analyses for a in ("decoding", "encoding"))
    load, check = _loader(ctx.workdir, keep_pred)
    # every result is read (and CRC-checked) before any is used: damaged ones are all set aside at once
    results = {j: load(j) for j in jobs if j.kind in RESULT_KEYS and j.kind != "kernel"}
    check()
    if "decoding" in job_analyses(exp.analyses):
        frames = []
        by_key: dict = {}
        for j in jobs:
            if j.kind == "decode":
                by_key.setdefault((j.dnn, j.subject, j.roi, j.layer), []).append(j)
        for dnn, d in exp.dnns.items():
            dec[dnn] = _per_subject_results(keep_pred)
            for s in subjects:
                accs, preds, truths = [], [], []
                for li, layer in enumerate(d.layers):
                    per_roi_acc, per_roi_pred = [], []
                    truth = None
                    for roi in ctx.rois:
                        parts = [results[j] for j in sorted(by_key[(dnn, s, roi, layer)], key=lambda j: j.chunk)]
                        u = np.concatenate([p["units"] for p in parts])
                        acc = np.concatenate([p["accuracy"] for p in parts])
                        per_roi_acc.append(acc)
                        n_test = parts[0]["truth"].shape[0]
                        if keep_pred:
                            per_roi_pred.append(np.concatenate([p["prediction"] for p in parts], axis=1))
                            if truth is None:
                                truth = np.concatenate([p["truth"] for p in parts], axis=1)
                        frames.append(pd.DataFrame({"dnn": dnn, "subject": s, "roi": roi, "layer": layer,
                                                    "layer_index": li, "unit": u, "accuracy": acc}))
                    accs.append(np.stack(per_roi_acc))
                    if keep_pred:
                        preds.append(np.stack(per_roi_pred))
                        truths.append(truth)
                _add_subject(dec[dnn], accs, n_test, preds, truths)
        tables["decoding_accuracy"] = pd.concat(frames, ignore_index=True)
    if "encoding" in exp.analyses and exp.encoding["method"] == "recipe":
        tables["encoding_accuracy"] = _collect_recipe(exp, ctx, jobs, enc, keep_pred, results)
    elif "encoding" in exp.analyses:
        frames = []
        enc_jobs = {(j.dnn, j.subject, j.roi, j.layer): j for j in jobs if j.kind == "encode"}
        for dnn, d in exp.dnns.items():
            enc[dnn] = _per_subject_results(keep_pred)
            for s in subjects:
                accs, preds, truths = [], [], []
                for roi in ctx.rois:
                    per_layer_acc, per_layer = [], []
                    truth = None
                    for li, layer in enumerate(d.layers):
                        r = results[enc_jobs[(dnn, s, roi, layer)]]
                        per_layer_acc.append(r["accuracy"])
                        n_test = r["truth"].shape[0]
                        if keep_pred:
                            per_layer.append(r["prediction"])
                            truth = r["truth"] if truth is None else truth
                        frames.append(pd.DataFrame({"dnn": dnn, "subject": s, "roi": roi, "layer": layer,
                                                    "layer_index": li, "voxel": r["voxels"],
                                                    "accuracy": r["accuracy"], "alpha": r["best_alpha"]}))
                    accs.append(np.stack(per_layer_acc))
                    if keep_pred:
                        preds.append(np.stack(per_layer))
                        truths.append(truth)
                _add_subject(enc[dnn], accs, n_test, preds, truths)
        tables["encoding_accuracy"] = pd.concat(frames, ignore_index=True)
    return {"tables": tables, "decoding": dec, "encoding": enc, "rois": list(ctx.rois), "subjects": subjects}


def _collect_recipe(exp: Experiment, ctx: Context, jobs: list[Job], enc: dict, keep_pred: bool, results: dict):
    """Recipe jobs hold a subject's sampled voxels of every ROI together: split them back per ROI."""
    import pandas as pd

    frames = []
    by_key: dict = {}
    for j in jobs:
        if j.kind == "recipe":
            by_key.setdefault((j.dnn, j.subject, j.layer), []).append(j)
    for dnn, d in exp.dnns.items():
        enc[dnn] = _per_subject_results(keep_pred)
        for s in ctx.subjects:
            per_layer = []
            for layer in d.layers:
                parts = [results[j] for j in sorted(by_key[(dnn, s, layer)], key=lambda j: j.chunk)]
                per_layer.append({k: np.concatenate([p[k] for p in parts], axis=-1)
                                  for k in ("voxels", "accuracy", "prediction", "truth")})
            accs, preds, truths = [], [], []
            for roi in ctx.rois:
                vox = ctx.encoding_roi_voxels[s][roi]
                pos = np.searchsorted(per_layer[0]["voxels"], vox)
                accs.append(np.stack([r["accuracy"][pos] for r in per_layer]))
                if keep_pred:
                    preds.append(np.stack([r["prediction"][:, pos] for r in per_layer]))
                    truths.append(per_layer[0]["truth"][:, pos])
                for li, (layer, r) in enumerate(zip(d.layers, per_layer)):
                    frames.append(pd.DataFrame({"dnn": dnn, "subject": s, "roi": roi, "layer": layer, "layer_index": li,
                                                "voxel": vox, "accuracy": r["accuracy"][pos],
                                                "alpha": float(exp.encoding["alpha"])}))
            _add_subject(enc[dnn], accs, per_layer[0]["truth"].shape[0], preds, truths)
    return pd.concat(frames, ignore_index=True)


def nan_reason(accuracies, pval: float, n_samples: int, *, encoding: bool = False) -> str:
    """Why a BH score is undefined: accuracies per layer (n_rois, n_units) for decoding, per ROI
    (n_layers, n_voxels) for encoding."""
    from . import scoring

    return scoring.why_nan(accuracies, pval, n_samples, encoding=encoding)


def compute_scores(exp: Experiment, collected: dict, save_dir=None):
    """One row per network and registered score (:mod:`brainlike.scores.registry`), in registration order.

    With ``save_dir`` each result is also saved whole (replicates and null included) as
    ``save_dir/<dnn>/<score name>.json`` + ``.npz`` (:meth:`brainlike.scores.ScoreResult.save`).
    """
    import pandas as pd

    from brainlike.scores import registry

    keys = ("score", "ci_low", "ci_high", "p_perm")
    usage = ("n_units", "n_used", "n_kept", "reason")  # what each score rests on; why it is NaN

    def row(dnn, kind, r):
        return {"dnn": dnn, "kind": kind, "score": r.score, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "p_perm": r.p_value, "ci_low_percentile": r.info.get("ci_low_percentile", np.nan),
                "ci_high_percentile": r.info.get("ci_high_percentile", np.nan), **{k: getattr(r, k) for k in usage}}

    rows = []
    n_rois = len(collected.get("rois") or exp.rois or [])
    for dnn in exp.dnns:
        n_layers = len(exp.dnns[dnn].layers)
        if not (n_layers >= 2 and n_rois >= 2) and "decoding" in exp.analyses:
            log.warning("%s: no decoding BH score (it needs >= 2 layers and >= 2 ROIs; the run has %d layer(s) "
                        "and %s ROI(s)); the decoding accuracies are in the results tables", dnn, n_layers, n_rois)
        inputs = registry.ScoreInputs(
            dnn=dnn, settings=exp.scores, seed=exp.seed,
            decoding=collected["decoding"].get(dnn) if "decoding" in exp.analyses else None,
            encoding=collected["encoding"].get(dnn), layers=exp.dnns[dnn].layers, rois=collected.get("rois"),
            subjects=collected.get("subjects"))
        if inputs.rois is None:
            inputs.rois = list(exp.rois or [])
        for name in registry.list_scores():
            res = registry.get(name)(inputs)
            if res is None:
                continue
            inputs.results[name] = res
            rows.append(row(dnn, registry.kind(name), res))
            if save_dir is not None:
                res.save(Path(save_dir) / check_relpath(dnn, "network name", subfolders=False) / f"{name}.json")
    df = pd.DataFrame(rows, columns=["dnn", "kind", *keys, "ci_low_percentile", "ci_high_percentile", *usage])
    for _, r in df[df["reason"] != ""].iterrows():
        log.warning("BH score of %s (%s) is NaN: %s", r["dnn"], r["kind"], r["reason"])
    df["ci_level"] = exp.scores["ci"]
    df["n_boot"] = exp.scores["n_boot"]
    df["n_perm"] = exp.scores["n_perm"]
    return df


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("brainlike", "numpy", "scipy", "scikit-learn", "pandas", "torch", "torchvision", "dask",
                "distributed"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(exp: Experiment, inputs: dict, summary: dict, timings: dict, ctx_path) -> dict:
    return {
        "config": exp.to_dict(),
        "config_source": exp.source,
        "config_sha256": sha256_file(exp.source) if exp.source and Path(exp.source).is_file() else None,
        "seed": exp.seed,
        "versions": _versions(),
        "inputs": inputs,
        "jobs": summary,
        "timings_s": timings,
        "context": str(ctx_path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
