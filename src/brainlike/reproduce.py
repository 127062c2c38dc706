"""Reproduce published results: the 29 BH scores of Nonaka et al. (2021).

``reproduce_nonaka2021`` reads BHscore's ``settings.json`` and the published decoding and
encoding accuracy trees, computes for every network

- the decoding-based BH score: mean of :func:`~brainlike.scores.bh_score_layer_select`
  (5 layers, first and last always, 100 random draws),
- the encoding-based BH score: :func:`~brainlike.scores.bh_score_encoding` on the voxels in
  the files (they already are the paper's 1000 random voxels per subject and ROI),
- their average,

and puts them beside the published figures. The decoding-based score depends on the random
layer draws (the reference code does not seed them), so it matches the publication to about
±0.01; the encoding-based score has no randomness and matches up to the printed digits.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike._io import atomic_write
from brainlike.datasets import bhscore as bhfiles
from brainlike.scores import (
    bh_score_average,
    bh_score_encoding,
    bh_score_layer_select,
    bootstrap_bh_score,
    bootstrap_ci,
    permutation_bh_score,
    permutation_pvalue,
)

# The published accuracies are Pearson r over the 50 images of the ImageNetTest set (Horikawa &
# Kamitani 2017), the number BHscore's code hard-codes for its significance test.
RECIPE_N_TEST = 50

# Published BH scores (Nonaka et al. 2021, iScience 24:103013; as printed by the paper's own
# notebook in KamitaniLab/BHscore): decoding-based, encoding-based, averaged.
PUBLISHED_NONAKA2021 = """network,bh_decoding,bh_encoding,bh_average
AlexNet,0.492822,0.339689,0.416256
VGG-F,0.511310,0.333512,0.422411
VGG-M,0.518894,0.300758,0.409826
VGG-S,0.536779,0.333208,0.434993
VGG-16,0.450959,0.314083,0.382521
VGG-19,0.478200,0.325016,0.401608
DenseNet-121,0.405778,0.158166,0.281972
DenseNet-161,0.397985,0.163973,0.280979
DenseNet-169,0.382805,0.160076,0.271440
DenseNet-201,0.405007,0.150551,0.277779
ResNet-50-v2,0.178743,0.207774,0.193258
ResNet-101-v2,0.147586,0.179747,0.163666
ResNet-152-v2,0.137651,0.147623,0.142637
ResNet-18,0.435668,0.320689,0.378178
ResNet-34,0.407993,0.334009,0.371001
Inception-v1,0.262681,0.252174,0.257427
Inception-v2,0.242820,0.237688,0.240254
Inception-v3,0.046759,0.242198,0.144478
Inception-v4,0.038772,0.166677,0.102725
Inception-ResNet-v2,0.189355,0.239256,0.214306
SqueezeNet-1.0,0.467914,0.202617,0.335266
SqueezeNet-1.1,0.380651,0.223464,0.302057
NASNet-Mobile,0.201929,0.225032,0.213480
NASNet-Large,0.072498,0.255713,0.164105
PNASNet-Large,0.179754,0.238912,0.209333
CORnet-Z,0.295804,0.233016,0.264410
CORnet-R,0.458471,0.387347,0.422909
CORnet-S,0.446811,0.306205,0.376508
MobileNet-v2-1.4-224,0.201571,0.205446,0.203508
"""

KINDS = ("decoding", "encoding", "average")


def published_bhscores() -> pd.DataFrame:
    """The published BH scores of the 29 networks (columns network, bh_decoding, bh_encoding, bh_average)."""
    return pd.read_csv(io.StringIO(PUBLISHED_NONAKA2021))


def compute_bhscores(
    decoding_tree: dict | None,
    encoding_tree: dict | None,
    settings: dict,
    dnns=None,
    n_layers: int = 5,
    n_repeat: int = 100,
    seed=0,
    pval: float = 0.05,
    n_samples: int = RECIPE_N_TEST,
    significance: str = "reference",
) -> pd.DataFrame:
    """BH scores of every network in the trees: columns network, bh_decoding, bh_encoding, bh_average.

    Either tree may be None (its column is then NaN). ``n_samples`` = 50 test images of the
    ImageNetTest set behind the published accuracies.
    """
    names = list(dnns) if dnns is not None else [
        n for n in settings["dnns"] if (decoding_tree or {}).get(n) is not None or (encoding_tree or {}).get(n) is not None
    ]
    rows = []
    for name in names:
        dec = enc = np.nan
        if decoding_tree is not None and name in decoding_tree:
            accs = bhfiles.decoding_arrays(decoding_tree, settings, name)
            n_lay = min(n_layers, len(accs))
            dec = float(np.nanmean(bh_score_layer_select(
                accs, n_layers=n_lay, n_repeat=n_repeat, seed=seed, pval=pval, n_samples=n_samples,
                significance=significance)))
        if encoding_tree is not None and name in encoding_tree:
            accs = bhfiles.encoding_arrays(encoding_tree, settings, name)
            enc = bh_score_encoding(accs, pval=pval, n_samples=n_samples, n_voxels=None,
                                    significance=significance).score
        avg = bh_score_average(dec, enc) if np.isfinite(dec) and np.isfinite(enc) else np.nan
        rows.append({"network": name, "bh_decoding": dec, "bh_encoding": enc, "bh_average": avg})
    return pd.DataFrame(rows, columns=["network", "bh_decoding", "bh_encoding", "bh_average"])


def bh_scores_with_uncertainty(
    decoding_tree: dict | None,
    encoding_tree: dict | None,
    settings: dict,
    dnns=None,
    n_layers: int = 5,
    n_repeat: int = 100,
    seed=0,
    n_boot: int = 1000,
    n_perm: int = 1000,
    pval: float = 0.05,
    n_samples: int = RECIPE_N_TEST,
    level: float = 0.95,
) -> pd.DataFrame:
    """BH scores in the long results format (``dnn, kind, score, ci_low, ci_high, p_perm``).

    Published accuracies come without per-image predictions, so the interval is the bootstrap
    over units (:func:`~brainlike.scores.bootstrap_bh_score`); the p-value is the permutation
    null with layer labels shuffled. The averaged score's interval and null combine the two
    (mean of the decoding and encoding replicates).
    """
    names = list(dnns) if dnns is not None else [
        n for n in settings["dnns"] if (decoding_tree or {}).get(n) is not None or (encoding_tree or {}).get(n) is not None
    ]
    rows = []
    for name in names:
        found = {}
        if decoding_tree is not None and name in decoding_tree:
            accs = bhfiles.decoding_arrays(decoding_tree, settings, name)
            sel = {"n_layers": min(n_layers, len(accs)), "n_repeat": n_repeat, "seed": seed}
            b = bootstrap_bh_score(accs, n_boot=n_boot, seed=seed, layer_select=sel, pval=pval, n_samples=n_samples,
                                   level=level)
            p = permutation_bh_score(accs, n_perm=n_perm, seed=seed, layer_select=sel, pval=pval, n_samples=n_samples)
            found["decoding"] = (b, p)
        if encoding_tree is not None and name in encoding_tree:
            accs = bhfiles.encoding_arrays(encoding_tree, settings, name)
            b = bootstrap_bh_score(accs, n_boot=n_boot, seed=seed, pval=pval, n_samples=n_samples, level=level)
            p = permutation_bh_score(accs, n_perm=n_perm, seed=seed, pval=pval, n_samples=n_samples)
            found["encoding"] = (b, p)
        for kind, (b, p) in found.items():
            rows.append({"dnn": name, "kind": kind, "score": b.score, "ci_low": b.ci_low, "ci_high": b.ci_high,
                         "p_perm": p.p_value})
        if len(found) == 2:
            (bd, pd_), (be, pe) = found["decoding"], found["encoding"]
            score = bh_score_average(bd.score, be.score)
            lo, hi = bootstrap_ci((bd.samples + be.samples) / 2, level, "percentile")
            rows.append({"dnn": name, "kind": "average", "score": score, "ci_low": lo, "ci_high": hi,
                         "p_perm": permutation_pvalue((pd_.null + pe.null) / 2, score)})
    return pd.DataFrame(rows, columns=["dnn", "kind", "score", "ci_low", "ci_high", "p_perm"])


def write_results(out_dir, decoding_tree, encoding_tree, settings: dict, scores: pd.DataFrame,
                  csv_row_limit: int = 2_000_000, extra: dict | None = None) -> Path:
    """Write the published accuracies and the scores as a results folder for ``brainlike report``.

    ``<out>/results/{decoding,encoding}_accuracy.parquet`` (plus CSV copies up to
    ``csv_row_limit`` rows), ``bh_scores.csv`` and ``provenance.json``. Returns the folder.
    """
    import json

    res = Path(out_dir) / "results"
    for kind, tree in (("decoding", decoding_tree), ("encoding", encoding_tree)):
        if tree is None:
            continue
        table = bhfiles.tree_to_table(tree, settings, kind)
        atomic_write(res / f"{kind}_accuracy.parquet", lambda p, t=table: t.to_parquet(p, index=False))
        if len(table) <= csv_row_limit:
            atomic_write(res / f"{kind}_accuracy.csv", lambda p, t=table: t.to_csv(p, index=False))
    atomic_write(res / "bh_scores.csv", lambda p: scores.to_csv(p, index=False))
    prov = {"source": "Nonaka et al. (2021) published accuracies (figshare 12401168)", "n_test_images": 50,
            "subjects": settings["subjects"], "rois": settings["rois"],
            "dnns": {n: settings["dnns"][n] for n in scores["dnn"].unique() if n in settings["dnns"]},
            "versions": {"brainlike": __import__("brainlike").__version__}, **(extra or {})}
    atomic_write(res / "provenance.json", lambda p: Path(p).write_text(json.dumps(prov, indent=1)))
    return res


def compare_with_published(scores: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scores beside the published ones, with differences (ours - published)."""
    pub = published_bhscores() if published is None else published
    out = scores.merge(pub, on="network", how="left", suffixes=("", "_published"))
    for k in KINDS:
        out[f"diff_{k}"] = out[f"bh_{k}"] - out[f"bh_{k}_published"]
    cols = ["network"]
    for k in KINDS:
        cols += [f"bh_{k}", f"bh_{k}_published", f"diff_{k}"]
    return out[cols]


