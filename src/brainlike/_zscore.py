"""Z-scoring with training statistics: the one home of this step in brainlike.

Every room that standardises columns with the statistics of its training rows calls
:func:`train_stats` / :func:`zscore` (numpy) or :func:`backend_train_stats` (any backend), with one
rule for a zero-variance column: its scale is 1 (scikit-learn's ``StandardScaler``), so it becomes
0 in the training rows and carries no weight in a fit -- never a division by 0 and never a 1e-6
that blows a test value up by a million. Such columns are counted (``n_constant``) and reported
once per call on the ``"brainlike"`` logger (INFO).

``ddof`` is the caller's choice and part of its recipe (BHscore z-scores with ``ddof=1``;
scikit-learn and NSD with ``ddof=0``). Statistics are accumulated in float64 over blocks of rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("brainlike")
_BLOCK = 1 << 19  # float64 values per block of rows (4 MiB)


@dataclass(frozen=True)
class TrainStats:
    """Column mean and scale (std, 1 where the std is 0) of training rows, float64."""

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray  # mask of the zero-variance columns (their scale was set to 1)

    @property
    def n_constant(self) -> int:
        return int(self.constant.sum())

    def apply(self, x, dtype=None) -> np.ndarray:
        """``(x - mean) / scale`` as a new array of ``dtype`` (default: x's float dtype, else float32),
        computed in that dtype without a full-size float64 temporary."""
        x = np.asarray(x)
        dt = np.dtype(dtype) if dtype is not None else (x.dtype if np.issubdtype(x.dtype, np.floating)
                                                        else np.dtype(np.float32))
        z = np.array(x, dtype=dt, copy=True)
        z -= self.mean.astype(dt)
        z *= (1.0 / self.scale).astype(dt)
        return z


def train_stats(train, *, ddof: int = 0, what: str = "columns", level: int = logging.INFO) -> TrainStats:
    """Mean and scale of each column of ``train`` (rows: samples); see the module docstring.

    ``level``: logging level of the zero-variance report (DEBUG where the caller counts them itself)."""
    train = np.asarray(train)
    if train.ndim < 1 or train.shape[0] < ddof + 1:
        raise ValueError(f"z-scoring {what} needs at least {ddof + 1} training row(s); got shape {train.shape}")
    n = train.shape[0]
    mean = train.mean(axis=0, dtype=np.float64)
    ss = np.zeros(train.shape[1:], dtype=np.float64)
    step = max(1, _BLOCK // max(1, int(np.prod(train.shape[1:]))))
    for lo in range(0, n, step):
        block = train[lo:lo + step].astype(np.float64)
        block -= mean
        block *= block
        ss += block.sum(0)
    std = np.sqrt(ss / max(n - ddof, 1))
    constant = ~(std > 0)
    _report(int(constant.sum()), constant.size, what, level)
    return TrainStats(mean, np.where(constant, 1.0, std), constant)


def zscore(train, *others, ddof: int = 0, dtype=None, what: str = "columns",
           level: int = logging.INFO) -> list[np.ndarray]:
    """``train`` and each of ``others`` z-scored with ``train``'s statistics -> list of new arrays."""
    stats = train_stats(train, ddof=ddof, what=what, level=level)
    return [stats.apply(a, dtype) for a in (train, *others)]


def backend_train_stats(be, ref, axis: int, *, what: str = "columns", level: int = logging.INFO):
    """Mean and scale (std with ``ddof=0``, 1 where 0) of backend array ``ref`` along ``axis``, kept
    on the backend (``keepdims``); the zero-variance columns are counted and reported."""
    mu = be.mean(ref, axis=axis, keepdims=True)
    sd = be.std(ref, axis=axis, keepdims=True)
    zero = sd <= 0
    _report(int(be.to_numpy(zero.sum())), int(np.prod(tuple(zero.shape))), what, level)
    return mu, be.where(zero, 1.0, sd)


def _report(n_constant: int, n_total: int, what: str, level: int = logging.INFO) -> int:
    if n_constant:
        log.log(level, "z-scoring: %d of %d %s have zero variance in the training rows (scale 1: they are 0 there)",
                 n_constant, n_total, what)
    return n_constant
