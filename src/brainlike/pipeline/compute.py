"""The numerical bodies of the jobs: decode a chunk of units, build a layer's kernel, encode voxels.

Decoding follows BHscore / Horikawa et al. 2019: voxels and units are z-scored with training
statistics, a FastL2LiR-style ``SelectiveRidge`` (``n_feat`` voxels per unit, penalised intercept)
is fitted on the training trials, and each unit's accuracy is the Pearson r between predicted and
true values over the (repetition-averaged) test images.

Encoding has two methods. ``recipe`` is BHscore's published one (Nonaka et al. 2021,
``encoding/featenc_fastl2lir_train.py`` and ``featenc_fastl2lir_predict.py`` of KamitaniLab/BHscore):
each voxel is predicted from the ``n_feat`` = 500 units of a layer most correlated with it (out of
all units), FastL2LiR ridge with alpha 100, streamed over the layer's units in bounded memory
(:func:`encode_recipe`). ``ridge_cv`` predicts every voxel from all units of a layer with ridge
(per-voxel alpha by grouped cross-validation). Ridge predictions depend on the features only through their inner products,
so a layer is read in unit chunks to accumulate its stimulus-by-stimulus Gram matrix, which is
then factorised into an equivalent ``(n_stimuli, rank)`` embedding ``Z`` (``Z Z^T = X X^T``).
Fitting ``RidgeCV`` on ``Z`` gives exactly the predictions of ``RidgeCV`` on the full layer, for
any alpha and any split, at a memory cost of ``n_stimuli^2`` instead of ``n_stimuli x n_units``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from brainlike._zscore import train_stats, zscore
from brainlike.folds import group_kfold
from brainlike.linear.rowspace import accumulate_gram, embed_gram  # noqa: F401  (used by pipeline.jobs)


def column_pearson(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-column Pearson r (NaN for a constant column, silently: NaN counts as 0 in BH scores)."""
    from brainlike.metrics import pearson

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(pearson(pred, true), dtype=np.float64)


@dataclass
class RoiVoxels:
    """One ROI's voxels ready for decoding unit chunks: z-scored with training statistics and
    prepared for ``SelectiveRidge`` (centred; Gram built by the first fit), plus the z-scored test
    responses and which stimulus rows are training and test rows. Reused by every chunk of units."""

    inputs: object  # brainlike.linear.PreparedInputs
    x_test: np.ndarray
    train_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.inputs.nbytes + self.x_test.nbytes)


def prepare_voxels(x_train, x_test, *, alpha=100.0, dtype="float32", train_rows=None, test_rows=None) -> RoiVoxels:
    """Z-score one ROI's responses with the training statistics and prepare them for decoding."""
    from brainlike.linear import SelectiveRidge

    dt = np.dtype(dtype)
    xtr, xte = zscore(x_train, x_test, ddof=1, dtype=dt, what="voxels", level=logging.DEBUG)
    inputs = SelectiveRidge(alpha=float(alpha), dtype=dt).prepare(xtr)
    return RoiVoxels(inputs, xte, train_rows, test_rows)


def decode_units(x_train, y_train, x_test, y_test, *, alpha=100.0, n_feat=500, dtype="float32"):
    """Fit one ``SelectiveRidge`` from voxels to a chunk of units; return (accuracy, prediction, truth).

    x_*: (n_samples, n_voxels) brain responses; y_*: (n_samples, n_units) features. The test
    arrays hold one row per test image (repetitions averaged). ``prediction`` is on the
    z-scored feature scale (Pearson r does not depend on it); ``truth`` is the z-scored test
    features, kept so that scores can be bootstrapped over test images.
    """
    voxels = prepare_voxels(x_train, x_test, alpha=alpha, dtype=dtype)
    return decode_prepared(voxels, y_train, y_test, n_feat=n_feat)


def decode_prepared(voxels: RoiVoxels, y_train, y_test, *, n_feat=500):
    """``decode_units`` on voxels already prepared by :func:`prepare_voxels` (one ROI, many chunks)."""
    from brainlike.linear import SelectiveRidge

    inputs = voxels.inputs
    dt = np.dtype(dict(inputs.settings)["dtype"])
    ytr, yte = zscore(y_train, y_test, ddof=1, dtype=dt, what="targets", level=logging.DEBUG)
    n_vox = inputs.n_features
    k = int(n_feat) if n_feat and int(n_feat) < n_vox else n_vox
    model = SelectiveRidge(alpha=inputs.alpha, n_feat=k, dtype=dt)
    model.fit(inputs, ytr)
    pred = np.asarray(model.predict(voxels.x_test), dtype=np.float32)
    return column_pearson(pred, yte), pred, np.asarray(yte, dtype=np.float32)


