"""Train/evaluation splits shared by every method of a mapping study.

Two schemes, as in Kay et al. (2008) and the studies built on their data:

- ``kay``: the models are fitted on the training images minus a held-out set drawn from them
  (e.g. 250 of 1750), and evaluated on that held-out set and on the separate validation set
  (the samples labelled ``"test"``, 120 images in vim-1).
- ``cv``: k-fold cross-validation over all samples; every sample is predicted once, by the model
  fitted without its fold.

Hyper-parameters (ridge alpha per voxel, PLS components) are chosen by an inner k-fold split of each
fitting set; the inner folds are built once per fitting set and given to every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brainlike.folds import kfold

from brainlike._validate import check_choice

__all__ = ["Fit", "Splits", "inner_folds", "make_splits"]

SCHEMES = ("auto", "kay", "cv")


@dataclass(frozen=True)
class Fit:
    """One model fit: the samples it is fitted on and the samples it predicts, per evaluation set."""

    fit: np.ndarray
    predict: dict[str, np.ndarray]


@dataclass(frozen=True)
class Splits:
    """The fits of a study and the evaluation sets they are scored on.

    ``fits``: every model fit to run (one for ``kay``, k for ``cv``). ``evaluations``: name -> the
    sample indices whose out-of-sample predictions are scored together (``heldout``,
    ``validation`` for ``kay``; ``cv`` for cross-validation).
    """

    kind: str
    n_samples: int
    fits: list[Fit]
    evaluations: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}: {len(v)}" for k, v in self.evaluations.items()]
        if self.kind == "cv":
            return f"{len(self.fits)}-fold cross-validation over {self.n_samples} samples"
        return f"fit on {len(self.fits[0].fit)} samples; evaluated on " + ", ".join(parts)


def make_splits(
    n_samples: int,
    split=None,
    *,
    scheme: str = "auto",
    n_heldout: int | float | None = None,
    cv: int = 5,
    seed: int = 0,
) -> Splits:
    """Build the splits of a study.

    ``split``: optional per-sample labels ("train"/"test"); "test" samples form the ``validation``
    set of the ``kay`` scheme. ``n_heldout``: number (or fraction) of training samples held out
    as the ``heldout`` evaluation set. ``scheme="auto"`` is ``kay`` when there is a validation
    set or a held-out set, else ``cv``.
    """
    check_choice(scheme, "scheme", SCHEMES)
    n_samples = int(n_samples)
    labels = None if split is None else np.asarray(split).astype(str)
    if labels is not None and labels.shape != (n_samples,):
        raise ValueError(f"split must have one label per sample ({n_samples}); got shape {labels.shape}")
    if labels is not None:
        unknown = sorted(set(labels) - {"train", "test"})
        if unknown:
            raise ValueError(f"split labels must be 'train' or 'test'; got {unknown[:5]}")
    has_test = labels is not None and bool((labels == "test").any())
    if scheme == "auto":
        scheme = "kay" if (has_test or n_heldout) else "cv"
    rng = np.random.default_rng(seed)
    if scheme == "cv":
        fits = [Fit(fit=tr, predict={"cv": te}) for tr, te in kfold(n_samples, cv, seed=seed, name="cv")]
        return Splits("cv", n_samples, fits, {"cv": np.arange(n_samples)})

    train = np.flatnonzero(labels == "train") if labels is not None else np.arange(n_samples)
    test = np.flatnonzero(labels == "test") if labels is not None else np.arange(0)
    if n_heldout is None:
        n_out = 0
    elif isinstance(n_heldout, float) and 0 < n_heldout < 1:
        n_out = int(round(n_heldout * train.size))
    else:
        n_out = int(n_heldout)
        if n_out < 0 or n_out != n_heldout:
            raise ValueError(f"n_heldout must be a count >= 0 or a fraction in (0, 1); got {n_heldout!r}")
    if n_out >= train.size:
        raise ValueError(
            f"n_heldout={n_heldout} leaves no training samples: only {train.size} training samples"
        )
    if n_out == 0 and test.size == 0:
        raise ValueError(
            "scheme='kay' needs a validation set (samples with split == 'test') or n_heldout > 0; got neither"
        )
    held = np.sort(rng.choice(train, size=n_out, replace=False)) if n_out else np.arange(0)
    fit = np.setdiff1d(train, held)
    evaluations = {}
    if n_out:
        evaluations["heldout"] = held
    if test.size:
        evaluations["validation"] = test
    return Splits("kay", n_samples, [Fit(fit=fit, predict=dict(evaluations))], evaluations)


def inner_folds(n_fit: int, cv: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner k-fold (train, test) index pairs of a fitting set, given to every method alike."""
    return kfold(n_fit, cv, seed=seed, name="inner_cv", unit="fitting samples")
