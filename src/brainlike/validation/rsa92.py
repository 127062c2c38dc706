"""RSA benchmark on the 92 images of Kriegeskorte et al. (2008).

For every layer of a network (pretrained and random weights): the RDM of the layer's
features (1 - Pearson r between image patterns) is compared by Spearman rank correlation with
the human IT RDM of fig. 1, with the monkey IT RDM (Kiani et al. 2007) and with each of the 4
subjects' human IT RDMs (mean of their 2 sessions). The noise ceiling (Nili et al. 2014) of the
subject-level comparison is computed from the 4 subject RDMs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.ids import align
from brainlike.metrics.rsa import compare_rdms, rdm, rdm_noise_ceiling
from brainlike.validation._benchmark import Benchmark
from brainlike.validation._common import (
    BenchmarkResult,
    at_least,
    at_most,
    block_features,
    networks,
    subset_ids,
    verdict,
    within,
)

__all__ = ["RSA92Images", "subject_rdms"]

OTHER = "figure measured on EfficientNet-Lite0's blocks"
SOURCE = "shared data SOURCES.md (EfficientNet-Lite0 RDM, 1 - Pearson, vs hIT/mIT, Spearman)"


def subject_rdms(k92) -> tuple[np.ndarray, list[str]]:
    """Human IT RDMs per subject (sessions averaged): (n_subjects, 92, 92) and the subject names."""
    rd = np.asarray(k92.rdms["hIT"], dtype=np.float64)
    labels = list(k92.rdm_labels.get("hIT", [str(i) for i in range(len(rd))]))
    # labels look like "hIT | BE | Session: 1": the second field names the subject
    subj = [lab.split("|")[1].strip() if lab.count("|") >= 2 else "" for lab in labels]
    names = list(dict.fromkeys(subj))
    if "" in names or len(names) == len(rd):  # no subject names: the file's layout is subjects x 2 sessions
        names = [f"subject{i + 1}" for i in range(len(rd) // 2)]
        subj = [names[i // 2] for i in range(len(rd))]
    stack = np.stack([rd[[j for j, s in enumerate(subj) if s == n]].mean(axis=0) for n in names])
    return stack, names


class RSA92Images(Benchmark):
    """Layer RDMs vs human and monkey IT with the noise ceiling (see the module doc)."""

    name = "rsa-92images"
    data = "Kriegeskorte et al. 2008, 92 images; hIT (4 subjects x 2 sessions) and mIT RDMs"
    metric = "Spearman rho between the layer's RDM (1 - Pearson r) and the IT RDMs (also Kendall tau-a)"
    ceiling = "Nili et al. 2014 noise ceiling of the subject-level hIT comparison"
    reference = {"pretrained: best rho vs hIT": 0.395, "pretrained: rho vs mIT at that layer": 0.456,
                 "pretrained: best subject-level rho vs hIT": 0.272, "random: max rho vs hIT": 0.107,
                 "random: max rho vs mIT": 0.222, "data: hIT vs mIT": 0.439}

    def run(self, model, layers, *, weights, seed, default, n_images=None, out_dir=None, store=None, batch_size=32,
            progress=None):
        from brainlike import datasets

        k92 = datasets.load("kriegeskorte2008_92")
        all_ids = list(k92.stimuli.ids)
        keep_ids = subset_ids(all_ids, n_images, seed)
        if len(keep_ids) < 3:
            raise ValueError(f"n_images must be >= 3 for an RDM comparison; got {n_images}")
        keep = align(all_ids, keep_ids, source="the 92-image set", wanted="the chosen images")
        sel = np.ix_(keep, keep)
        hit_fig1 = k92.rdms["hIT_fig1"][0][sel]
        mit = k92.rdms["mIT"][0][sel]
        subj, subj_names = subject_rdms(k92)
        subj = subj[:, keep][:, :, keep]
        nc_low, nc_up = rdm_noise_ceiling(subj, "spearman")
        stimuli = k92.stimuli.subset(keep_ids)
        rows, timings = [], {}
        for w, net, _ in networks(model, weights, seed):
            t = time.perf_counter()
            sub_store = None if store is None else Path(store) / f"k92_{w}"
            feats = block_features(net, stimuli, layers, store=sub_store, batch_size=batch_size)
            for label, lf in feats.items():
                X = np.asarray(lf, dtype=np.float32)[align(lf.ids, keep_ids, source=f"features of {label!r}",
                                                           wanted="the RDM images")]
                D = rdm(X, "correlation")
                per_subject = compare_rdms(subj, D, "spearman")
                rows.append(dict(
                    weights=w, layer=label,
                    rho_hIT=compare_rdms(D, hit_fig1, "spearman"),
                    rho_mIT=compare_rdms(D, mit, "spearman"),
                    rho_hIT_subjects=float(np.mean(per_subject)),
                    sem_hIT_subjects=float(np.std(per_subject, ddof=1) / np.sqrt(len(per_subject))),
                    tau_a_hIT=compare_rdms(D, hit_fig1, "kendall_tau_a"),
                    frac_of_lower_ceiling=float(np.mean(per_subject) / nc_low) if nc_low > 0 else np.nan,
                ))
                if progress:
                    progress(f"{w} {label}: rho hIT {rows[-1]['rho_hIT']:.3f}, mIT {rows[-1]['rho_mIT']:.3f}")
            timings[w] = round(time.perf_counter() - t, 1)
        table = pd.DataFrame(rows)
        table["hIT_vs_mIT"] = compare_rdms(hit_fig1, mit, "spearman")  # a property of the data, same on every row
        full = len(keep_ids) == len(all_ids)
        exps = _expectations(table, float(table["hIT_vs_mIT"].iloc[0]), full, default)
        figures = []
        if out_dir is not None:
            figures = [_figure(table, (nc_low, nc_up), float(table["hIT_vs_mIT"].iloc[0]), len(keep_ids),
                               getattr(model, "name", model), Path(out_dir))]
        info = dict(n_images=len(keep_ids), subjects=subj_names,
                    noise_ceiling_hIT_subjects=f"[{nc_low:.3f}, {nc_up:.3f}] (Spearman, Nili et al. 2014)",
                    timings=timings)
        return BenchmarkResult(self.name, table, exps, figures, info)

    def summary(self, table):
        out = {}
        pre, ran = table[table["weights"] == "pretrained"], table[table["weights"] == "random"]
        if not pre.empty:
            i = pre["rho_hIT"].idxmax()
            out["pretrained: best rho vs hIT"] = float(pre.loc[i, "rho_hIT"])
            out["pretrained: rho vs mIT at that layer"] = float(pre.loc[i, "rho_mIT"])
            out["pretrained: best subject-level rho vs hIT"] = float(pre["rho_hIT_subjects"].max())
        if not ran.empty:
            out["random: max rho vs hIT"] = float(ran["rho_hIT"].max())
            out["random: max rho vs mIT"] = float(ran["rho_mIT"].max())
        if not table.empty:
            out["data: hIT vs mIT"] = float(table["hIT_vs_mIT"].iloc[0])
        return out


def _num(label) -> int:
    return int("".join(c for c in label if c.isdigit()))


def _expectations(table, hit_vs_mit, full, default) -> list:
    subset = "image subset"
    why = OTHER if not default else subset
    judged = full and default
    # a property of the data alone: judged for any network on all 92 images
    exps = [within("hIT vs mIT (Spearman)", hit_vs_mit, 0.44, 0.02, judged=full, why=subset, source=SOURCE)]
    pre = table[table["weights"] == "pretrained"]
    ran = table[table["weights"] == "random"]
    if not pre.empty and default:
        nums = pre["layer"].map(_num)
        late = pre[nums.between(11, 14)]
        early = pre[nums <= 2]
        if not late.empty:
            exps.append(within("pretrained blocks 11-14: mean rho vs hIT", late["rho_hIT"].mean(), 0.40, 0.06,
                               judged=judged, why=why, source=SOURCE))
            exps.append(within("pretrained blocks 11-14: mean rho vs mIT", late["rho_mIT"].mean(), 0.46, 0.06,
                               judged=judged, why=why, source=SOURCE))
        if not early.empty:
            exps.append(within("pretrained early blocks 0-2: mean rho vs hIT", early["rho_hIT"].mean(), 0.15, 0.07,
                               judged=judged, why=why, source=SOURCE))
            exps.append(within("pretrained early blocks 0-2: mean rho vs mIT", early["rho_mIT"].mean(), 0.15, 0.07,
                               judged=judged, why=why, source=SOURCE))
        if not late.empty and not early.empty:
            ok = bool(late["rho_hIT"].mean() > early["rho_hIT"].mean() and late["rho_mIT"].mean() > early["rho_mIT"].mean())
            exps.append(verdict("late blocks beat early blocks (hIT and mIT)",
                                "mean over blocks 11-14 > mean over blocks 0-2, for hIT and for mIT",
                                f"hIT {late['rho_hIT'].mean():.3f} > {early['rho_hIT'].mean():.3f}, "
                                f"mIT {late['rho_mIT'].mean():.3f} > {early['rho_mIT'].mean():.3f}", ok))
    if not ran.empty:
        rh, rm = float(ran["rho_hIT"].max()), float(ran["rho_mIT"].max())
        exps.append(at_most("random weights: max rho vs hIT", rh, 0.13, 0.03, judged=judged, why=why, source=SOURCE))
        exps.append(at_most("random weights: max rho vs mIT", rm, 0.21, 0.03, judged=judged, why=why, source=SOURCE))
        if not pre.empty:  # network-independent: judged for any network
            exps.append(at_least("best pretrained rho vs hIT - best random rho vs hIT", float(pre["rho_hIT"].max()) - rh,
                                 0.0, obtained=f"{pre['rho_hIT'].max():.3f} - {rh:.3f} = {pre['rho_hIT'].max() - rh:.3f}"))
    return exps


def _figure(table, ceiling, hit_vs_mit, n_images, network, out: Path) -> Path:
    from brainlike._plotting import save_png as _save, subplots

    fig, axes = subplots(1, 2, figsize=(12, 3.8))
    colors = {"pretrained": "#1f77b4", "random": "#7f7f7f"}
    layers = list(dict.fromkeys(table["layer"]))
    x = np.arange(len(layers))
    ax = axes[0]
    ax.axhspan(ceiling[0], ceiling[1], color="#cccccc", alpha=0.6, label="noise ceiling (4 subjects)")
    for w, d in table.groupby("weights", sort=False):
        ax.errorbar(x, d["rho_hIT_subjects"], yerr=d["sem_hIT_subjects"], marker="o", capsize=2, color=colors[w],
                    label=f"{w}: mean over subjects")
        ax.plot(x, d["rho_hIT"], linestyle="--", color=colors[w], alpha=0.7, label=f"{w}: fig. 1 group RDM")
    ax.set_title("human IT", fontsize=10)
    ax2 = axes[1]
    for w, d in table.groupby("weights", sort=False):
        ax2.plot(x, d["rho_mIT"], marker="o", color=colors[w], label=w)
    ax2.axhline(hit_vs_mit, color="k", linestyle=":", linewidth=1, label=f"hIT vs mIT = {hit_vs_mit:.2f}")
    ax2.set_title("monkey IT", fontsize=10)
    for a in axes:
        a.set_xticks(x)
        a.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
        a.set_ylabel("Spearman rho (RDM)")
        a.axhline(0, color="k", linewidth=0.5)
        a.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{network} layer RDMs vs IT ({n_images} images)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out / "rsa_92images.png")
