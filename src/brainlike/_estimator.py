"""The contract every estimator of brainlike follows (``brainlike.linear``, ``FWRF``, ``GNet``).

- scikit-learn ``BaseEstimator`` semantics: ``__init__`` stores its parameters and nothing else,
  ``get_params(deep=...)``/``set_params`` cover every parameter, ``sklearn.base.clone`` works,
  and a method that needs a fitted model raises ``sklearn.exceptions.NotFittedError`` before fit.
- ``score(X, y)`` is scikit-learn's: the mean over targets of R² (``r2_score(y, predict(X),
  multioutput="uniform_average")``). ``score_targets(X, y, scoring="r2"|"pearson")`` gives one
  score per target (its mean is ``score`` for ``scoring="r2"``).
- One set of parameter names: ``alpha`` (one penalty) / ``alphas`` (a grid), ``random_state``,
  ``n_threads``, ``scoring``, and ``backend``/``device``/``dtype`` resolved by
  :mod:`brainlike._backend`. Older names still work for one release with a ``DeprecationWarning``
  naming the new one (:class:`RenamedParams`).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from sklearn.exceptions import NotFittedError  # noqa: F401  (re-exported: one import for the estimators)

SCORINGS = ("r2", "pearson")


def target_scores(y, pred, scoring: str = "r2") -> np.ndarray:
    """Per-target score of predictions ``pred`` for ``y`` (both (n_samples, n_targets) or (n_samples,)).

    ``"r2"``: scikit-learn's ``r2_score(..., multioutput="raw_values")`` (a constant target scores
    1.0 when predicted exactly, else 0.0, as scikit-learn); ``"pearson"``: ``brainlike.metrics.pearson``
    (NaN and a RuntimeWarning for a constant column).
    """
    from brainlike._validate import check_choice

    check_choice(scoring, "scoring", SCORINGS)
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if pred.ndim == 1:
        pred = pred[:, None]
    if y.shape != pred.shape:
        raise ValueError(f"y must have the shape of the predictions {pred.shape} (samples, targets); got {y.shape}")
    if scoring == "r2":
        from sklearn.metrics import r2_score

        return np.atleast_1d(r2_score(y, pred, multioutput="raw_values"))
    from brainlike.metrics import pearson

    return np.atleast_1d(pearson(y, pred))


class TargetScoreMixin:
    """``score`` = mean R² over targets (scikit-learn's meaning); ``score_targets`` = one score per target.

    Estimators whose ``predict`` takes more arguments (a subject, say) pass them through ``**kw``.
    """

    def score(self, X, y, sample_weight=None, **predict_kw):
        """Mean R² over targets of ``predict(X)`` (scikit-learn's ``RegressorMixin.score``)."""
        from sklearn.metrics import r2_score

        pred = np.asarray(self.predict(X, **predict_kw), dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2 and pred.ndim == 2 and y.shape != pred.shape:
            raise ValueError(f"y must have the shape of the predictions {pred.shape} (samples, targets); got {y.shape}")
        return float(r2_score(y, pred, sample_weight=sample_weight, multioutput="uniform_average"))

    def score_targets(self, X, y, scoring: str = "r2", **predict_kw) -> np.ndarray:
        """One score per target (n_targets,): R² (default) or Pearson r of ``predict(X)`` with ``y``."""
        return target_scores(y, self.predict(X, **predict_kw), scoring)


class RenamedParams:
    """Former parameter names that still work for one release, in ``__init__`` and ``set_params``.

    A class lists ``_renamed = {"old": "new"}`` and decorates its ``__init__`` with
    :func:`accepts_renamed`; its signature (hence ``get_params`` and ``clone``) shows only the new names.
    """

    _renamed: dict = {}

    def set_params(self, **params):
        return super().set_params(**_translate(type(self), params, "set_params"))


def _translate(cls, params: dict, where: str) -> dict:
    for old in [k for k in params if k in cls._renamed]:
        new = cls._renamed[old]
        if new in params:
            raise TypeError(f"{cls.__name__}.{where}() got both {old!r} and its new name {new!r}; give only {new!r}")
        warnings.warn(f"{cls.__name__}: the parameter {old!r} is renamed {new!r}; {old!r} will be removed in the "
                      "next release", DeprecationWarning, stacklevel=3)
        params[new] = params.pop(old)
    return params


def accepts_renamed(init):
    """Decorator of ``__init__``: former names (the class's ``_renamed``) mapped to the new ones, with a warning."""

    @functools.wraps(init)  # inspect.signature (scikit-learn's get_params) follows __wrapped__: the new names only
    def wrapper(self, *args, **params):
        init(self, *args, **_translate(type(self), params, "__init__"))

    return wrapper


def renamed_attribute(old: str, new: str):
    """A read-only property ``old`` that warns and returns the fitted attribute ``new``."""

    def get(self):
        warnings.warn(f"{type(self).__name__}.{old} is renamed {new}; {old} will be removed in the next release",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of ``{new}``.")
