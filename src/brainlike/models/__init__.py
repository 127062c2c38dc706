"""Networks by name, their preprocessing, and their hookable layers (with literature aliases).

``load("<prefix>:<name>")`` goes through an open table of loaders: ``torchvision``, ``timm``,
``efficientnet_lite``, ``open_clip``, ``hf``, ``torchscript``, ``onnx`` built in;
``register(prefix, loader)`` adds one; installed plugins add theirs through the
``brainlike.models`` entry-point group (read lazily, never at import).
"""

from ._layers import layer_shapes, layers, resolve_layers, trace_layers
from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess, preprocess_fingerprint, weights_fingerprint
from ._registry import (
    ENTRY_POINT_GROUP,
    WeightsUnavailableError,
    load,
    loader_for,
    prefixes,
    refresh_plugins,
    register,
    unregister,
    wrap,
)

__all__ = [
    "ENTRY_POINT_GROUP", "IMAGENET_MEAN", "IMAGENET_STD", "Model", "Preprocess", "WeightsUnavailableError",
    "layer_shapes", "layers", "load", "loader_for", "prefixes", "preprocess_fingerprint", "refresh_plugins",
    "register", "resolve_layers", "trace_layers", "unregister", "weights_fingerprint", "wrap",
]
