"""Shared parts of the benchmarks: results, expectations with their exact bounds, networks and layers."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._io import atomic_write

__all__ = ["DEFAULT_MODEL", "BenchmarkResult", "Expectation", "at_least", "at_most", "block_features",
           "efficientnet_blocks", "networks", "subset_ids", "verdict", "within"]

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass
class Expectation:
    """One tested claim: ``expected`` states the exact bound (tolerance included), ``ok`` the verdict.

    ``ok`` is None when the claim is not judged on this run; ``why`` then says why (an image subset,
    another network than the one the figure was measured on, no earlier figure).
    """

    quantity: str
    expected: str
    obtained: str
    ok: bool | None
    source: str = ""
    why: str = "no reference"

    @property
    def status(self) -> str:
        if self.ok is None:
            return f"not judged: {self.why}"
        return "as expected" if self.ok else "DIFFERS"

    def as_dict(self) -> dict:
        return dict(quantity=self.quantity, expected=self.expected, obtained=self.obtained, status=self.status,
                    source=self.source)


def within(quantity: str, value: float, target: float, tol: float, *, judged: bool = True, why: str = "",
           source: str = "", obtained: str | None = None) -> Expectation:
    """``|value - target| <= tol``, printed as ``|x - 0.40| <= 0.06 (0.340 .. 0.460)``."""
    bound = f"|x - {target:g}| <= {tol:g} ({target - tol:.3f} .. {target + tol:.3f})"
    ok = bool(abs(value - target) <= tol) if judged and np.isfinite(value) else None
    return Expectation(quantity, bound, obtained or f"{value:.3f}", ok, source, why)


def at_most(quantity: str, value: float, bound: float, tol: float = 0.0, *, judged: bool = True, why: str = "",
            source: str = "", obtained: str | None = None) -> Expectation:
    """``value <= bound + tol``, printed as ``x <= 0.13 + 0.03 tolerance = 0.160``."""
    text = f"x <= {bound:g} + {tol:g} tolerance = {bound + tol:.3f}" if tol else f"x <= {bound:g}"
    ok = bool(value <= bound + tol) if judged and np.isfinite(value) else None
    return Expectation(quantity, text, obtained or f"{value:.3f}", ok, source, why)


def at_least(quantity: str, value: float, bound: float, *, judged: bool = True, why: str = "", source: str = "",
             obtained: str | None = None, strict: bool = True) -> Expectation:
    """``value > bound`` (``>=`` with ``strict=False``)."""
    ok = (bool(value > bound) if strict else bool(value >= bound)) if judged and np.isfinite(value) else None
    return Expectation(quantity, f"x {'>' if strict else '>='} {bound:g}", obtained or f"{value:.3f}", ok, source, why)


def verdict(quantity: str, expected: str, obtained: str, ok: bool | None, *, why: str = "", source: str = "") -> Expectation:
    """A yes/no claim stated in words (``expected`` says exactly what is tested)."""
    return Expectation(quantity, expected, obtained, None if ok is None else bool(ok), source, why)


@dataclass
class BenchmarkResult:
    """Table (one row per layer and weights), expectations, the comparison with the default network.

    ``comparison``: one row per summary figure, this network's value beside EfficientNet-Lite0's
    reference figure (from a full run with its 16 blocks, see docs/validation.md).
    """

    name: str
    table: pd.DataFrame
    expectations: list[Expectation] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    comparison: pd.DataFrame | None = None
    reference_source: str = "EfficientNet-Lite0, full run with its 16 blocks"

    @property
    def passed(self) -> bool:
        """No judged expectation differs (expectations that were not judged do not count)."""
        return all(e.ok is not False for e in self.expectations)

    def text(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 200):
            table = self.table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        lines = [f"== benchmark {self.name} ==", *(f"{k}: {v}" for k, v in self.info.items() if k != "timings"),
                 "", table]
        if self.comparison is not None and not self.comparison.empty:
            with pd.option_context("display.width", 250, "display.max_colwidth", 70):
                lines += ["", f"beside EfficientNet-Lite0 (reference figures: {self.reference_source}):",
                          self.comparison.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        lines += ["", "expected vs obtained (x = the obtained figure):"]
        exp = pd.DataFrame([e.as_dict() for e in self.expectations])
        if not exp.empty:
            with pd.option_context("display.width", 300, "display.max_colwidth", 90):
                lines.append(exp.to_string(index=False))
        lines += ["", *(f"figure: {p}" for p in self.figures)]
        return "\n".join(lines)

    def save(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "table.csv", lambda p: self.table.to_csv(p, index=False))
        exp = [e.as_dict() for e in self.expectations]
        atomic_write(out / "expected_vs_obtained.json", lambda p: Path(p).write_text(json.dumps(exp, indent=2)))
        if self.comparison is not None:
            atomic_write(out / "comparison.csv", lambda p: self.comparison.to_csv(p, index=False))
        atomic_write(out / "info.json", lambda p: Path(p).write_text(json.dumps(self.info, indent=2, default=str)))
        atomic_write(out / "report.txt", lambda p: Path(p).write_text(self.text() + "\n"))
        return out


def subset_ids(ids: Sequence[str], n_images: int | None, seed: int = 0) -> list[str]:
    """``n_images`` ids drawn without replacement (original order kept); all when None."""
    ids = list(ids)
    if n_images is None or n_images >= len(ids):
        return ids
    if n_images < 2:
        raise ValueError(f"n_images must be >= 2; got {n_images}")
    keep = np.sort(np.random.default_rng(seed).choice(len(ids), size=int(n_images), replace=False))
    return [ids[i] for i in keep]


_BLOCK = re.compile(r"^(?:.*\.)?_blocks\.(\d+)$")


def efficientnet_blocks(model) -> list[tuple[str, str]]:
    """(label, layer name) of the MBConv blocks of an EfficientNet-Lite network, in depth order.

    Labels are the model's aliases ``block0`` .. ``block15`` (0-based); names are the hookable
    module paths from :func:`brainlike.models.layers`.
    """
    from brainlike.models import layers

    names = [n for n in layers(model) if _BLOCK.match(n)]
    if not names:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no EfficientNet '_blocks.<i>' layers")
    names.sort(key=lambda n: int(_BLOCK.match(n).group(1)))
    return [(f"block{int(_BLOCK.match(n).group(1))}", n) for n in names]


def _check_weights(weights) -> tuple[str, ...]:
    weights = (weights,) if isinstance(weights, str) else tuple(weights)
    if not weights:
        raise ValueError("weights must name 'pretrained' and/or 'random'; got none")
    for w in weights:
        if w not in ("pretrained", "random"):
            raise ValueError(f"weights must be 'pretrained' and/or 'random'; got {w!r}")
    return tuple(dict.fromkeys(weights))


def networks(model, weights, seed: int = 0):
    """Yield (weights label, Model, network name) for the benchmark's network.

    ``model``: a name for :func:`brainlike.models.load` (loaded once per entry of ``weights``,
    random weights drawn from ``seed``) or a loaded ``Model`` (used as given; ``weights`` must then
    be None and the label follows ``model.pretrained``).
    """
    from brainlike import models

    if isinstance(model, (str, Path)):
        for w in _check_weights(("pretrained", "random") if weights is None else weights):
            yield w, models.load(str(model), pretrained=(w == "pretrained"), seed=seed), str(model)
        return
    if not hasattr(model, "module") or not hasattr(model, "preprocess"):
        raise ValueError(f"model must be a name for brainlike.models.load or a brainlike Model; got {type(model).__name__}")
    if weights is not None:
        raise ValueError("weights applies to a model given by name; a loaded Model is used with the weights it has")
    yield ("pretrained" if model.pretrained else "random"), model, str(model.name)


def network_layers(model, layers) -> list[str]:
    """The layers to score: ``layers`` as given (module paths or aliases, checked), else EfficientNet's blocks."""
    from brainlike.models import resolve_layers

    if layers is None:
        try:
            return [label for label, _ in efficientnet_blocks(model)]
        except ValueError:
            raise ValueError(f"layers: give the layers of {getattr(model, 'name', model)!r} to score "
                             "(brainlike.models.layers(model) lists them); only EfficientNet-Lite has default blocks"
                             ) from None
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    resolve_layers(model, layers)  # a clear error naming the unknown layer
    return list(dict.fromkeys(layers))


def block_features(model, stimuli, layers=None, *, store=None, batch_size: int = 32, progress: bool = False):
    """Features of ``layers`` (default: EfficientNet's blocks) for ``stimuli`` in one pass: {label: LayerFeatures}."""
    from brainlike.features import extract

    labels = network_layers(model, layers)
    fs = extract(model, stimuli, labels, store=store, batch_size=batch_size, progress=progress)
    return {label: fs[label] for label in labels}


def layer_depth(labels: Sequence[str]) -> dict[str, float]:
    """Relative depth of each scored layer in 0..1 (its position in the list given)."""
    n = len(labels)
    return {lab: (i / (n - 1) if n > 1 else 0.0) for i, lab in enumerate(labels)}
