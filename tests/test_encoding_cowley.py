"""fwRF / GNet / ridge on real macaque V4 data (a few hundred images at most)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlike.encoding import rf_grid
from brainlike.encoding.cowley import cowley_v4_comparison


@pytest.mark.slow
@pytest.mark.realdata
def test_cowley_v4_comparison_small(mirror, tmp_path):
    summary, detail = cowley_v4_comparison(
        sessions=("190923",), n_images=120, n_folds=2, blocks=("block4", "block7"),
        candidates=rf_grid(n_sizes=2, min_spacing=2.5), gnet_params=dict(max_epochs=1, width=4),
        prefilter_blocks=3, out_dir=tmp_path, progress=False)
    assert set(summary.model) == {"fwRF (EfficientNet-Lite0)", "ridge (best block)", "GNet8j (sessions as subjects)"}
    assert (summary.n_neurons == 33).all()
    assert len(detail) == 3 * 33 and np.isfinite(detail.r).all()
    ridge = summary[summary.model == "ridge (best block)"].iloc[0]
    assert ridge.detail in ("block4", "block7")
    assert ridge.mean_r > 0.1  # real stimulus-driven signal survives 2-fold CV on 120 images
    assert (tmp_path / "cowley_v4_summary.csv").exists() and (tmp_path / "cowley_v4_comparison.png").exists()
    with pytest.raises(ValueError, match="run must name models"):
        cowley_v4_comparison(sessions=("190923",), run=("svm",))
