"""Real-data validation suite on a few hundred images (skips without the data mirror)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brainlike.validation import BENCHMARKS, run_benchmark
from brainlike.validation._common import subset_ids

pytestmark = pytest.mark.realdata


def test_registry_and_bad_name():
    from brainlike.cli.benchmark import BENCHMARK_NAMES

    assert set(BENCHMARKS) == {"v4-cowley2023", "v4-decodability", "rsa-92images"} == set(BENCHMARK_NAMES)
    with pytest.raises(ValueError, match="name must be one of"):
        run_benchmark("v5-nothing")


def test_subset_ids_is_reproducible_and_ordered():
    ids = [f"i{k}" for k in range(50)]
    a = subset_ids(ids, 10, seed=3)
    assert a == subset_ids(ids, 10, seed=3) and len(a) == 10
    assert a == [i for i in ids if i in set(a)]
    assert subset_ids(ids, None) == ids
    with pytest.raises(ValueError, match="n_images must be >= 2"):
        subset_ids(ids, 1)


def test_rsa_92images_late_blocks_beat_early_blocks(mirror, tmp_path):
    res = run_benchmark("rsa-92images", weights=("pretrained",), out_dir=tmp_path)
    t = res.table.set_index("block")
    assert len(t) == 16
    late = t.loc[["block11", "block12", "block13", "block14"]]
    early = t.loc[["block0", "block1", "block2"]]
    # figures of SOURCES.md: late ≈ 0.40 / 0.46, early ≈ 0.15 / 0.15 (Spearman vs hIT / mIT)
    assert late["rho_hIT"].mean() == pytest.approx(0.40, abs=0.06)
    assert late["rho_mIT"].mean() == pytest.approx(0.46, abs=0.06)
    assert early["rho_hIT"].mean() == pytest.approx(0.15, abs=0.07)
    assert late["rho_hIT"].mean() > early["rho_hIT"].mean() + 0.15
    # subject-level scores lie below the noise ceiling's upper bound
    lo, hi = (float(x) for x in res.info["noise_ceiling_hIT_subjects"].split("]")[0].strip("[").split(","))
    assert 0.2 < lo < hi < 0.8 and (t["rho_hIT_subjects"] < hi).all()
    assert res.passed, res.text()
    assert (tmp_path / "rsa_92images.png").stat().st_size > 10_000
    exp = json.loads((tmp_path / "expected_vs_obtained.json").read_text())
    assert {e["quantity"] for e in exp} >= {"hIT vs mIT (Spearman)", "pretrained blocks 11-14: rho vs hIT / mIT"}


@pytest.mark.slow
def test_v4_cowley2023_on_a_subset(mirror, tmp_path):
    res = run_benchmark("v4-cowley2023", n_images=240, weights=("pretrained",), cv=3, out_dir=tmp_path)
    t = res.table
    main = t[t["session"] == "190923"].reset_index(drop=True)
    assert len(main) == 16 and (main["n_neurons"] == 33).all()
    # a middle block predicts V4 better than the first and the last block, even on 240 images
    peak = int(main["mean_r"].idxmax())
    assert 3 <= peak <= 12
    assert main["mean_r"].max() > main["mean_r"].iloc[0] + 0.03
    assert 0.3 < main["mean_r"].max() < 0.75
    ceil = t[t["session"] == "210325"]
    assert len(ceil) == 16 and ceil["median_ceiling_r"].between(0.6, 1.0).all()
    assert ceil["mean_r_norm"].max() >= ceil["mean_r"].max()  # ceilings below 1 raise the best score
    assert any("split-half" in e.quantity for e in res.expectations)
    assert len(res.figures) == 2 and all(p.stat().st_size > 10_000 for p in res.figures)


@pytest.mark.slow
def test_v4_decodability_on_a_subset(mirror, tmp_path):
    res = run_benchmark("v4-decodability", n_images=240, n_units=60, cv=3, out_dir=tmp_path)
    t = res.table
    assert set(t["weights"]) == {"pretrained", "random"} and len(t) == 32
    assert (t["n_units"] > 0).all()
    pre = t[t["weights"] == "pretrained"]
    assert pre["median_r"].between(-0.2, 0.9).all() and pre["median_r"].max() > 0.1
    assert res.figures[0].stat().st_size > 10_000
