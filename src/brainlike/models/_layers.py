"""Hookable layers in forward order, and the literature's names for them.

Layer names are module paths (``features.1``); the order is the order in which the
modules' outputs are produced in one forward pass, found by tracing a pass with a hook
on every module. A module called more than once per pass (a ReLU shared by two
stages, say) has no single output and is left out.

AlexNet / VGG aliases follow Caffe, which BHscore and Horikawa et al. used: Caffe's ReLU
runs in place, so the saved ``conv1`` ... ``conv5``, ``fc6``, ``fc7`` blobs hold the values
*after* the ReLU. ``conv<k>`` therefore maps to the ReLU after the k-th convolution
(``features.1`` for AlexNet ``conv1``), ``fc6``/``fc7`` to the ReLU after the first/second
linear layer, and ``fc8`` to the last linear layer (the logits; no ReLU there).
"""

from __future__ import annotations

import weakref

_TRACE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def trace_layers(module, input_size=(224, 224), hidden=()) -> tuple[list[str], dict]:
    """Run one forward pass on zeros; return (names in output order, {name: output shape without batch}).

    ``hidden`` names modules that are not layers (constants of a converted ONNX graph).
    """
    import torch

    calls: dict[str, int] = {}
    order: list[str] = []
    shapes: dict[str, tuple] = {}
    handles = []

    def make_hook(name):
        def hook(_mod, _inp, out):
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                if name in shapes:
                    order.remove(name)
                order.append(name)
                shapes[name] = tuple(out.shape[1:])

        return hook

    for name, sub in module.named_modules():
        if name:
            handles.append(sub.register_forward_hook(make_hook(name)))
    try:
        param = next(iter(module.parameters()), None)
        device = param.device if param is not None else "cpu"
        with torch.no_grad():
            module(torch.zeros((1, 3, *input_size), device=device))
    finally:
        for h in handles:
            h.remove()
    skip = set(hidden)
    names = [n for n in order if calls[n] == 1 and n not in skip]
    multi = {n: calls[n] for n in calls if calls[n] > 1 and n not in skip}
    return names, {"shapes": {n: shapes[n] for n in names}, "multi": multi}


def _traced(model):
    key = model.module
    size = tuple(model.input_size or (224, 224))
    hit = _TRACE_CACHE.get(key)
    if hit is None or hit[0] != size:
        hit = (size, trace_layers(model.module, size, getattr(model, "hidden", ())))
        _TRACE_CACHE[key] = hit
    return hit[1]


def layers(model) -> list[str]:
    """Hookable layer names of ``model`` (a Model, a name or an nn.Module) in forward order."""
    from ._registry import load

    model = load(model) if not hasattr(model, "module") else model
    return list(_traced(model)[0])


def layer_shapes(model) -> dict:
    """{layer name: output shape (without the batch axis)} for the model's input size."""
    return dict(_traced(model)[1]["shapes"])


def resolve_layers(model, names) -> list[str]:
    """Module paths for ``names`` (module paths or aliases); unknown names fail listing the valid ones."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("layers must name at least one layer; got an empty list")
    valid, info = _traced(model)
    valid_set = set(valid)
    out = []
    for n in names:
        path = model.aliases.get(n, n)
        if path in valid_set:
            out.append(path)
            continue
        if path in info["multi"]:
            raise ValueError(
                f"layer {n!r} runs {info['multi'][path]} times per forward pass, so it has no single output; "
                f"choose one of its callers. Valid layers: {_listing(model, valid)}"
            )
        raise ValueError(f"unknown layer {n!r} for {model.name}; valid layers are: {_listing(model, valid)}")
    return out


def _listing(model, valid) -> str:
    parts = []
    if model.aliases:
        parts.append("aliases " + ", ".join(model.aliases))
    parts.append("modules " + ", ".join(valid))
    return "; ".join(parts)


def caffe_style_aliases(module, vgg_names: bool = False) -> dict:
    """conv/fc aliases for networks with ``features`` and ``classifier`` Sequentials (AlexNet, VGG)."""
    import torch.nn as nn

    def after_relu(seq, prefix, idx):
        # the first ReLU after position idx, before the next conv/linear (else the layer itself)
        for j in range(idx + 1, len(seq)):
            if isinstance(seq[j], (nn.ReLU, nn.ReLU6)):
                return f"{prefix}.{j}"
            if isinstance(seq[j], (nn.Conv2d, nn.Linear)):
                break
        return f"{prefix}.{idx}"

    aliases = {}
    feats = module.features
    block, within, k = 1, 0, 0
    for i, m in enumerate(feats):
        if isinstance(m, nn.Conv2d):
            k += 1
            within += 1
            name = f"conv{block}_{within}" if vgg_names else f"conv{k}"
            aliases[name] = after_relu(feats, "features", i)
        elif isinstance(m, nn.MaxPool2d) and vgg_names and within:
            block, within = block + 1, 0
    linears = [i for i, m in enumerate(module.classifier) if isinstance(m, nn.Linear)]
    for n, i in enumerate(linears):
        fc = 6 + n if len(linears) == 3 else n + 1
        last = n == len(linears) - 1
        aliases[f"fc{fc}"] = f"classifier.{i}" if last else after_relu(module.classifier, "classifier", i)
    return aliases


def efficientnet_lite_aliases(module) -> dict:
    """``block0`` .. ``blockN`` = outputs of the MBConv blocks; ``head`` = final 1x1 conv + BN; ``fc`` = logits."""
    aliases = {f"block{i}": f"_blocks.{i}" for i in range(len(module._blocks))}
    aliases["stem"] = "_bn0"
    aliases["head"] = "_bn1"
    aliases["fc"] = "_fc"
    return aliases