def _default_settings() -> Path:
    """settings.json through the dataset registry (mirror, data home or a checksummed download)."""
    from brainlike.datasets import fetch
    from brainlike.datasets._fetch import DataNotAvailableError

    try:
        return fetch("bhscore_settings", progress=False)["bhscore/settings.json"]
    except DataNotAvailableError as err:
        raise DataNotAvailableError(f"BHscore settings.json is not available ({err}); pass --settings FILE") from err


def reproduce_nonaka2021(
    accuracy_root=None,
    settings=None,
    dnns=None,
    n_repeat: int = 100,
    seed=0,
    download_dir=None,
    kinds=("decoding", "encoding"),
    results_dir=None,
    n_boot: int = 1000,
    n_perm: int = 1000,
) -> pd.DataFrame:
    """Compute the published BH scores from the published accuracies and compare.

    Parameters
    ----------
    accuracy_root : folder or None
        Holds the unzipped ``decoding_accuracy/`` and ``encoding_accuracy/`` archives (or is
        a tree root itself, when only one kind is asked). None fetches both archives through the
        dataset registry (``bhscore_accuracy``: offline mirror, data home, or a checksummed
        download) and unpacks them into ``download_dir`` (default: the data home); fails clearly
        offline.
    settings : path, dict or None
        BHscore ``settings.json``; None fetches it through the registry (``bhscore_settings``).
    dnns : names to restrict to (default all of the settings).
    results_dir : folder or None
        Also write the accuracies and the scores with bootstrap CIs (units) and permutation
        p-values as a results folder, for ``brainlike report``.
    """
    if settings is None:
        settings = _default_settings()
    if not isinstance(settings, dict):
        settings = bhfiles.read_settings(settings)
    trees = {}
    for kind in kinds:
        if kind not in ("decoding", "encoding"):
            raise ValueError(f"kinds must be among ['decoding', 'encoding']; got {kind!r}")
        if accuracy_root is None:
            root = bhfiles.download_accuracy(kind, download_dir)
        else:
            root = Path(accuracy_root)
            if not root.is_dir():
                raise FileNotFoundError(f"accuracy root not found: {root}")
        trees[kind] = bhfiles.read_accuracy_tree(root, settings, dnns=dnns, kind=kind)
    scores = compute_bhscores(trees.get("decoding"), trees.get("encoding"), settings, dnns=dnns,
                              n_repeat=n_repeat, seed=seed)
    if results_dir is not None:
        long = bh_scores_with_uncertainty(trees.get("decoding"), trees.get("encoding"), settings, dnns=dnns,
                                          n_repeat=n_repeat, seed=seed, n_boot=n_boot, n_perm=n_perm)
        write_results(results_dir, trees.get("decoding"), trees.get("encoding"), settings, long,
                      extra={"seed": seed, "n_repeat": n_repeat, "n_boot": n_boot, "n_perm": n_perm})
    return compare_with_published(scores)


