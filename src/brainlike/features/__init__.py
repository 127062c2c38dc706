"""DNN unit activations: one forward pass for all layers, streamed into a resumable zarr store."""

from ._bhscore import export_bhscore, import_bhscore
from ._store import FeatureSet, LayerFeatures, extract

__all__ = ["FeatureSet", "LayerFeatures", "export_bhscore", "extract", "import_bhscore"]
