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

from brainlike._zscore import train_stats
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
    cs = int(ctx.decoding["chunk_size"])
    n_files = 0
    for (dnn, layer, roi), per_subject in by_key.items():
        base = out / roi if roi_folders else out
        handle = ctx.features[dnn][layer]
        true_written = set()
        for s, sjobs in per_subject.items():
            sub = subjects[s]
            train_rows, test_rows = sub["train_rows"], sub["test_rows"]
            test_ids = [str(i) for i in sub["test_ids"]]
            sjobs = sorted(sjobs, key=lambda j: j.chunk)
            n_units = sum(len(ctx.units[dnn][layer][j.chunk * cs:(j.chunk + 1) * cs]) for j in sjobs)
            # one (n_test, n_units) float32 array each, filled chunk by chunk (VGG19 conv1_1: 0.6 GB)
            decoded = np.empty((len(test_ids), n_units), dtype=np.float32)
            truth = np.empty((len(test_ids), n_units), dtype=np.float32)
            at = 0
            for j in sjobs:
                r = load_npz(j.path(ctx.workdir))
                f = read_units(handle, r["units"]).astype(np.float64)
                st = train_stats(f[train_rows], ddof=1, what="units")  # the decoder's own z-scoring statistics
                k = f.shape[1]
                decoded[:, at:at + k] = r["prediction"] * st.scale + st.mean
                truth[:, at:at + k] = f[test_rows]
                at += k
            n_files += len(write_features(base, dnn, layer, test_ids, decoded, subject=s))
            new = [k for k, i in enumerate(test_ids) if i not in true_written]
            if new:
                n_files += len(write_features(base, dnn, layer, [test_ids[k] for k in new], truth[new]))
                true_written.update(test_ids[k] for k in new)
    log.info("decodability files (accuracy, rank, %d decoded/true feature files) written under %s", n_files, out)
    return out
