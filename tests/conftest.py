"""Shared fixtures: the offline data mirror and small random data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_MIRROR = REPO.parent / "shared" / "data"
if "BRAINLIKE_DATA_MIRROR" not in os.environ and _DEFAULT_MIRROR.is_dir():
    os.environ["BRAINLIKE_DATA_MIRROR"] = str(_DEFAULT_MIRROR)
# Keep the tests' thread use predictable on small machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def mirror() -> Path:
    """The offline data mirror (``BRAINLIKE_DATA_MIRROR``); skip when it is absent."""
    path = os.environ.get("BRAINLIKE_DATA_MIRROR")
    if not path or not Path(path).is_dir():
        pytest.skip("real data mirror not found: set BRAINLIKE_DATA_MIRROR to a folder laid out like ../shared/data")
    return Path(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
