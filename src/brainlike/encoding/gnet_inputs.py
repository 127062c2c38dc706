"""GNet's inputs and checkpoints: responses of one or several subjects (arrays, ``SubjectResponses``
or ``BrainData``) normalised to per-subject arrays and image rows, and the atomic, pickle-free
per-epoch checkpoints that let an interrupted fit resume.

Split from :mod:`brainlike.encoding.gnet` (which re-exports every name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from brainlike._io import atomic_write
from brainlike._validate import as_2d_float
from brainlike.encoding.gnet_modules import PrefilteredImages, _torch


@dataclass(frozen=True)
class SubjectResponses:
    """One subject's responses for :class:`GNet`: ``responses`` (n_rows, n_voxels), ``image_index``
    (n_rows,) the image each row answers (None: row i <-> image i), ``rois`` {name: bool mask
    (n_voxels,)} for ``mode="roi"``."""

    responses: np.ndarray
    image_index: np.ndarray | None = None
    rois: Mapping[str, np.ndarray] | None = None


def _is_brain(x) -> bool:
    return hasattr(x, "responses") and hasattr(x, "stimulus_ids") and hasattr(x, "rois")


def _subjects(responses) -> dict:
    """{subject: array | SubjectResponses | BrainData} from any accepted form of ``responses``."""
    if isinstance(responses, Mapping):
        return dict(responses)
    if _is_brain(responses) or isinstance(responses, SubjectResponses):
        name = getattr(responses, "subject", "") or "s0"
        return {name: responses}
    if isinstance(responses, Sequence) and responses and all(
            _is_brain(r) or isinstance(r, SubjectResponses) for r in responses):
        out = {}
        for i, r in enumerate(responses):
            name = getattr(r, "subject", "") or f"s{i}"
            if name in out:
                raise ValueError(f"responses: subject {name!r} appears twice; give each BrainData its own subject")
            out[name] = r
        return out
    return {"s0": responses}


def _subject_rois(responses) -> dict | None:
    """{subject: {roi: mask}} carried by SubjectResponses / BrainData inputs (None when none carries ROIs)."""
    out = {s: dict(r.rois) for s, r in _subjects(responses).items()
           if (isinstance(r, SubjectResponses) or _is_brain(r)) and r.rois}
    return out or None


def _normalise_responses(responses, image_index, n_images, image_ids=None):
    """({subject: float32 (n_rows, n_voxels)}, {subject: image row per response row}) from an array, a
    ``SubjectResponses``, a ``BrainData`` (rows paired with the images by stimulus id), a list of
    them or a dict {subject: any of these}."""
    from brainlike.ids import align

    subjects = _subjects(responses)
    if image_index is not None and not isinstance(image_index, Mapping):
        if len(subjects) != 1:
            raise ValueError("image_index must be a dict {subject: indices} when there are several subjects")
        image_index = {next(iter(subjects)): image_index}
    out_r, out_i = {}, {}
    for s, r in subjects.items():
        given = None if image_index is None or s not in image_index else image_index[s]
        if isinstance(r, SubjectResponses):
            if r.image_index is not None and given is not None:
                raise ValueError(f"responses[{s!r}] carries an image_index; do not also pass image_index for it")
            r, given = r.responses, r.image_index if given is None else given
        elif _is_brain(r):
            if given is not None:
                raise ValueError(f"responses[{s!r}] is BrainData: its rows are paired with the images by "
                                 "stimulus id; do not pass image_index for it")
            if image_ids is None:
                raise ValueError(f"responses[{s!r}] is BrainData: give the images as an ImageSet (or "
                                 "PrefilteredImages with ids) so its stimulus ids can be paired with them")
            given = align(image_ids, r.stimulus_ids, source="images", wanted=f"responses[{s!r}]")
            r = r.responses
        r = as_2d_float(r, f"responses[{s!r}]", dtype=np.float32, min_rows=4)
        idx = np.arange(r.shape[0]) if given is None else np.asarray(given)
        if idx.shape != (r.shape[0],):
            raise ValueError(
                f"image_index[{s!r}] must have one image index per response row ({r.shape[0]},); got shape {idx.shape}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n_images):
            raise ValueError(f"image_index[{s!r}] must index the {n_images} images; got values in [{idx.min()}, {idx.max()}]")
        out_r[s], out_i[s] = r, idx.astype(np.int64)
    return out_r, out_i


# ---------------------------------------------------------------------------------------------
# checkpoints: state dicts + JSON metadata, loaded with weights_only=True
# ---------------------------------------------------------------------------------------------
CHECKPOINT_FORMAT = 2


def _save_checkpoint(path, trunk, readouts, opt, state: dict, key: str) -> None:
    """One file, written atomically: tensors as state dicts, everything else as a JSON string, so that
    it loads with ``torch.load(weights_only=True)`` (no pickled objects, no code run on load)."""
    torch = _torch()
    meta = {"format": CHECKPOINT_FORMAT, "config": key, "epoch": state["epoch"], "best_score": state["best_score"],
            "best_epoch": state["best_epoch"], "history": state["history"], "done": state["done"],
            "has_best": state["best"] is not None}
    best = state["best"] or {"trunk": {}, "readouts": {}}
    snapshot = {"trunk": trunk.state_dict(), "readouts": readouts.state_dict(), "optimizer": opt.state_dict(),
                "best_trunk": best["trunk"], "best_readouts": best["readouts"], "meta": json.dumps(meta)}
    atomic_write(path, lambda tmp: torch.save(snapshot, tmp), suffix=".pt")


def _load_checkpoint(path, device) -> tuple[dict, dict]:
    """(tensors, state) of a checkpoint written by ``_save_checkpoint``; anything else (another format,
    a damaged file, a pickle holding objects) is refused with an error naming the file."""
    import pickle

    torch = _torch()
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        meta = json.loads(saved["meta"])
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"checkpoint {path} is not a GNet checkpoint of this version (state dicts + JSON "
                         f"metadata, loaded with weights_only=True) or is damaged ({type(err).__name__}: "
                         f"{first}); remove it to train afresh") from None
    state = {k: meta[k] for k in ("config", "epoch", "best_score", "best_epoch", "history", "done", "has_best")}
    state["best"] = None
    return saved, state


# ---------------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------------
