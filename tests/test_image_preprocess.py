"""One image preprocessing (brainlike.models.Preprocess) for feature extraction and GNet's pre-filter."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_gnet_preprocess_is_models_preprocess_at_native_size():
    from brainlike.encoding import ImagePreprocess
    from brainlike.models._model import Preprocess

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 9, 11, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = ImagePreprocess(mean, std)(img)
    assert isinstance(ImagePreprocess(mean, std), Preprocess)
    ref = (img.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)  # independent, by hand
    np.testing.assert_allclose(got.numpy(), ref.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6)
    resized = ImagePreprocess(mean, std, size=16)(img)
    np.testing.assert_array_equal(resized.numpy(), Preprocess(16, mean, std)(img).numpy())
    assert Preprocess(None, mean, std).spec()["size"] is None


def test_float_pixels_are_refused_not_rescaled_twice():
    from brainlike.encoding import ImagePreprocess

    white = np.ones((1, 4, 4, 3), dtype=np.float32)  # a float image in [0, 1]: each pixel used to become (1/255 - 0.5) / 0.25 = -1.98
    with pytest.raises(ValueError, match="images must be uint8"):
        ImagePreprocess((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(white)