class ZScoredUnits:
    """A layer's units z-scored as BHscore's encoding scripts do, read column chunk by chunk.

    Mean and standard deviation (``ddof=1``) of each unit over the training images, each image once
    (``featenc_fastl2lir_train.py``: ``x_mean``/``x_norm`` of the training feature files, before
    ``X_sort`` repeats them per trial); every row (training and test images) is scaled with them
    (``featenc_fastl2lir_predict.py``: ``(x - x_mean) / x_norm``). A unit constant over the
    training images is 0 in every training row (scale 1, the rule of :mod:`brainlike._zscore`), so its
    ridge weight is 0 and its test values reach no prediction, as in bdpy (whose ``ModelTraining``
    sets the resulting inf to 0).
    """

    def __init__(self, handle, stat_rows: np.ndarray, dtype="float32"):
        from .inputs import _shape

        self.handle = handle
        self.stat_rows = np.unique(np.asarray(stat_rows, dtype=np.int64))
        self.shape = _shape(handle)
        self.dtype = np.dtype(dtype)
        if self.stat_rows.size < 2:
            raise ValueError(f"z-scoring units needs >= 2 training images; got {self.stat_rows.size}")

    def read(self, cols) -> np.ndarray:
        from .jobs import read_units

        block = read_units(self.handle, cols)
        # ddof=1 as BHscore (decoding/feature_decoding_train.py l.174-179: np.std(x, axis=0, ddof=1))
        # constant units are counted by the model (n_constant_inputs_): logged at DEBUG here, per chunk
        st = train_stats(block[self.stat_rows], ddof=1, what="units", level=logging.DEBUG)
        return st.apply(block, self.dtype)


def encode_recipe(features, train_rows, y_train, test_rows, y_test, *, alpha=100.0, n_feat=500, chunk_size=4096,
                  memory_mb=1024, dtype="float32"):
    """BHscore's encoding recipe for a set of voxels; return (accuracy, prediction, truth, n_constant).

    features: a layer handle (``.read(units)``) or array (n_stimuli, n_units), never read whole;
    train_rows: feature row of each training trial (repeats allowed); y_train: (n_trials, n_voxels);
    test_rows / y_test: one row per test image (repetitions averaged). Units are z-scored with the
    training images' statistics (:class:`ZScoredUnits`), voxels with the training trials'; each
    voxel's ``n_feat`` most correlated units over the training trials are kept and FastL2LiR's ridge
    (penalised intercept) fitted; accuracy is the Pearson r over test images (Pearson is unchanged by
    the scripts' back-transform ``y_pred * y_norm + y_mean``).
    """
    from brainlike.linear import StreamingSelectiveRidge

    dt = np.dtype(dtype)
    ytr, yte = zscore(y_train, y_test, ddof=1, dtype=dt, what="targets", level=logging.DEBUG)
    units = ZScoredUnits(features, train_rows, dtype=dt)
    k = int(min(int(n_feat), units.shape[1]))
    # (voxels x units) correlations of one chunk stay near 128 MB however many voxels a job has
    cs = int(min(int(chunk_size), max(256, 2**25 // max(1, ytr.shape[1]))))
    model = StreamingSelectiveRidge(alpha=float(alpha), n_feat=k, chunk_size=cs, memory_mb=memory_mb, dtype=dt)
    model.fit(units, ytr, rows=np.asarray(train_rows, dtype=np.int64),
              test_rows=np.asarray(test_rows, dtype=np.int64))
    pred = np.asarray(model.test_predictions_, dtype=np.float32)
    return column_pearson(pred, yte), pred, np.asarray(yte, dtype=np.float32), model.n_constant_inputs_


def encode_voxels(z_train, y_train, z_test, y_test, *, alphas, cv=5, groups=None, dtype="float32"):
    """Per-voxel ridge (alpha per voxel by grouped CV); return (accuracy, prediction, truth, alphas).

    z_*: rows of the layer embedding (see :func:`embed_gram`); y_*: voxel responses.
    """
    from brainlike.linear import RidgeCV

    dt = np.dtype(dtype)
    ytr, yte = zscore(y_train, y_test, ddof=1, dtype=dt, what="targets", level=logging.DEBUG)
    ztr = np.asarray(z_train, dtype=dt)
    zte = np.asarray(z_test, dtype=dt)
    folds = group_kfold(groups if groups is not None else np.arange(len(ztr)), cv, what="encoding cross-validation",
                        group_name="training stimuli")
    model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=folds, alpha_per_target=True, dtype=dt)
    model.fit(ztr, ytr)
    pred = np.asarray(model.predict(zte), dtype=np.float32)
    best = np.broadcast_to(np.asarray(model.best_alphas_, dtype=np.float64), (ytr.shape[1],)).copy()
    return column_pearson(pred, yte), pred, np.asarray(yte, dtype=np.float32), best
