"""Benchmarks as objects (data + metric + ceiling + expectations) and their open registry.

A benchmark is called with any network and layer list: ``benchmark(model, layers, ...)`` returns a
:class:`BenchmarkResult`. EfficientNet-Lite0 and its 16 blocks are the default network; its
expectations (figures measured on it, each printed with its exact bound) are judged only for it,
the network-independent ones (a property of the data, pretrained above random weights) for any
network, and every result reports its summary figures beside EfficientNet-Lite0's reference figures.

``register(benchmark)`` adds one for this process; nothing is registered by importing brainlike
(the built-in benchmarks are a table of import paths, read when a name is looked up).
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import pandas as pd

from brainlike.validation._common import DEFAULT_MODEL, BenchmarkResult

__all__ = ["BUILTIN", "Benchmark", "get", "names", "register", "run_benchmark", "unregister"]

# name -> "module:attribute" of the built-in benchmarks (imported on first use, not at import time)
BUILTIN = {
    "v4-cowley2023": "brainlike.validation.cowley:V4Cowley2023",
    "v4-decodability": "brainlike.validation.cowley:V4Decodability",
    "v4-encoding-models": "brainlike.validation.encoding_models:V4EncodingModels",
    "rsa-92images": "brainlike.validation.rsa92:RSA92Images",
}
_REGISTERED: dict[str, Benchmark] = {}


class Benchmark:
    """Base class: set the class attributes, implement :meth:`run` and :meth:`summary`.

    name, data, metric, ceiling : what the benchmark is (shown by :meth:`describe`).
    reference : {summary figure: EfficientNet-Lite0's value on a full run} (see docs/validation.md);
        a figure missing there is shown as NaN beside the network's.
    """

    name: str = ""
    data: str = ""
    metric: str = ""
    ceiling: str = "none"
    reference: dict = {}
    reference_source: str = "a full run with its 16 blocks, docs/validation.md"

    def run(self, model, layers, *, weights, seed: int, default: bool, **options) -> BenchmarkResult:
        """Score ``model`` on ``layers``; ``default`` says whether it is the default network and layers."""
        raise NotImplementedError

    def summary(self, table: pd.DataFrame) -> dict:
        """{summary figure: value} of a result table, with the keys of :attr:`reference`."""
        return {}

    def describe(self) -> str:
        return f"{self.name}: data {self.data}; metric {self.metric}; ceiling {self.ceiling}"

    def __call__(self, model=DEFAULT_MODEL, layers=None, *, weights=None, seed: int = 0, out_dir=None,
                 **options) -> BenchmarkResult:
        """Score ``model`` (a ``models.load`` name or a loaded ``Model``) on ``layers`` (None: EfficientNet's blocks).

        weights : for a model given by name, 'pretrained' and/or 'random' (default both); random
            weights are drawn from ``seed``. out_dir : folder for the table, figures and report.
        Other keyword options are the benchmark's own (see its ``run``).
        """
        t0 = time.perf_counter()
        default = isinstance(model, str) and model == DEFAULT_MODEL and layers is None
        result = self.run(model, layers, weights=weights, seed=int(seed), default=default, out_dir=out_dir,
                          **options)
        result.comparison = self.compare(result.table)
        result.reference_source = self.reference_source
        judged = "judged (default network and layers)" if default else (
            "figures measured on EfficientNet-Lite0 are not judged for this network; "
            "network-independent ones are")
        result.info = {"network": getattr(model, "name", model), "layers": "EfficientNet-Lite0 blocks 0-15"
                       if layers is None else list(layers), **result.info, "expectations": judged,
                       "seconds": round(time.perf_counter() - t0, 1)}
        if out_dir is not None:
            result.save(out_dir)
        return result

    def compare(self, table: pd.DataFrame) -> pd.DataFrame:
        """This network's summary figures beside EfficientNet-Lite0's reference figures."""
        ours = self.summary(table)
        keys = list(dict.fromkeys([*ours, *self.reference]))
        return pd.DataFrame({"figure": keys,
                             "this network": [float(ours.get(k, np.nan)) for k in keys],
                             "EfficientNet-Lite0": [float(self.reference.get(k, np.nan)) for k in keys]})


def register(benchmark: Benchmark, *, replace: bool = False) -> None:
    """Add ``benchmark`` under ``benchmark.name`` for this process (``replace=True`` to override one)."""
    if not isinstance(benchmark, Benchmark):
        raise ValueError(f"benchmark must be a brainlike.validation.Benchmark; got {type(benchmark).__name__}")
    name = benchmark.name
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"benchmark.name must be a non-empty name without spaces; got {name!r}")
    if not replace and (name in _REGISTERED or name in BUILTIN):
        raise ValueError(f"a benchmark named {name!r} exists already; pass replace=True to override it")
    _REGISTERED[name] = benchmark


def unregister(name: str) -> None:
    """Remove a benchmark added with :func:`register` (built-in ones stay)."""
    if name not in _REGISTERED:
        raise ValueError(f"no registered benchmark {name!r}; registered: {sorted(_REGISTERED)}")
    del _REGISTERED[name]


def names() -> list[str]:
    """Every benchmark name: built in, then registered."""
    return list(dict.fromkeys([*BUILTIN, *_REGISTERED]))


def get(name: str) -> Benchmark:
    """The benchmark called ``name`` (registered ones first)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise ValueError(f"benchmark name must be one of {names()}; got {name!r}")
    module, attr = BUILTIN[name].split(":")
    return getattr(importlib.import_module(module), attr)()


def run_benchmark(name: str, model=DEFAULT_MODEL, layers=None, **options) -> BenchmarkResult:
    """Run the benchmark ``name`` on ``model`` and ``layers`` with its keyword options."""
    return get(name)(model, layers, **options)
