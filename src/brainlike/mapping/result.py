"""The result of a mapping study: tidy tables (per voxel, per ROI average, chosen parameters), its
description and predictions, saved as CSV + JSON and loaded back.

Split from :mod:`brainlike.mapping.study` (which re-exports :class:`MappingResult`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._io import atomic_write


@dataclass
class MappingResult:
    """Tidy tables of a mapping study.

    ``voxels``: one row per (stimuli, layer, roi, method, split, voxel) with r, r2, ceiling_r,
    r_norm (r / ceiling_r) and r2_norm (R² / reliability). ``roi_average``: one row per (stimuli,
    layer, roi, method, split) for the ROI-averaged response: r, r_squared (Pearson r²), r2, ceiling_r,
    r_norm. ``params``: chosen hyper-parameters. ``predictions``: (stimuli, layer, roi, method, split)
    -> (actual, predicted) of the ROI average, for figures. ``fitted``: (stimuli, layer, roi, method)
    -> per fit, the chosen alpha per target (ridge; last = ROI average) or (n_components voxels,
    n_components ROI average) (PLS).
    """

    voxels: pd.DataFrame
    roi_average: pd.DataFrame
    params: pd.DataFrame
    predictions: dict = field(default_factory=dict)
    splits: Splits | None = None
    info: dict = field(default_factory=dict)
    fitted: dict = field(default_factory=dict)

    def table(self, metric: str = "r", *, method: str | None = None, split: str | None = None, stimuli=None):
        """Layer x ROI table of the mean voxel ``metric`` (rows in layer order)."""
        df = self._select(self.voxels, method, split, stimuli)
        if metric not in df.columns:
            raise ValueError(f"metric must be one of {['r', 'r2', 'r_norm', 'r2_norm']}; got {metric!r}")
        layers = list(dict.fromkeys(df["layer"]))
        rois = list(dict.fromkeys(df["roi"]))
        out = df.groupby(["layer", "roi"], sort=False)[metric].mean().unstack("roi")
        return out.reindex(index=layers, columns=rois)

    def summary(self) -> pd.DataFrame:
        """One row per (stimuli, layer, roi, method, split): voxel mean/SEM and the ROI-average fit."""
        keys = ["stimuli", "layer", "roi", "method", "split"]
        g = self.voxels.groupby(keys, sort=False)
        s = pd.DataFrame(
            {
                "n_voxels": g["r"].size(),
                "mean_r": g["r"].mean(),
                "sem_r": g["r"].sem(),
                "mean_r2": g["r2"].mean(),
                "mean_r_norm": g["r_norm"].mean(),
                "median_ceiling_r": g["ceiling_r"].median(),
            }
        ).reset_index()
        roi = self.roi_average.rename(
            columns={"r": "roi_avg_r", "r_squared": "roi_avg_r_squared", "r2": "roi_avg_r2",
                     "ceiling_r": "roi_avg_ceiling_r", "r_norm": "roi_avg_r_norm"}
        )
        return s.merge(roi, on=keys, how="left")

    @staticmethod
    def _select(df, method, split, stimuli):
        if method is not None:
            df = df[df["method"] == method]
        if split is not None:
            df = df[df["split"] == split]
        if stimuli is not None:
            df = df[df["stimuli"] == stimuli]
        if df.empty:
            raise ValueError(f"no results for method={method!r}, split={split!r}, stimuli={stimuli!r}")
        return df

    def save(self, out_dir) -> Path:
        """Write voxels/roi_average/params/summary as CSV (+ parquet for voxels), atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_csv(self.voxels, out / "voxel_scores.csv")
        atomic_write(out / "voxel_scores.parquet", lambda p: self.voxels.to_parquet(p, index=False))
        _atomic_csv(self.roi_average, out / "roi_average_scores.csv")
        _atomic_csv(self.params, out / "params.csv")
        _atomic_csv(self.summary(), out / "summary.csv")
        atomic_write(out / "info.json", lambda p: Path(p).write_text(json.dumps(self.info, indent=2, default=str)))
        return out

    @classmethod
    def concat(cls, results: Sequence[MappingResult]) -> MappingResult:
        """Stack results (e.g. plain and retina-warped stimuli)."""
        preds, fitted = {}, {}
        for r in results:
            preds.update(r.predictions)
            fitted.update(r.fitted)
        return cls(
            voxels=pd.concat([r.voxels for r in results], ignore_index=True),
            roi_average=pd.concat([r.roi_average for r in results], ignore_index=True),
            params=pd.concat([r.params for r in results], ignore_index=True),
            predictions=preds,
            splits=results[0].splits,
            info={"parts": [r.info for r in results]},
            fitted=fitted,
        )


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))
