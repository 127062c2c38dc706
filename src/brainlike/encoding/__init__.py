"""Image-computable encoding models beyond linear: fwRF and GNet (St-Yves et al. 2022), with the
paper's analyses (transfer matrix, tuning, synthetic transfer learning, model comparison)."""

from brainlike.encoding.analyses import (
    TransferResult,
    TuningResult,
    bipartite_partitions,
    compare_encoding_models,
    comparison_table,
    layer_partitions,
    plot_comparison,
    plot_transfer_matrix,
    synthetic_transfer,
    transfer_matrix,
    tuning_analysis,
)
from brainlike.encoding.fwrf import FWRF, column_score, gaussian_fields, rf_grid
from brainlike.encoding.gnet import (
    GNet,
    ImagePreprocess,
    PrefilteredImages,
    SubjectResponses,
    alexnet_prefilter,
    cross_validate_gnet,
    efficientnet_prefilter,
    make_prefilter,
)
from brainlike.encoding.study import EncodingStudy, EncodingStudyResult, load_encoding_config, run_encoding_study

__all__ = [
    "EncodingStudy",
    "EncodingStudyResult",
    "load_encoding_config",
    "run_encoding_study",
    "TransferResult",
    "TuningResult",
    "bipartite_partitions",
    "compare_encoding_models",
    "comparison_table",
    "layer_partitions",
    "plot_comparison",
    "plot_transfer_matrix",
    "synthetic_transfer",
    "transfer_matrix",
    "tuning_analysis",
    "FWRF",
    "GNet",
    "ImagePreprocess",
    "PrefilteredImages",
    "SubjectResponses",
    "alexnet_prefilter",
    "column_score",
    "cross_validate_gnet",
    "efficientnet_prefilter",
    "gaussian_fields",
    "make_prefilter",
    "rf_grid",
]
