"""Loaders of model hubs: OpenCLIP image towers and Hugging Face vision models.

Both packages are optional (``pip install brainlike[zoo]``); weights come through each
package's own cache and download, so a machine offline needs them in that cache.
"""

from __future__ import annotations

import importlib.util
import logging

from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess, _eval
from ._registry import WeightsUnavailableError

log = logging.getLogger("brainlike")


def _need(package: str, pip: str, name: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ImportError(f"{name} needs the {pip} package, which is not installed: pip install {pip} "
                          "(or pip install 'brainlike[zoo]')")


def _interp(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):  # PIL resampling codes: 3 is bicubic
        return "bicubic" if value == 3 else "bilinear"
    return "bicubic" if "bicubic" in str(value).lower() else "bilinear"


def load_open_clip(spec: str, pretrained: bool = True) -> Model:
    """``open_clip:<model>`` or ``open_clip:<model>@<tag>``: the image tower (``model.visual``) of OpenCLIP.

    ``<tag>`` names the pretrained weights (``open_clip.list_pretrained_tags_by_model``); it may be
    left out when the model has exactly one. Preprocessing follows the model's own configuration
    (size, mean, std, interpolation), resizing the whole image.
    """
    _need("open_clip", "open_clip_torch", f"open_clip:{spec}")
    import open_clip

    arch, _, tag = spec.partition("@")
    known = open_clip.list_models()
    if arch not in known:
        raise ValueError(f"open_clip model must be one of open_clip.list_models() ({len(known)} names, e.g. "
                         f"{known[:5]}); got {arch!r}")
    weights = None
    if pretrained:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if tag:
            if tag not in tags:
                raise ValueError(f"open_clip weights tag for {arch} must be one of {tags}; got {tag!r}")
            weights = tag
        elif len(tags) == 1:
            weights = tags[0]
        else:
            raise ValueError(f"open_clip:{arch} has {len(tags)} pretrained weight tags {tags}: "
                             f"name one as open_clip:{arch}@<tag> (or use pretrained=False)")
    import inspect

    # only the image tower is used: no text-tower weights are fetched where open_clip allows it
    extra = {"pretrained_text": False} if "pretrained_text" in inspect.signature(open_clip.create_model).parameters else {}
    try:
        model = open_clip.create_model(arch, pretrained=weights, **extra)
    except (OSError, RuntimeError) as err:
        if weights is None:
            raise
        raise WeightsUnavailableError(
            f"pretrained weights open_clip:{arch}@{weights} are not available ({err}); put them in the "
            "Hugging Face / open_clip cache or use pretrained=False") from err
    visual = model.visual
    cfg = dict(getattr(visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(visual, "image_size", 224))
    size = size if isinstance(size, int) else tuple(size)
    pre = Preprocess(size, mean=cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
                     std=cfg.get("std", open_clip.OPENAI_DATASET_STD), interpolation=_interp(cfg.get("interpolation")))
    name = f"open_clip:{arch}" + (f"@{weights}" if weights else "")
    return Model(module=_eval(visual), preprocess=pre, name=name, pretrained=pretrained, input_size=pre.size)


def load_hf(repo: str, pretrained: bool = True, revision: str | None = None) -> Model:
    """``hf:<repo id or local folder>``: a Hugging Face vision model (``AutoModel``), its image tower for CLIP-like ones.

    ``pretrained=False`` builds the architecture of the repository's config with random weights.
    Preprocessing (size, mean, std) comes from the repository's image processor config, or
    from the model config's ``image_size`` with ImageNet statistics when it has none.
    """
    _need("transformers", "transformers", f"hf:{repo}")
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(repo, revision=revision)
        if pretrained:
            model = transformers.AutoModel.from_pretrained(repo, revision=revision)
        else:
            model = transformers.AutoModel.from_config(config)
    except OSError as err:
        raise WeightsUnavailableError(
            f"hf:{repo} is not available: not a local folder with a config.json, not in the Hugging Face cache, "
            f"and not downloadable here ({err})") from err
    module = model
    if hasattr(model, "vision_model") and not hasattr(config, "image_size"):
        module = model.vision_model  # CLIP-like: the image tower takes pixel_values alone
        config = getattr(config, "vision_config", config)
    mean, std, size, interp = IMAGENET_MEAN, IMAGENET_STD, getattr(config, "image_size", 224), "bilinear"
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(repo, revision=revision)
    except (OSError, ValueError):
        log.info("hf:%s has no image processor config; preprocessing: resize to %s, ImageNet mean/std", repo, size)
    else:
        mean, std = getattr(proc, "image_mean", mean) or mean, getattr(proc, "image_std", std) or std
        s = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or {}
        if isinstance(s, dict) or hasattr(s, "get"):
            s = dict(s)
            size = (s["height"], s["width"]) if "height" in s else s.get("shortest_edge", size)
        elif s:
            size = s
        interp = _interp(getattr(proc, "resample", ""))
    size = size if isinstance(size, int) else tuple(size)
    pre = Preprocess(size, mean=mean, std=std, interpolation=interp)
    return Model(module=_eval(module), preprocess=pre, name=f"hf:{repo}", pretrained=pretrained, input_size=pre.size)
