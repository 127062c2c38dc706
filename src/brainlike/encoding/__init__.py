"""Image-computable encoding models beyond linear: fwRF and GNet (St-Yves et al. 2022), with the
paper's analyses (transfer matrix, tuning, synthetic transfer learning, model comparison)."""

from brainlike.encoding.fwrf import FWRF, column_score, gaussian_fields, rf_grid

__all__ = ["FWRF", "column_score", "gaussian_fields", "rf_grid"]
