"""Real-data validation suite: ``run_benchmark(name, **options)`` -> ``BenchmarkResult``.

- ``v4-cowley2023``: encoding of V4 neurons from each EfficientNet-Lite0 block (pretrained vs
  random weights; noise-ceiling-normalised on the session with raw repeats).
- ``v4-decodability``: Horikawa-style decoding of block units from a V4 population.
- ``rsa-92images``: block RDMs vs human and monkey IT with the noise ceiling.

Each result holds a table, the expected figures next to the obtained ones, and figure paths.
"""

from __future__ import annotations

from brainlike._validate import check_choice
from brainlike.validation._common import BenchmarkResult, Expectation
from brainlike.validation.cowley import v4_cowley2023, v4_decodability
from brainlike.validation.rsa92 import rsa_92images

BENCHMARKS = {
    "v4-cowley2023": v4_cowley2023,
    "v4-decodability": v4_decodability,
    "rsa-92images": rsa_92images,
}

__all__ = ["BENCHMARKS", "BenchmarkResult", "Expectation", "run_benchmark", "rsa_92images", "v4_cowley2023",
           "v4_decodability"]


def run_benchmark(name: str, **options) -> BenchmarkResult:
    """Run the benchmark ``name`` (one of ``BENCHMARKS``) with its keyword options."""
    check_choice(name, "name", list(BENCHMARKS))
    return BENCHMARKS[name](**options)
