"""Image sets with stable ids, and stimulus transforms (retina warp)."""

from .imageset import IMAGE_EXTENSIONS, ImageSet, natural_key, to_rgb_uint8
from .retina import retina_radius_map, retina_warp

__all__ = ["IMAGE_EXTENSIONS", "ImageSet", "natural_key", "retina_radius_map", "retina_warp", "to_rgb_uint8"]
