"""Scores: the Brain Hierarchy score and per-unit decodability, returned as results.

- :mod:`brainlike.scores.result` — :class:`ScoreResult`: score, confidence interval, p-value,
  replicates, units used, n_test, the reason when NaN; saves and loads itself.
- :mod:`brainlike.scores.bh` — BH score (Nonaka et al. 2021): decoding-based with random layer
  selection, encoding-based, averaged.
- :mod:`brainlike.scores.resampling` — bootstrap confidence intervals (percentile, recentred) and
  permutation p-values, the ones ``brainlike run`` reports.
- :mod:`brainlike.scores.registry` — scores named in a registry that the pipeline computes.
- :mod:`brainlike.scores.decodability` — per-unit decoding accuracy (Horikawa et al. 2019):
  within-layer ranks, subject averages, inter-subject correlations, export, preferred images.
"""

from brainlike.scores.bh import (
    best_rois,
    bh_score,
    bh_score_average,
    bh_score_encoding,
    bh_score_layer_select,
    bh_table,
    correlation_pvalue,
    nan_reason,
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
from brainlike.scores.registry import ScoreInputs, get, list_scores, register, unregister
from brainlike.scores.resampling import (
    BootstrapResult,
    PermutationResult,
    bootstrap_bh_score,
    bootstrap_bh_score_images,
    bootstrap_ci,
    pearson_columns,
    permutation_bh_score,
    permutation_pvalue,
)
from brainlike.scores.result import CI, ScoreResult

__all__ = [
    "CI",
    "ScoreResult",
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
    "bootstrap_ci",
    "correlation_pvalue",
    "nan_reason",
    "pearson_columns",
    "permutation_bh_score",
    "permutation_pvalue",
    "spearman_from_table",
    "ScoreInputs",
    "get",
    "list_scores",
    "register",
    "unregister",
    "add_ranks",
    "average_subjects",
    "export_decodability",
    "intersubject_correlation",
    "intersubject_matrix",
    "preferred_images",
    "rank_units",
    "unit_accuracy",
]
