"""A run's decodability files in the published decodedDNN layout (Horikawa et al. 2019).

``OUT/decodability/[<roi>/]{accuracy,rank,decoded,true}/<dnn>/<layer>/...`` with the names of
:mod:`brainlike.datasets.decodeddnn` (bdds 1.0.1): per-unit accuracies and ranks of every
subject and of their average (``Averaged``), the decoded features of every test image per
subject, and the true features of the test images. Decoded features are returned to the
features' own scale with the training mean and standard deviation the decoder was trained
with (as BHscore's ``feature_decoding_predict.py`` does with ``y_mean``/``y_norm``). The
``<roi>/`` level is present when the run has several ROIs. ``load_decodability`` and
``read_decoded_features`` read the tree back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .jobs import Context, Job, read_units
from .store import load_npz

log = logging.getLogger("brainlike")


def write_decodability(ctx: Context, jobs: list[Job], table, out_dir) -> Path:
    """Write the decodedDNN tree of a run's decode jobs under ``out_dir``; return ``out_dir``."""
    from brainlike.datasets.decodeddnn import write_features
    from brainlike.scores.decodability import export_decodability

    out = Path(out_dir)
    roi_folders = len(ctx.rois) > 1
    export_decodability(table, out, average=True, roi_folders=roi_folders)
    by_key: dict = {}
    for j in jobs:
        if j.kind == "decode":
            by_key.setdefault((j.dnn, j.layer, j.roi), {}).setdefault(j.subject, []).append(j)
    subjects = {s: load_npz(p) for s, p in ctx.subjects.items()}
    n_files = 0
    for (dnn, layer, roi), per_subject in by_key.items():
        base = out / roi if roi_folders else out
        handle = ctx.features[dnn][layer]
        true_written = set()
        for s, sjobs in per_subject.items():
            sub = subjects[s]
            train_rows, test_rows = sub["train_rows"], sub["test_rows"]
            test_ids = [str(i) for i in sub["test_ids"]]
            decoded, truth = [], []
            for j in sorted(sjobs, key=lambda j: j.chunk):
                r = load_npz(j.path(ctx.workdir))
                f = read_units(handle, r["units"]).astype(np.float64)
                mean = f[train_rows].mean(axis=0)
                std = f[train_rows].std(axis=0)
                std[std == 0] = 1.0
                decoded.append(r["prediction"] * std + mean)
                truth.append(f[test_rows])
            n_files += len(write_features(base, dnn, layer, test_ids, np.concatenate(decoded, axis=1), subject=s))
            new = [k for k, i in enumerate(test_ids) if i not in true_written]
            if new:
                true = np.concatenate(truth, axis=1)[new]
                n_files += len(write_features(base, dnn, layer, [test_ids[k] for k in new], true))
                true_written.update(test_ids[k] for k in new)
    log.info("decodability files (accuracy, rank, %d decoded/true feature files) written under %s", n_files, out)
    return out
