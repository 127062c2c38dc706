"""Networks from files: ONNX graphs and TorchScript archives, converted to hookable modules.

An ONNX graph (exported from Caffe, TensorFlow, PyTorch ...) is converted by onnx2torch into a
``torch.fx.GraphModule`` with one submodule per ONNX node, so every intermediate output can be
read with a forward hook. A TorchScript archive cannot be hooked (TorchScript refuses hooks), so
it is exported to ONNX in memory and converted the same way.

Layer names are the graph's node names (``features/0/Conv``); aliases give the source network's
module paths where the exporter recorded them (``features.0`` -> the last node of that module),
so a network exported from PyTorch keeps its layer names. Constant nodes (weights passed through
``Identity``, shape constants) are not layers.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path

from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess, _eval

log = logging.getLogger("brainlike")

CONVERT_OPSET = 17  # highest opset onnx2torch converts every common vision op for


def _need_onnx(name: str) -> None:
    for pkg, pip in (("onnx", "onnx"), ("onnx2torch", "onnx2torch")):
        if importlib.util.find_spec(pkg) is None:
            raise ImportError(f"{name} needs the {pip} package, which is not installed: pip install onnx onnx2torch")


def _file(path: str, what: str) -> Path:
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    return p


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def _module_aliases(nodes: list[tuple[str, str]]) -> dict:
    """{module path: node module} from exporter scope names (``/layer1/layer1.0/conv1/Conv``)."""
    aliases: dict[str, str] = {}
    for node_name, module_name in nodes:
        comps = [c for c in node_name.strip("/").split("/") if c]
        if len(comps) < 2:
            continue
        path: list[str] = []
        for c in comps[:-1]:  # the last component is the op (Conv, Relu_1, ...)
            if path and c.startswith(path[-1] + "."):
                path[-1] = c  # "layer1", "layer1.0": a nested scope carries its full name
            else:
                path.append(c)
            # every enclosing module too; later nodes overwrite: a module's output is its last node
            aliases[".".join(path)] = module_name
    return {a: m for a, m in aliases.items() if a != m}


def _fold_weight_copies(proto) -> None:
    """Drop ``Identity`` nodes that copy an initializer (exporters write them for shared weights).

    onnx2torch reads a Conv's weights from an initializer only, and such a copy is no layer.
    """
    inits = {t.name for t in proto.graph.initializer}
    outputs = {o.name for o in proto.graph.output}
    rename = {}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    if not rename:
        return
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def _convert(proto, label: str):
    """onnx2torch conversion; graphs of a newer opset are brought down to ``CONVERT_OPSET`` first."""
    import onnx
    from onnx2torch import convert

    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    try:
        return convert(proto, attach_onnx_mapping=True), proto
    except NotImplementedError as err:
        if opset <= CONVERT_OPSET:
            raise ValueError(f"{label}: cannot convert this ONNX graph to a PyTorch module ({err})") from err
        log.info("%s: opset %d -> %d for conversion (%s)", label, opset, CONVERT_OPSET, err)
        try:
            lower = onnx.version_converter.convert_version(proto, CONVERT_OPSET)
            return convert(lower, attach_onnx_mapping=True), lower
        except Exception as err2:
            raise ValueError(f"{label}: cannot convert this ONNX graph (opset {opset}) to a PyTorch module: "
                             f"{err}; converting it to opset {CONVERT_OPSET} failed too ({err2})") from err2


def _from_onnx_proto(proto, label: str, name: str, pretrained: bool, input_size, mean, std) -> Model:
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1:
        raise ValueError(f"{label}: the graph must take one image input; it takes {[i.name for i in inputs]}")
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise ValueError(f"{label}: the input {inputs[0].name!r} must be (N, 3, H, W); its shape is {dims}")
    fixed_batch = isinstance(dims[0], int) and dims[0] > 0
    if fixed_batch:  # a fixed batch (often 1 in Caffe exports): made symbolic, then checked below
        inputs[0].type.tensor_type.shape.dim[0].ClearField("dim_value")
        inputs[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    if input_size is None:
        if not (isinstance(dims[2], int) and isinstance(dims[3], int) and dims[2] > 0 and dims[3] > 0):
            raise ValueError(f"{label}: the graph's input size is not fixed ({dims}); pass input_size=<pixels>")
        input_size = (dims[2], dims[3])
    _fold_weight_copies(proto)
    module, proto = _convert(proto, label)
    # modules in node order: constants (no path from the image input) are not layers
    names = [n for n, _ in module.named_children() if n != "initializers"]
    live = {inputs[0].name}
    hidden = set()
    for n in names:
        mapping = getattr(getattr(module, n), "onnx_mapping", None)
        ins = set(mapping.inputs) if mapping is not None else set()
        if ins & live:
            live.update(mapping.outputs)
        else:
            hidden.add(n)
    aliases = _module_aliases([(node.name, n) for node, n in zip(proto.graph.node, names)])
    aliases = {a: m for a, m in aliases.items() if m not in hidden}
    pre = Preprocess(input_size, mean=mean, std=std)
    model = Model(module=_eval(module), preprocess=pre, name=name, pretrained=pretrained, aliases=aliases,
                  input_size=pre.size, hidden=frozenset(hidden))
    if fixed_batch:
        _check_batches(model, label, dims[0])
    if not pretrained:
        _reinitialise(model.module, label)

    return model


def _check_batches(model: Model, label: str, fixed: int) -> None:
    """A graph exported with a fixed batch must give each image the same output alone and in a batch."""
    import torch

    x = torch.randn((3, 3, *model.input_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            together = model.module(x)
            alone = torch.cat([model.module(x[i:i + 1]) for i in range(3)])
            same = together.shape == alone.shape and torch.allclose(together, alone, rtol=1e-4, atol=1e-5)
        except Exception:  # noqa: BLE001 - any failure means the graph needs its fixed batch
            same = False
    if not same:
        raise ValueError(f"{label}: the graph was exported for batches of exactly {fixed} and mixes images when "
                         "given more (a reshape to a constant shape); export it with a dynamic batch axis")


def _reinitialise(module, label: str) -> None:
    """Random weights: every submodule's own ``reset_parameters`` (torch's default initialisation)."""
    done = set()
    for sub in module.modules():
        if sub is not module and hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
            done.update(id(p) for p in sub.parameters(recurse=False))
    left = [n for n, p in module.named_parameters() if id(p) not in done]
    if left:
        raise ValueError(f"{label}: pretrained=False cannot re-draw {len(left)} parameter(s) that no module "
                         f"initialises ({left[:5]}); load it with pretrained=True")


def load_onnx(path: str, pretrained: bool = True, input_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Model:
    """``onnx:<file.onnx>``: an ONNX image network as a hookable module (onnx2torch).

    ``input_size`` defaults to the graph's fixed input size; ``mean``/``std`` are the
    normalisation the network was trained with (ImageNet's by default: check your exporter's).
    ``pretrained=False`` re-draws every weight with torch's default initialisation.
    """
    _need_onnx(f"onnx:{path}")
    import onnx

    p = _file(path, "ONNX")
    try:
        proto = onnx.load(str(p))
    except Exception as err:  # noqa: BLE001 - a damaged file raises protobuf's DecodeError
        raise ValueError(f"{p}: not a readable ONNX file ({type(err).__name__}: {err})") from err
    return _from_onnx_proto(proto, str(p), f"onnx:{path}", pretrained, input_size, mean, std)


def load_torchscript(path: str, pretrained: bool = True, input_size=224, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD) -> Model:
    """``torchscript:<file.pt>``: a TorchScript image network, made hookable through ONNX.

    TorchScript modules refuse forward hooks, so the archive is exported to ONNX in memory
    (batch axis dynamic, at ``input_size``) and converted like ``onnx:`` files; aliases keep
    the scripted module's paths (``features.0``).
    """
    _need_onnx(f"torchscript:{path}")
    import onnx
    import torch

    p = _file(path, "TorchScript")
    size = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(s) for s in input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit and the TorchScript-based exporter are deprecated upstream
        try:
            scripted = torch.jit.load(str(p), map_location="cpu")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{p}: not a readable TorchScript archive ({type(err).__name__}: {err})") from err
        scripted.eval()
        buf = io.BytesIO()
        torch.onnx.export(scripted, (torch.zeros((1, 3, *size)),), buf, input_names=["image"],
                          dynamic_axes={"image": {0: "batch"}}, opset_version=CONVERT_OPSET, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    return _from_onnx_proto(proto, str(p), f"torchscript:{path}", pretrained, size, mean, std)


