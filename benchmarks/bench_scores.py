"""Scores: BH score of an AlexNet-sized network (659,272 units, 5 ROIs) vs the published recipe.

The peer is the published BHscore recipe as its code runs it: per layer NaN -> 0, argmax/max
over ROIs, the t-test p-value of every unit, then ``scipy.stats.spearmanr`` on the expanded
(layer number, best ROI) vectors; layer selection repeats all of it ``n_repeat`` times.
brainlike computes each unit's best ROI once and works on the (layer x ROI) count table.

Prints time, ratio, peak traced memory and the bytes bound (reading the accuracies once at
~10 GB/s). ``--small``: 1/100 of the units and fewer replicates (a quick check that it runs).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import numpy as np
from scipy.stats import spearmanr, t

ALEXNET_UNITS = [96 * 55 * 55, 256 * 27 * 27, 384 * 13 * 13, 384 * 13 * 13, 256 * 13 * 13, 4096, 4096, 1000]


def measure(fn, repeat=3):
    best, peak, out = float("inf"), 0, None
    for _ in range(repeat):
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        best = min(best, dt)
    return best, peak, out


def row(name, sec, peak, ref=None):
    ratio = f"{ref / sec:7.1f}x" if ref else "    1.0x"
    print(f"  {name:58s} {sec * 1e3:10.1f} ms {ratio}  peak {peak / 2**20:7.1f} MiB")


def recipe_bh(predacc_list, n=50, pval=0.05):
    layer_numbers, best = [], []
    for i, predacc in enumerate(predacc_list):
        predacc = predacc.copy()
        predacc[np.isnan(predacc)] = 0
        m = np.max(predacc, axis=0)
        idx = np.argmax(predacc, axis=0)
        pv = 2 * (1 - t.cdf(m * np.sqrt((n - 2) * (1 - m**2)), df=n - 2))
        sel = np.logical_and(pv < pval, m > 0)
        layer_numbers.extend(np.repeat(i + 1, int(sel.sum())))
        best.extend(idx[sel])
    return spearmanr(layer_numbers, best)[0]


def recipe_layerselect(predacc_list, n_layers=5, n_repeat=100, seed=0):
    rs = np.random.RandomState(seed)
    out = np.zeros(n_repeat)
    for i in range(n_repeat):
        s = np.sort(rs.choice(np.arange(1, len(predacc_list) - 1), size=n_layers - 2, replace=False))
        out[i] = recipe_bh([predacc_list[0]] + [predacc_list[j] for j in s] + [predacc_list[-1]])
    return out


def main(small: bool = False):
    from brainlike.scores import bh_score, bh_score_layer_select, bootstrap_bh_score, permutation_bh_score

    rng = np.random.default_rng(0)
    accs = []
    sizes = [max(n // 100, 10) for n in ALEXNET_UNITS] if small else ALEXNET_UNITS
    n_resample = 100 if small else 1000
    for k, n in enumerate(sizes):
        a = rng.normal(0.12, 0.15, size=(5, n))
        a[min(k // 2, 4)] += 0.08  # a hierarchy to find
        accs.append(np.clip(a, -0.99, 0.99))
    n_units = sum(sizes)
    nbytes = sum(a.nbytes for a in accs)
    print(f"BH score, {len(accs)} layers, {n_units:,} units, 5 ROIs, float64 ({nbytes / 2**20:.0f} MiB); "
          f"bytes bound {nbytes / 10e9 * 1e3:.1f} ms per pass")
    t_ref, m_ref, s_ref = measure(lambda: recipe_bh(accs), repeat=2)
    t_our, m_our, s_our = measure(lambda: bh_score(accs, n_samples=50).score, repeat=3)
    assert abs(s_ref - s_our) < 1e-12, (s_ref, s_our)
    row("published recipe: bh on all layers", t_ref, m_ref)
    row("brainlike bh_score", t_our, m_our, t_ref)

    # the recipe's layer selection is timed on 10 repeats and extrapolated (x10) to the paper's 100
    t_ref, m_ref, r_ref = measure(lambda: recipe_layerselect(accs, n_repeat=10), repeat=1)
    t_ref *= 10
    t_our, m_our, r_our = measure(lambda: bh_score_layer_select(accs, n_repeat=100, seed=0, n_samples=50), repeat=2)
    assert np.allclose(r_ref, r_our[:10], atol=1e-12)
    row("published recipe: layer select, 100 repeats (10 timed, x10)", t_ref, m_ref)
    row("brainlike bh_score_layer_select(n_repeat=100)", t_our, m_our, t_ref)

    t_b, m_b, res = measure(lambda: bootstrap_bh_score(accs, n_boot=n_resample, layer_select={}, n_samples=50), repeat=1)
    row(f"brainlike bootstrap, {n_resample} x layer select (CI {res.ci_low:.3f}..{res.ci_high:.3f})", t_b, m_b)
    t_p, m_p, res = measure(lambda: permutation_bh_score(accs, n_perm=n_resample, layer_select={}, n_samples=50), repeat=1)
    row(f"brainlike permutation null, {n_resample} x layer select (p {res.p_value:.4f})", t_p, m_p)
    print(f"  (rerunning the recipe's layer selection {n_resample} x instead would take ~{n_resample * t_ref / 3600:.0f} h)")


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