def format_comparison(table: pd.DataFrame) -> str:
    """Plain-text table: ours / published / difference for each kind, plus summary lines."""

    def f(x, signed=False):
        if not np.isfinite(x):
            return f"{'nan':>8}"
        return f"{x:+8.4f}" if signed else f"{x:8.4f}"

    head = f"{'network':<22}" + "".join(f"  {k + ': ours   paper    diff':>28}" for k in KINDS)
    lines = [head, "-" * len(head)]
    for _, r in table.iterrows():
        cells = "".join(
            f"  {f(r[f'bh_{k}'])} {f(r[f'bh_{k}_published'])} {f(r[f'diff_{k}'], True)}" for k in KINDS
        )
        lines.append(f"{r['network']:<22}{cells}")
    lines.append("-" * len(head))
    for k in KINDS:
        d = table[f"diff_{k}"].to_numpy(dtype=float)
        d = d[np.isfinite(d)]
        if d.size:
            lines.append(f"{k}: max |ours - published| = {np.abs(d).max():.4f} over {d.size} networks")
    ok = table[["bh_average", "bh_average_published"]].dropna()
    if len(ok) >= 3:
        from scipy.stats import spearmanr

        rho = spearmanr(ok.iloc[:, 0], ok.iloc[:, 1])[0]
        lines.append(f"rank agreement of averaged scores with the paper (Spearman): {rho:.3f}")
    return "\n".join(lines)
