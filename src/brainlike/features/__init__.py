"""DNN unit activations: one forward pass for all layers, streamed into a resumable, checksummed zarr store."""

from ._bhscore import export_bhscore, import_bhscore
from ._extract import extract
from ._integrity import DamagedStoreError, Problem, StoreState
from ._store import FeatureSet, LayerFeatures, verify

__all__ = ["DamagedStoreError", "FeatureSet", "LayerFeatures", "Problem", "StoreState", "export_bhscore", "extract",
           "import_bhscore", "verify"]
