"""Benchmarks: real third-party data, a metric, a ceiling and expectations, scored on any network.

``get(name)(model, layers)`` (or ``run_benchmark(name, model, layers)``) -> ``BenchmarkResult``:

- ``v4-cowley2023``: encoding of V4 neurons from each layer (cross-validated ridge; pretrained vs
  random weights; noise-ceiling-normalised on the session with raw repeats).
- ``v4-decodability``: Horikawa-style decoding of layer units from a V4 population.
- ``v4-encoding-models``: fwRF, GNet and ridge (brainlike's RidgeCV) on the same folds, per session.
- ``rsa-92images``: layer RDMs vs human and monkey IT with the noise ceiling.

EfficientNet-Lite0's blocks are the default network and layers; ``register(benchmark)`` adds a
benchmark (a :class:`Benchmark` subclass instance). Nothing is registered at import.
"""

from __future__ import annotations

from brainlike.validation._benchmark import BUILTIN, Benchmark, get, names, register, run_benchmark, unregister
from brainlike.validation._common import (
    DEFAULT_MODEL,
    BenchmarkResult,
    Expectation,
    at_least,
    at_most,
    verdict,
    within,
)

__all__ = ["BUILTIN", "DEFAULT_MODEL", "Benchmark", "BenchmarkResult", "Expectation", "at_least", "at_most", "get",
           "names", "register", "run_benchmark", "unregister", "verdict", "within"]
