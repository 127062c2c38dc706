"""The regression engine: many-target linear maps between DNN units and brain responses.

``Ridge`` (fixed alpha, scalar or per target), ``RidgeCV`` (per-target alpha by K-fold CV, one
factorisation per fold), ``SelectiveRidge`` (FastL2LiR-compatible per-target input selection) and
``PLS``/``PLSCV``; ``StreamingSelectiveRidge`` (the same selection with X read in column chunks,
for millions of inputs). scikit-learn estimator API; each estimator picks its own backend
(``backend="numpy"|"torch"``, ``device``) and precision (``dtype``, float32 by default).
"""

from brainlike.linear._pls import PLS, PLSCV
from brainlike.linear._ridge import Ridge, RidgeCV
from brainlike.linear._selective import PreparedInputs, SelectiveRidge
from brainlike.linear._streaming_selective import StreamingSelectiveRidge

__all__ = ["Ridge", "RidgeCV", "SelectiveRidge", "PreparedInputs", "StreamingSelectiveRidge", "PLS", "PLSCV"]
