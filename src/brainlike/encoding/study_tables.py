"""The encoding study's results from its finished jobs: per-voxel accuracy, fwRF fields, tuning, transfer.

Job results are read back whole (CRC-checked); a damaged one is moved aside by the pipeline's one
rule (``pipeline.store.set_aside``, into ``<work>/corrupt/``) and its job runs again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.encoding.study_jobs import JOINT, TUNING_COLUMNS
from brainlike.pipeline.jobs import RESULT_KEYS, Job
from brainlike.pipeline.store import CorruptResultError, load_result, save_table, set_aside


class DamagedJobs(Exception):
    """Job results found damaged while collecting (set aside: their jobs run again)."""

    def __init__(self, paths):
        super().__init__(f"{len(paths)} damaged job result(s) set aside")
        self.paths = paths


def collect(ctx, jobs: list[Job]) -> dict:
    """{"preds": {model: {subject: (n_samples, n_voxels), NaN where not evaluated}},
    "fields": {subject: [(n_voxels, 3) per fold]}, "tuning": [table per subject]}."""
    damaged = []
    preds: dict = {}
    fields: dict = {}
    tuning = []
    for job in jobs:
        path = job.path(ctx.workdir)
        try:
            r = load_result(path, RESULT_KEYS[job.kind])
            if job.kind in JOINT:
                missing = [k for s in ctx.subjects for k in (f"pred_{s}", f"rows_{s}") if k not in r]
                if missing:
                    raise CorruptResultError(path, f"arrays {missing} missing")
        except CorruptResultError as e:
            set_aside(e.path, ctx.workdir)
            damaged.append(e.path)
            continue
        model = "fwrf" if job.kind == "fwrf_tuning" else job.kind
        for s in ctx.subjects if job.kind in JOINT else [job.subject]:
            P = preds.setdefault(model, {}).setdefault(s, np.full(ctx.arrays(s)["Y"].shape, np.nan, np.float32))
            if job.kind in JOINT:
                P[r[f"rows_{s}"]] = r[f"pred_{s}"]
            else:
                P[r["eval_rows"]] = r["pred"]
        if model == "fwrf":
            fields.setdefault(job.subject, []).append(r["fields"])
        if job.kind == "fwrf_tuning":
            tuning.append(pd.DataFrame({k.removeprefix(TUNING_COLUMNS): v for k, v in r.items()
                                        if k.startswith(TUNING_COLUMNS)}))
    if damaged:
        raise DamagedJobs(damaged)
    return {"preds": preds, "fields": fields, "tuning": tuning}


def fields_table(study, fields: dict, rois) -> pd.DataFrame:
    """fwRF pooling field of every voxel, per fold (x, y: centre, image width 1, y up; sigma: size)."""
    rows = []
    for s, per_fold in fields.items():
        for k, f in enumerate(per_fold):
            for roi in study.rois:
                vox = np.flatnonzero(rois(s, roi))
                rows.append(pd.DataFrame({"subject": s, "roi": roi, "voxel": vox, "fold": k, "x": f[vox, 0],
                                          "y": f[vox, 1], "sigma": f[vox, 2]}))
    return pd.concat(rows, ignore_index=True)


def score_voxels(study, ctx, preds, avg, n_reps) -> pd.DataFrame:
    """Per voxel r and R² over every evaluated image; R² / noise ceiling where ncsnr is known."""
    from brainlike.metrics import pearson, r2
    from brainlike.metrics.ceiling import ncsnr_to_noise_ceiling

    rows = []
    for s in ctx.subjects:
        a = ctx.arrays(s)
        Y = a["Y"]
        ev = np.unique(np.concatenate([a[f"eval_{k}"] for k in range(ctx.n_folds)]))
        nc = None
        if "ncsnr" in (avg[s].voxel_info or {}):
            # NSD's ceiling for images averaged over different numbers of trials: the noise term is the
            # mean of 1/n over the evaluated images (NSD data manual, ncsnr), i.e. n = their harmonic mean
            n_eff = 1.0 / np.mean(1.0 / n_reps[s][ev])
            nc = ncsnr_to_noise_ceiling(np.asarray(avg[s].voxel_info["ncsnr"], np.float64), n_trials=n_eff) / 100
        for model in study.models:
            r = pearson(preds[model][s][ev], Y[ev])
            rr = r2(Y[ev], preds[model][s][ev])
            for roi in study.rois:
                vox = np.flatnonzero(a[f"roi_{roi}"])
                df = pd.DataFrame({"model": model, "subject": s, "roi": roi, "voxel": vox, "r": r[vox],
                                   "r2": rr[vox], "n_images": ev.size})
                if nc is not None:
                    df["noise_ceiling"] = nc[vox]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        df["r2_norm"] = np.where(nc[vox] > 0, rr[vox] / nc[vox], np.nan)
                rows.append(df)
    return pd.concat(rows, ignore_index=True)


def _cached_table(path: Path, workdir):
    """A finished analysis table, or None when absent or damaged (then set aside: it is recomputed)."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception:
        set_aside(path, workdir)
        return None


