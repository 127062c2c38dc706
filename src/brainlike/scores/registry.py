"""Scores named in a registry: ``brainlike run`` computes every registered score for every network.

A score is a function ``fn(inputs: ScoreInputs) -> ScoreResult | None`` (None: it does not apply
to this run, e.g. an encoding score in a decoding-only run). Built-in scores are named here and
imported only when first asked for (importing :mod:`brainlike.scores` runs no score code and
registers nothing)::

    bh_decoding   decoding-based BH score (subject-averaged accuracies, random layer selections)
    bh_encoding   encoding-based BH score (voxels pooled over subjects)
    bh_average    mean of both, with paired replicates

``register(name, fn)`` adds one; the results table's ``kind`` column is its ``kind`` (the name
unless given; the built-ins keep ``decoding``, ``encoding``, ``average``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

_BUILTIN = {
    "bh_decoding": ("brainlike.pipeline.scoring:decoding_score", "decoding"),
    "bh_encoding": ("brainlike.pipeline.scoring:encoding_score", "encoding"),
    "bh_average": ("brainlike.pipeline.scoring:average_score", "average"),
}
_REGISTERED: dict[str, tuple[Callable, str]] = {}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass
class ScoreInputs:
    """What a registered score gets for one network of a run.

    ``decoding``: {"acc": [per subject: list over layers of (n_rois, n_units)], "n_test": [per
    subject], and when kept "pred" / "truth"} or None; ``encoding``: the same over ROIs of
    (n_layers, n_voxels) or None; ``settings``: the run's ``scores`` settings (pval, n_boot,
    n_perm, ci, n_layers, n_repeat, voxels_per_roi); ``results``: the scores already computed for
    this network, by name (registration order).
    """

    dnn: str
    settings: dict
    seed: int = 0
    decoding: dict | None = None
    encoding: dict | None = None
    layers: list | None = None
    rois: list | None = None
    subjects: list | None = None
    results: dict = field(default_factory=dict)


def _check_name(name) -> None:
    if not (isinstance(name, str) and _NAME.match(name)):
        raise ValueError(f"name must be a string of letters, digits, '_', '.', '-' starting with a letter; got {name!r}")


def register(name: str, fn: Callable, *, kind: str | None = None, overwrite: bool = False) -> None:
    """Register score ``fn(inputs: ScoreInputs) -> ScoreResult | None`` under ``name``.

    ``kind``: the label of its rows in ``bh_scores`` (default: ``name``). A name already taken
    (built-in or registered) needs ``overwrite=True``.
    """
    _check_name(name)
    if not callable(fn):
        raise ValueError(f"fn must be callable (inputs -> ScoreResult or None); got {type(fn).__name__}")
    if not overwrite and (name in _BUILTIN or name in _REGISTERED):
        raise ValueError(f"score {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTERED[name] = (fn, kind or name)


def unregister(name: str) -> None:
    """Remove a score added with :func:`register` (built-ins cannot be removed)."""
    if name not in _REGISTERED:
        raise KeyError(f"score {name!r} was not registered with brainlike.scores.register; registered: "
                       f"{sorted(_REGISTERED)}")
    del _REGISTERED[name]


def list_scores() -> list[str]:
    """Names of all scores, built-ins first, then registered ones in registration order."""
    return [*[n for n in _BUILTIN if n not in _REGISTERED], *_REGISTERED]


def kind(name: str) -> str:
    """The results-table label of score ``name``."""
    if name in _REGISTERED:
        return _REGISTERED[name][1]
    if name in _BUILTIN:
        return _BUILTIN[name][1]
    raise KeyError(f"unknown score {name!r}; known: {list_scores()}")


def get(name: str) -> Callable:
    """The function of score ``name`` (a built-in is imported on first use)."""
    if name in _REGISTERED:
        return _REGISTERED[name][0]
    if name not in _BUILTIN:
        raise KeyError(f"unknown score {name!r}; known: {list_scores()}")
    module, attr = _BUILTIN[name][0].split(":")
    return getattr(importlib.import_module(module), attr)
