"""``run_study``: a whole mapping study from brain data, a network and images (``brainlike map``).

The command line is a thin call of this function: choose the samples (a split, a random subset),
pair the responses with the images by stimulus id, extract each layer's features (plain and/or
retina-warped images) and map every layer to every ROI with ridge and PLS on the same splits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from brainlike.mapping.splits import inner_folds, make_splits
from brainlike.mapping.study import METHODS, MappingResult, check_names, map_layers

__all__ = ["RETINA_WARP", "resolve_layers", "run_study"]

log = logging.getLogger("brainlike")

RETINA_WARP = {"off": ("plain",), "on": ("warped",), "both": ("plain", "warped")}


def resolve_layers(model, requested) -> list[str]:
    """Layer names of ``model`` for ``requested`` (``"all"``: the literature aliases if the network
    has them, e.g. conv1..fc8, else every hookable layer)."""
    from brainlike.models import layers

    all_layers = list(layers(model))
    aliases = list(getattr(model, "aliases", {}) or {})
    if requested in (["all"], ("all",), "all", None):
        return aliases or all_layers
    if isinstance(requested, str):
        requested = [requested]
    return check_names(list(requested), aliases + all_layers, "layers")


def _stimulus_source(stimuli):
    """An ImageSet from an ImageSet, an image folder or zip, or a registered stimuli dataset name."""
    from brainlike.stimuli import ImageSet

    if stimuli is None or hasattr(stimuli, "subset"):
        return stimuli
    p = Path(stimuli)
    if p.exists():
        return ImageSet.from_zip(p) if p.suffix == ".zip" else ImageSet.from_folder(p)
    from brainlike import datasets

    if str(stimuli) in datasets.list_datasets():
        images = datasets.load(str(stimuli))
        if hasattr(images, "subset"):
            return images
        raise ValueError(f"stimuli: dataset {str(stimuli)!r} holds no images")
    raise ValueError(f"stimuli: {str(stimuli)!r} is neither an image folder, a zip file nor a registered "
                     "image dataset (brainlike datasets list)")


def run_study(
    data,
    model,
    *,
    layers="all",
    rois="all",
    stimuli=None,
    use_split: str | Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    scheme: str = "auto",
    n_heldout: int | float | None = None,
    cv: int = 5,
    inner_cv: int = 5,
    alphas="auto",
    pls_components=None,
    retina_warp: str = "off",
    fovea: float = 0.25,
    n_images: int | None = None,
    seed: int = 0,
    store=None,
    batch_size: int = 32,
    progress: bool | Callable[[str], None] = False,
) -> MappingResult:
    """Map layers of ``model`` to ROIs of ``data`` (a ``BrainData``) on its own images.

    ``stimuli``: the images when ``data`` carries none (``data.stimuli``): an ImageSet, an image
    folder or zip, or a registered image dataset name (e.g. ``"kay2008_vim1_stimuli"``).
    ``use_split``: keep only the samples of this split (or splits), e.g. ``"train"`` to study vim-1's
    1750 training images without the 120 validation images. ``retina_warp``: ``"off"`` (plain
    images), ``"on"`` (warped) or ``"both"`` (compared in one result). ``n_images``: a random
    subset of images (seeded). The other arguments are those of :func:`map_layers`.
    Every response sample is paired with its image by stimulus id; a response id that names no
    image is an error that lists the first few.
    """
    from brainlike import features as F
    from brainlike.ids import align
    from brainlike.stimuli import retina_warp as warp

    say = progress if callable(progress) else (log.info if progress else (lambda *_: None))
    if retina_warp not in RETINA_WARP:
        raise ValueError(f"retina_warp must be one of {list(RETINA_WARP)}; got {retina_warp!r}")
    if not hasattr(data, "roi_names"):
        raise ValueError(f"data must be a BrainData with ROIs; got {type(data).__name__}")
    if use_split is not None:
        wanted = [use_split] if isinstance(use_split, str) else list(use_split)
        have = [] if data.split is None else sorted(set(np.asarray(data.split).astype(str).tolist()))
        bad = [s for s in wanted if s not in have]
        if bad:
            raise ValueError(f"use_split: {bad} not among the data's splits {have}")
        data = data.select_samples(np.isin(np.asarray(data.split).astype(str), wanted))
    roi_names = check_names(rois if rois not in ("all", ["all"]) else None, list(data.roi_names), "rois")
    layer_names = resolve_layers(model, layers)

    images = _stimulus_source(stimuli) or getattr(data, "stimuli", None)
    if images is None:
        raise ValueError("stimuli: the brain data carry no images; give stimuli (an image folder, zip or "
                         "registered image dataset)")
    ids = list(dict.fromkeys(str(s) for s in data.stimulus_ids))
    if n_images is not None:
        if n_images < 2:
            raise ValueError(f"n_images must be >= 2; got {n_images}")
        keep = set(np.random.default_rng(seed).choice(ids, size=min(n_images, len(ids)), replace=False))
        ids = [s for s in ids if s in keep]
        data = data.select_samples(np.array([s in keep for s in data.stimulus_ids]))
    try:
        rows = align(images.ids, ids, source=f"images of {getattr(images, 'name', '') or 'the stimuli'!r}",
                     wanted="the responses")
    except ValueError as e:
        splits = [] if data.split is None else sorted(set(np.asarray(data.split).astype(str).tolist()))
        hint = f" (to leave a split without images out, pass use_split, one of {splits})" if len(splits) > 1 else ""
        raise type(e)(f"{e}{hint}") from None
    images = images.subset([images.ids[r] for r in rows])

    # check the splits before the (slow) feature extraction
    if isinstance(n_heldout, float) and n_heldout >= 1:
        n_heldout = int(n_heldout)
    avg = data.average_repetitions()
    splits = make_splits(avg.n_samples, avg.split, scheme=scheme, n_heldout=n_heldout, cv=cv, seed=seed)
    for f in splits.fits:
        inner_folds(len(f.fit), inner_cv, seed)

    results = []
    for variant in RETINA_WARP[retina_warp]:
        stim = images
        if variant == "warped":
            stim = images.map(lambda im: warp(im, fovea=fovea), name=f"{getattr(images, 'name', '')}_warped")
        where = None if store is None else Path(store) / variant
        say(f"extracting {len(layer_names)} layer(s) of {model.name} for {len(stim)} {variant} images")
        feats = F.extract(model, stim, layer_names, store=where, batch_size=batch_size, progress=bool(progress))
        results.append(map_layers(
            {name: feats[name] for name in layer_names}, data, rois=roi_names, methods=methods,
            scheme=scheme, n_heldout=n_heldout, cv=cv, inner_cv=inner_cv, alphas=alphas,
            pls_components=pls_components, seed=seed, stimuli_label=variant, progress=say,
        ))
    result = results[0] if len(results) == 1 else MappingResult.concat(results)
    result.info.update(model=model.name, retina_warp=retina_warp, use_split=use_split,
                       n_stimuli=len(ids), subject=getattr(data, "subject", None))
    return result