def transfer_tables(ctx, results: Path) -> dict:
    """Transfer matrix and synthetic transfer of GNet8r (fold 0; its fit resumes from the job's
    checkpoints), cached in the work folder; written to ``results``. {analysis: source x target}."""
    from brainlike.encoding.analyses import TransferResult, plot_transfer_matrix, synthetic_transfer, transfer_matrix
    from brainlike.encoding.gnet import PrefilteredImages
    from brainlike.encoding.study_jobs import gnet

    study, work = ctx.study, Path(ctx.workdir)
    wanted = [a for a in ("transfer", "synthetic_transfer") if a in study.analyses]
    cache = {a: work / f"{a}-{ctx.sig}.parquet" for a in wanted}
    done = {a: _cached_table(cache[a], work) for a in wanted}
    if any(t is None for t in done.values()):
        subs = {s: ctx.arrays(s) for s in ctx.subjects}
        g = gnet(study, "roi", ctx.checkpoints("gnet8r", 0))
        pre = g.prefilter_images(ctx.images)
        fit = {s: a["fit_0"] for s, a in subs.items()}
        ev = {s: a["eval_0"] for s, a in subs.items()}
        Y = {s: a["Y"] for s, a in subs.items()}
        rows = {s: a["rows"] for s, a in subs.items()}
        rois = {s: {r: a[f"roi_{r}"] for r in study.rois} for s, a in subs.items()}
        g.fit(pre, {s: Y[s][fit[s]] for s in Y}, image_index={s: rows[s][fit[s]] for s in Y}, rois=rois)
        if done.get("transfer", 0) is None:
            tm = transfer_matrix(g, pre, {s: Y[s][fit[s]] for s in Y}, pre, {s: Y[s][ev[s]] for s in Y},
                                 train_index={s: rows[s][fit[s]] for s in Y},
                                 val_index={s: rows[s][ev[s]] for s in Y})
            done["transfer"] = tm.relative.rename_axis("source").reset_index()
        if done.get("synthetic_transfer", 0) is None:
            fit_img = np.unique(np.concatenate([rows[s][fit[s]] for s in Y]))
            ev_img = np.unique(np.concatenate([rows[s][ev[s]] for s in Y]))
            st = synthetic_transfer(g, PrefilteredImages(pre.maps[fit_img]), PrefilteredImages(pre.maps[ev_img]),
                                    seed=study.seed)
            done["synthetic_transfer"] = st.relative.rename_axis("source").reset_index()
        for a in wanted:
            save_table(done[a], cache[a])
    out = {}
    for a in wanted:
        save_table(done[a], results / ("transfer_matrix.parquet" if a == "transfer" else f"{a}.parquet"))
        matrix = done[a].set_index("source")
        matrix.columns.name = "target"
        out[a] = matrix
    if "transfer" in wanted:
        plot_transfer_matrix(TransferResult(relative=out["transfer"]), results / "transfer_matrix.png")
    return out
