"""Layer-to-ROI mapping studies: ridge and PLS from DNN features to ROI responses.

``map_layers(features, data, ...)`` -> ``MappingResult`` (per-voxel r/R² on each evaluation set,
ROI-averaged fit, noise ceiling, layer x ROI tables); ``make_splits`` builds the Kay-style or
cross-validation splits shared by every method; ``run_study(data, model, ...)`` is a whole study
from brain data, a network and its images (``brainlike map``); ``brainlike.mapping.plots`` draws the figures.
"""

from brainlike.mapping.run import resolve_layers, run_study
from brainlike.mapping.splits import Fit, Splits, inner_folds, make_splits
from brainlike.mapping.study import (
    DEFAULT_ALPHAS,
    DEFAULT_PLS_COMPONENTS,
    METHODS,
    MappingResult,
    check_names,
    map_layers,
    repeat_tensor,
)

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_PLS_COMPONENTS",
    "METHODS",
    "Fit",
    "MappingResult",
    "Splits",
    "check_names",
    "inner_folds",
    "make_splits",
    "map_layers",
    "repeat_tensor",
    "resolve_layers",
    "run_study",
]
