"""Networks by name, their preprocessing, and their hookable layers (with literature aliases)."""

from ._layers import layer_shapes, layers, resolve_layers, trace_layers
from ._model import IMAGENET_MEAN, IMAGENET_STD, Model, Preprocess, preprocess_fingerprint, weights_fingerprint
from ._registry import WeightsUnavailableError, load, wrap

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "Model", "Preprocess", "WeightsUnavailableError", "layer_shapes", "layers",
    "load", "preprocess_fingerprint", "resolve_layers", "trace_layers", "weights_fingerprint", "wrap",
]
