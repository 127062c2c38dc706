"""Scores: the Brain Hierarchy score and per-unit decodability.

- :mod:`brainlike.scores.bh` — BH score (Nonaka et al. 2021): decoding-based with random layer
  selection, encoding-based, averaged; bootstrap confidence intervals and permutation nulls.
- :mod:`brainlike.scores.decodability` — per-unit decoding accuracy (Horikawa et al. 2019):
  within-layer ranks, subject averages, inter-subject correlations, export, preferred images.
"""

from brainlike.scores.bh import (
    BootstrapResult,
    PermutationResult,
    best_rois,
    bh_score,
    bh_score_average,
    bh_score_encoding,
    bh_score_layer_select,
    bh_table,
    bootstrap_bh_score,
    bootstrap_bh_score_images,
    correlation_pvalue,
    pearson_columns,
    permutation_bh_score,
    spearman_from_table,
)
from brainlike.scores.decodability import (
    add_ranks,
    average_subjects,
    export_decodability,
    intersubject_correlation,
    intersubject_matrix,
    preferred_images,
    rank_units,
    unit_accuracy,
)

__all__ = [
    "BootstrapResult",
    "PermutationResult",
    "best_rois",
    "bh_score",
    "bh_score_average",
    "bh_score_encoding",
    "bh_score_layer_select",
    "bh_table",
    "bootstrap_bh_score",
    "bootstrap_bh_score_images",
    "correlation_pvalue",
    "pearson_columns",
    "permutation_bh_score",
    "spearman_from_table",
    "add_ranks",
    "average_subjects",
    "export_decodability",
    "intersubject_correlation",
    "intersubject_matrix",
    "preferred_images",
    "rank_units",
    "unit_accuracy",
]
