"""Shared parts of the real-data benchmarks: results, expectations, network block features."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._io import atomic_write

__all__ = ["BenchmarkResult", "Expectation", "block_features", "efficientnet_blocks", "subset_ids"]


@dataclass
class Expectation:
    """A figure expected from the literature or an earlier run, next to the one obtained."""

    quantity: str
    expected: str
    obtained: str
    ok: bool | None  # None: no check possible (no earlier figure)
    source: str = ""

    @property
    def status(self) -> str:
        return {True: "as expected", False: "DIFFERS", None: "no reference"}[self.ok]


@dataclass
class BenchmarkResult:
    """Table (one row per block / network), expectations, figure paths and run information."""

    name: str
    table: pd.DataFrame
    expectations: list[Expectation] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(e.ok is not False for e in self.expectations)

    def text(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 200):
            table = self.table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        lines = [f"== benchmark {self.name} ==", *(f"{k}: {v}" for k, v in self.info.items() if k != "timings"),
                 "", table, "", "expected vs obtained:"]
        exp = pd.DataFrame([dict(quantity=e.quantity, expected=e.expected, obtained=e.obtained, status=e.status,
                                 source=e.source) for e in self.expectations])
        if not exp.empty:
            with pd.option_context("display.width", 250, "display.max_colwidth", 80):
                lines.append(exp.to_string(index=False))
        lines += ["", *(f"figure: {p}" for p in self.figures)]
        return "\n".join(lines)

    def save(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "table.csv", lambda p: self.table.to_csv(p, index=False))
        exp = [dict(quantity=e.quantity, expected=e.expected, obtained=e.obtained, status=e.status, source=e.source)
               for e in self.expectations]
        atomic_write(out / "expected_vs_obtained.json", lambda p: Path(p).write_text(json.dumps(exp, indent=2)))
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


def load_network(name: str, pretrained: bool, seed: int = 0):
    """The network with its weights; random weights are drawn from ``seed`` without touching the global RNG."""
    from brainlike import models

    return models.load(name, pretrained=pretrained, seed=seed)


def block_features(model, stimuli, *, store=None, batch_size: int = 32, progress: bool = False):
    """Every block's features for ``stimuli`` in one pass: {label: LayerFeatures}, and the labels."""
    from brainlike.features import extract

    blocks = efficientnet_blocks(model)
    fs = extract(model, stimuli, [n for _, n in blocks], store=store, batch_size=batch_size, progress=progress)
    return {label: fs[n] for label, n in blocks}
