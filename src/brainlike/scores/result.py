"""A score as a result: the number, its interval, its p-value, what it rests on, and why it is NaN.

:class:`ScoreResult` is what every score of :mod:`brainlike.scores` returns (``bh_score``,
``bh_score_encoding``, the bootstrap and permutation functions, the registered scores the
pipeline computes). It saves itself as two files written atomically: ``NAME.json`` (the numbers,
readable) and ``NAME.npz`` (the bootstrap replicates, the permutation null and other arrays),
the JSON recording the npz file's content hash so that a damaged or swapped array file is named
on loading.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from brainlike._hash import hash_file
from brainlike._io import atomic_write

FORMAT = "brainlike.score_result/1"
_FLOATS = ("score", "ci_low", "ci_high", "level", "p_value")
_INTS = ("n_test", "n_units", "n_used", "n_kept", "n_boot", "n_perm")


class CI(NamedTuple):
    """A confidence interval: bounds, coverage level and how it was made."""

    low: float
    high: float
    level: float
    method: str


@dataclass(repr=False, eq=False)
class ScoreResult:
    """One score with its uncertainty and what it rests on.

    Attributes
    ----------
    score : the estimate (NaN when undefined; ``reason`` then says why).
    ci_low, ci_high, level, ci_method : confidence interval (NaN when not computed); ``ci_method``
        is ``"percentile"`` or ``"recentred"`` (see :func:`brainlike.scores.bootstrap_ci`).
    p_value, alternative : permutation p-value (NaN when not computed) and its alternative.
    samples : bootstrap replicates; ``null`` : permutation null distribution (empty when none).
    n_test : test images behind each accuracy (the ``n_samples`` of the significance test).
    n_units, n_used, n_kept : units (or voxels) entering the score, those with a finite accuracy,
        those kept (significant and positive).
    reason : why the score is NaN ("" otherwise).
    name : the score's name (a registry name such as ``"bh_decoding"``).
    info : further JSON-able settings (pval, significance, layer selection ...); a NaN in it is
        saved as null (None).
    arrays : further arrays (e.g. the BH count table ``"table"``).
    """

    score: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    level: float = math.nan
    ci_method: str = ""
    p_value: float = math.nan
    alternative: str = ""
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0))
    null: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_test: int | None = None
    n_units: int | None = None
    n_used: int | None = None
    n_kept: int | None = None
    reason: str = ""
    name: str = ""
    info: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)

    def __post_init__(self):
        self.score = float(self.score)
        for k in ("ci_low", "ci_high", "level", "p_value"):
            setattr(self, k, float(getattr(self, k)))
        self.samples = np.asarray(self.samples, dtype=np.float64).ravel()
        self.null = np.asarray(self.null, dtype=np.float64).ravel()
        for k in ("n_test", "n_units", "n_used", "n_kept"):
            v = getattr(self, k)
            setattr(self, k, None if v is None else int(v))
        self.arrays = {str(k): np.asarray(v) for k, v in self.arrays.items()}

    # ---------------------------------------------------------------------------------- views
    @property
    def ci(self) -> CI:
        return CI(self.ci_low, self.ci_high, self.level, self.ci_method)

    @property
    def n_boot(self) -> int:
        return int(self.samples.size)

    @property
    def n_perm(self) -> int:
        return int(self.null.size)

    @property
    def top_rois(self) -> list[np.ndarray]:
        """Per layer (decoding; per ROI for the encoding score) the best-ROI (best-layer) index of each kept unit."""
        if "kept_best" not in self.arrays:
            raise AttributeError("this result holds no best-ROI indices (only bh_score / bh_score_encoding keep them)")
        return np.split(self.arrays["kept_best"], np.cumsum(self.arrays["kept_per_item"])[:-1])

    def __float__(self) -> float:
        return self.score

    def __format__(self, spec: str) -> str:
        return format(self.score, spec) if spec else repr(self)

    def to_dict(self) -> dict:
        """The scalar fields (no arrays): one row of a results table."""
        out = {"name": self.name, "score": self.score, "ci_low": self.ci_low, "ci_high": self.ci_high,
               "level": self.level, "ci_method": self.ci_method, "p_value": self.p_value,
               "alternative": self.alternative, "n_boot": self.n_boot, "n_perm": self.n_perm}
        out.update({k: getattr(self, k) for k in ("n_test", "n_units", "n_used", "n_kept")})
        out["reason"] = self.reason
        return out

    def __repr__(self) -> str:
        name = self.name or "score"
        parts = [f"{name} = {self.score:.4g}"]
        if np.isfinite(self.ci_low) or np.isfinite(self.ci_high):
            parts.append(f"{self.level:.0%} CI [{self.ci_low:.4g}, {self.ci_high:.4g}] ({self.ci_method}, "
                         f"{self.n_boot} replicates)")
        if np.isfinite(self.p_value):
            parts.append(f"p = {self.p_value:.4g} (permutation, {self.n_perm}, {self.alternative})")
        used = [f"{label} {getattr(self, k)}" for k, label in (("n_units", "units"), ("n_used", "used"),
                                                               ("n_kept", "kept")) if getattr(self, k) is not None]
        if used:
            parts.append(", ".join(used))
        if self.n_test is not None:
            parts.append(f"n_test {self.n_test}")
        if self.reason:
            parts.append(f"NaN because: {self.reason}")
        return f"<ScoreResult {'; '.join(parts)}>"

    # ----------------------------------------------------------------------------- save/load
    def save(self, path) -> Path:
        """Write ``path`` (``.json``) and its arrays beside it (same stem, ``.npz``), each atomically.

        Returns the JSON path. The JSON records the npz file's name and content hash.
        """
        path = Path(path)
        if path.suffix != ".json":
            raise ValueError(f"path must end in .json (the arrays go to the .npz beside it); got {str(path)!r}")
        npz = path.with_suffix(".npz")
        bad = [k for k in self.arrays if k in ("samples", "null")]
        if bad:
            raise ValueError(f"arrays may not be named {bad} (reserved for the replicates)")
        data = {"samples": self.samples, "null": self.null, **{f"a_{k}": v for k, v in self.arrays.items()}}

        def write_npz(tmp):  # as numpy.savez, with a fixed time stamp: the same result gives the same bytes
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for key, value in data.items():
                    info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    with zf.open(info, "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)

        atomic_write(npz, write_npz, fsync=True)
        doc = {"format": FORMAT, **{k: _num(getattr(self, k)) for k in _FLOATS},
               "ci_method": self.ci_method, "alternative": self.alternative, "reason": self.reason,
               "name": self.name, **{k: getattr(self, k) for k in ("n_test", "n_units", "n_used", "n_kept")},
               "info": _finite(self.info), "arrays_file": npz.name, "arrays_xxh3_128": hash_file(npz)}
        text = json.dumps(doc, indent=1, allow_nan=False, default=_jsonable)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"), fsync=True)
        return path

    @classmethod
    def load(cls, path) -> ScoreResult:
        """Read a result written by :meth:`save`; a damaged or swapped array file is named."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable score result ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not a score result (format {FORMAT!r} expected)")
        npz = path.parent / doc["arrays_file"]
        if not npz.is_file():
            raise FileNotFoundError(f"{npz}: the arrays of score result {path} are missing")
        if hash_file(npz) != doc["arrays_xxh3_128"]:
            raise ValueError(f"{npz}: content does not match the hash recorded in {path} (damaged or replaced)")
        with np.load(npz, allow_pickle=False) as z:
            samples, null = z["samples"], z["null"]
            arrays = {k[2:]: z[k] for k in z.files if k.startswith("a_")}
        floats = {k: (math.nan if doc[k] is None else doc[k]) for k in _FLOATS}
        return cls(**floats, ci_method=doc["ci_method"], alternative=doc["alternative"], samples=samples,
                   null=null, reason=doc["reason"], name=doc["name"], info=doc["info"], arrays=arrays,
                   **{k: doc[k] for k in ("n_test", "n_units", "n_used", "n_kept")})


def _num(x: float):
    return None if not np.isfinite(x) else float(x)


def _finite(x):
    """``x`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return _num(float(x))
    return x


def _jsonable(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return _num(float(x))
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"info holds a {type(x).__name__}, which JSON cannot hold")
