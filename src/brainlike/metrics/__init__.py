"""Scores and noise ceilings: column-wise Pearson/Spearman/R², split-half reliability, NSD ncsnr.

RDMs and their comparison live in ``brainlike.metrics.rsa`` (imported on use).
"""

from brainlike.metrics.ceiling import ncsnr, ncsnr_to_noise_ceiling, normalize_by_ceiling, split_half_reliability
from brainlike.metrics.correlation import pearson, r2, spearman

__all__ = ["pearson", "spearman", "r2", "split_half_reliability", "ncsnr", "ncsnr_to_noise_ceiling",
           "normalize_by_ceiling"]
