"""Benchmarks as objects: registry, expectations with their exact bounds, any network (real data: few images)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from brainlike import models, validation
from brainlike.validation import Benchmark, BenchmarkResult, at_least, at_most, run_benchmark, within
from brainlike.validation._common import networks, subset_ids

SECOND = "torchvision:alexnet"  # the second network of every benchmark: random weights, seed 0


# ----------------------------------------------------------------------------- registry (offline)
def test_registry_names_and_bad_name():
    from brainlike.cli.benchmark import BUILTIN

    assert validation.names()[:4] == ["v4-cowley2023", "v4-decodability", "v4-encoding-models", "rsa-92images"]
    assert list(BUILTIN) == validation.names()[:4]
    with pytest.raises(ValueError, match="benchmark name must be one of"):
        run_benchmark("v5-nothing")
    for name in BUILTIN:  # every built-in entry resolves to a Benchmark with that name and reference figures
        b = validation.get(name)
        assert isinstance(b, Benchmark) and b.name == name and b.reference and b.data and b.metric


def test_importing_brainlike_registers_nothing_and_loads_no_benchmark():
    code = ("import sys, brainlike, brainlike.validation, brainlike.cli.benchmark; "
            "print(sorted(m for m in sys.modules if m.startswith('brainlike.validation.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "cowley" not in out and "rsa92" not in out and "encoding_models" not in out, out


class _MeanColour(Benchmark):
    """Planted: a layer that averages each channel has an RDM equal (up to scale) to the mean-colour RDM."""

    name = "test-mean-colour"
    data = "8 random images"
    metric = "Spearman rho between a layer's euclidean RDM and the images' mean-colour RDM"
    reference = {"best rho": 0.5}

    def run(self, model, layers, *, weights, seed, default, out_dir=None, n_images=8):
        from brainlike.features import extract
        from brainlike.metrics.rsa import compare_rdms, rdm

        images = np.random.default_rng(seed).integers(0, 256, (n_images, 16, 16, 3), dtype=np.uint8)
        target = rdm(images.reshape(n_images, -1, 3).mean(axis=1), "euclidean")
        rows = []
        for w, net, _ in networks(model, weights, seed):
            fs = extract(net, images, list(layers), progress=False)
            for layer in layers:
                rows.append(dict(weights=w, layer=layer,
                                 rho=compare_rdms(rdm(np.asarray(fs[layer]), "euclidean"), target, "spearman")))
        table = pd.DataFrame(rows)
        return BenchmarkResult(self.name, table, [at_least("best rho", float(table["rho"].max()), 0.99)])

    def summary(self, table):
        return {"best rho": float(table["rho"].max())}


def _toy():
    import torch.nn as nn

    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    return models.wrap(net, models.Preprocess(16, mean=(0.5,) * 3, std=(0.25,) * 3), "toy", input_size=16)


def test_register_run_and_unregister_a_benchmark(tmp_path):
    b = _MeanColour()
    validation.register(b)
    try:
        assert "test-mean-colour" in validation.names() and validation.get("test-mean-colour") is b
        with pytest.raises(ValueError, match="exists already"):
            validation.register(_MeanColour())
        res = run_benchmark("test-mean-colour", _toy(), ["0"], out_dir=tmp_path)
    finally:
        validation.unregister("test-mean-colour")
    assert "test-mean-colour" not in validation.names()
    assert res.table["rho"].iloc[0] == pytest.approx(1.0)  # planted: channel means, uniform affine scaling
    assert res.passed and res.expectations[0].status == "as expected"
    cmp = res.comparison.set_index("figure")
    assert cmp.loc["best rho", "this network"] == pytest.approx(1.0) and cmp.loc["best rho", "EfficientNet-Lite0"] == 0.5
    assert res.info["network"] == "toy" and res.info["layers"] == ["0"] and "not judged" in res.info["expectations"]
    assert (tmp_path / "comparison.csv").is_file() and "beside EfficientNet-Lite0" in (tmp_path / "report.txt").read_text()
    with pytest.raises(ValueError, match="must be a brainlike.validation.Benchmark"):
        validation.register(object())
    with pytest.raises(ValueError, match="no registered benchmark"):
        validation.unregister("rsa-92images")


def test_expectations_print_the_exact_bound_they_test():
    e = at_most("random weights: max rho vs hIT", 0.15, 0.13, 0.03)
    assert e.expected == "x <= 0.13 + 0.03 tolerance = 0.160" and e.ok is True
    assert at_most("q", 0.161, 0.13, 0.03).ok is False and at_most("q", 0.160, 0.13, 0.03).ok is True
    e = within("peak", 0.52, 0.586, 0.05)
    assert e.expected == "|x - 0.586| <= 0.05 (0.536 .. 0.636)" and e.ok is False and e.status == "DIFFERS"
    assert within("peak", 0.6, 0.586, 0.05).status == "as expected"
    e = within("peak", 0.6, 0.586, 0.05, judged=False, why="image subset")
    assert e.ok is None and e.status == "not judged: image subset"
    assert at_least("d", 0.0, 0.0).ok is False and at_least("d", 0.0, 0.0, strict=False).ok is True
    assert at_most("q", float("nan"), 0.1).ok is None  # NaN is never judged as passing


def test_networks_and_layers_are_checked():
    with pytest.raises(ValueError, match="weights must be 'pretrained' and/or 'random'"):
        list(networks("torchvision:alexnet", ("finetuned",)))
    with pytest.raises(ValueError, match="used with the weights it has"):
        list(networks(_toy(), ("random",)))
    assert [w for w, _, _ in networks(_toy(), None)] == ["random"]
    from brainlike.validation._common import network_layers

    with pytest.raises(ValueError, match="layers: give the layers"):
        network_layers(_toy(), None)
    with pytest.raises(ValueError, match="nolayer"):
        network_layers(_toy(), ["nolayer"])


def test_subset_ids_is_reproducible_and_ordered():
    ids = [f"i{k}" for k in range(50)]
    a = subset_ids(ids, 10, seed=3)
    assert a == subset_ids(ids, 10, seed=3) and len(a) == 10
    assert a == [i for i in ids if i in set(a)]
    assert subset_ids(ids, None) == ids
    with pytest.raises(ValueError, match="n_images must be >= 2"):
        subset_ids(ids, 1)


def test_cli_options_and_errors(capsys):
    from brainlike.cli import main

    assert main(["benchmark", "rsa-92images", "--session", "190923"]) == 2
    assert "--session does not apply to the benchmark 'rsa-92images'" in capsys.readouterr().err
    assert main(["benchmark", "v5-nothing"]) == 2
    assert "benchmark name must be one of" in capsys.readouterr().err
    assert main(["benchmark", "rsa-92images", "--random-weights", "--weights", "pretrained"]) == 2
    import argparse

    from brainlike.cli.benchmark import options

    ns = argparse.Namespace(name="v4-encoding-models", random_weights=True, weights=None, seed=3, n_images=60,
                            store=None, session=None, ceiling_session=None, sessions=["190923"], n_units=None, cv=2,
                            inner_cv=None, run=["ridge"], gnet_layer=None, gnet_epochs=2)
    assert options(ns) == dict(weights=("random",), seed=3, n_images=60, sessions=("190923",), n_folds=2,
                               run=("ridge",), gnet_params={"max_epochs": 2})


# ----------------------------------------------------------------------------- real data (mirror)


def _beside(res, ours, ref):
    """The comparison row ``ours`` holds this network's figure and EfficientNet-Lite0's reference figure."""
    cmp = res.comparison.set_index("figure")
    assert np.isfinite(cmp.loc[ours, "this network"])
    assert cmp.loc[ref, "EfficientNet-Lite0"] == validation.get(res.name).reference[ref]
    return cmp


@pytest.mark.realdata
def test_rsa_92images_default_network_late_blocks_beat_early_blocks(mirror, tmp_path):
    res = run_benchmark("rsa-92images", weights=("pretrained",), out_dir=tmp_path)
    t = res.table.set_index("layer")
    assert len(t) == 16
    late = t.loc[["block11", "block12", "block13", "block14"]]
    early = t.loc[["block0", "block1", "block2"]]
    # figures of SOURCES.md: late ≈ 0.40 / 0.46, early ≈ 0.15 / 0.15 (Spearman vs hIT / mIT)
    assert late["rho_hIT"].mean() == pytest.approx(0.40, abs=0.06)
    assert late["rho_mIT"].mean() == pytest.approx(0.46, abs=0.06)
    assert early["rho_hIT"].mean() == pytest.approx(0.15, abs=0.07)
    assert late["rho_hIT"].mean() > early["rho_hIT"].mean() + 0.15
    lo, hi = (float(x) for x in res.info["noise_ceiling_hIT_subjects"].split("]")[0].strip("[").split(","))
    assert 0.2 < lo < hi < 0.8 and (t["rho_hIT_subjects"] < hi).all()
    assert res.passed, res.text()
    judged = {e.quantity: e for e in res.expectations if e.ok is not None}
    assert {"hIT vs mIT (Spearman)", "pretrained blocks 11-14: mean rho vs hIT"} <= set(judged)
    assert judged["pretrained blocks 11-14: mean rho vs hIT"].expected == "|x - 0.4| <= 0.06 (0.340 .. 0.460)"
    assert (tmp_path / "rsa_92images.png").stat().st_size > 10_000
    exp = json.loads((tmp_path / "expected_vs_obtained.json").read_text())
    assert {"quantity", "expected", "obtained", "status", "source"} <= set(exp[0])


@pytest.mark.realdata
def test_rsa_92images_on_a_second_network(mirror, tmp_path):
    res = run_benchmark("rsa-92images", SECOND, ["conv1", "conv5", "fc7"], weights="random", seed=0, n_images=24,
                        out_dir=tmp_path)
    assert list(res.table["layer"]) == ["conv1", "conv5", "fc7"] and set(res.table["weights"]) == {"random"}
    cmp = _beside(res, "random: max rho vs hIT", "random: max rho vs hIT")
    assert cmp.loc["random: max rho vs hIT", "this network"] == pytest.approx(res.table["rho_hIT"].max())
    # EfficientNet-Lite0's figures are shown, not judged, for another network
    by_q = {e.quantity: e for e in res.expectations}
    assert by_q["random weights: max rho vs hIT"].ok is None
    assert "EfficientNet-Lite0" in by_q["random weights: max rho vs hIT"].status
    assert res.passed and "beside EfficientNet-Lite0" in res.text()


@pytest.mark.realdata
def test_v4_cowley2023_on_a_second_network(mirror, tmp_path):
    res = run_benchmark("v4-cowley2023", SECOND, ["conv1", "conv4"], weights="random", seed=0, n_images=96, cv=3,
                        inner_cv=3, out_dir=tmp_path)
    t = res.table
    assert len(t) == 4 and set(t["session"]) == {"190923", "210325"} and (t["n_neurons"] > 30).all()
    assert t["mean_r"].between(0.0, 0.8).all()  # stimulus-driven V4 responses: positive out-of-fold r
    ceil = t[t["session"] == "210325"]
    assert (ceil["mean_r_norm"] > ceil["mean_r"]).all()  # ceilings below 1 raise the score
    cmp = _beside(res, "190923 random: max mean r", "190923 random: max mean r")
    assert cmp.loc["210325: mean split-half reliability", "this network"] == pytest.approx(
        float(ceil["reliability"].iloc[0]))
    assert all(e.ok is None for e in res.expectations)  # subset + another network: nothing judged
    assert len(res.figures) == 2 and (tmp_path / "partial.csv").is_file()


@pytest.mark.realdata
def test_v4_decodability_on_a_second_network(mirror):
    res = run_benchmark("v4-decodability", SECOND, ["conv2", "conv5"], weights="random", seed=0, n_images=96,
                        n_units=30, cv=3)
    t = res.table
    assert list(t["layer"]) == ["conv2", "conv5"] and (t["n_units"] + t["n_constant"] == 30).all()
    assert t["median_r"].between(-0.2, 0.9).all()
    _beside(res, "random: highest median decodability", "random: highest median decodability")


@pytest.mark.slow
@pytest.mark.realdata
def test_v4_cowley2023_default_network_on_a_subset(mirror, tmp_path):
    res = run_benchmark("v4-cowley2023", n_images=240, weights=("pretrained",), cv=3, ceiling_session=None,
                        out_dir=tmp_path)
    main = res.table[res.table["session"] == "190923"].reset_index(drop=True)
    assert len(main) == 16 and (main["n_neurons"] == 33).all()
    peak = int(main["mean_r"].idxmax())  # a middle block predicts V4 better than the first and the last
    assert 3 <= peak <= 12 and main["mean_r"].max() > main["mean_r"].iloc[0] + 0.03
    by_q = {e.quantity: e for e in res.expectations}
    assert by_q["190923 pretrained: profile over depth"].ok is True  # judged for the default network
    assert by_q["190923 pretrained: peak mean r over neurons"].status == \
        "not judged: image subset (lower than with all images)"
