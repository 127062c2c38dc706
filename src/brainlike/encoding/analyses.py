"""The analyses of St-Yves et al. (2022) on fitted encoding models.

- ``transfer_matrix``: the trunk of the network trained on a source ROI, new readouts fitted on
  a target ROI; validation accuracy relative to the target's own network.
- ``tuning_analysis``: per voxel, how much each feature partition (trunk layer, or half of the
  network) contributes: accuracy keeping only that partition (inclusion) and without it (exclusion).
- ``synthetic_transfer``: the same transfer matrix on synthetic responses produced by a trained
  model, where the ground truth is known.
- ``comparison_table`` / ``plot_comparison``: accuracy per ROI for several models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.encoding.fwrf import FWRF, column_score
from brainlike.encoding.gnet import GNet, PrefilteredImages, _normalise_responses


# ---------------------------------------------------------------------------------------------
# transfer matrix
# ---------------------------------------------------------------------------------------------
@dataclass
class TransferResult:
    """``relative``: DataFrame (source ROI x target ROI) of transferred / own accuracy;
    ``accuracy``: {(source, target): {subject: per-voxel r}}; ``own``: {target: {subject: r}}."""

    relative: pd.DataFrame
    accuracy: dict = field(default_factory=dict)
    own: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)


def _roi_masks(model: GNet):
    return {g: net["voxels"] for g, net in model.groups_.items()}


def transfer_matrix(model: GNet, train_images, train_responses, val_images, val_responses, *,
                    train_index=None, val_index=None, keep_models: bool = False) -> TransferResult:
    """Experimental transfer matrix of a ROI-wise GNet (``mode="roi"``, fitted).

    For every (source, target) pair the source ROI's trunk is frozen and fresh readouts are
    trained for the target ROI's voxels on the training data; the entry is the mean validation
    accuracy (Pearson r over the target's voxels, all subjects) divided by that of the target's
    own network. The diagonal is 1 by construction.
    """
    if not isinstance(model, GNet) or not hasattr(model, "groups_"):
        raise ValueError("model must be a fitted GNet")
    if model.mode != "roi" or len(model.groups_) < 2:
        raise ValueError(f"model must be a GNet fitted with mode='roi' on at least 2 ROIs; got mode={model.mode!r} "
                         f"with groups {list(getattr(model, 'groups_', {}))}")
    pre_tr = model.prefilter_images(train_images)
    pre_val = model.prefilter_images(val_images)
    tr_resp, tr_idx = _normalise_responses(train_responses, train_index, len(pre_tr))
    va_resp, va_idx = _normalise_responses(val_responses, val_index, len(pre_val))
    masks = _roi_masks(model)
    rois = list(masks)
    own = {}
    for tgt in rois:
        own[tgt] = {}
        for s, vox in masks[tgt].items():
            pred = model.predict(PrefilteredImages(pre_val.maps[va_idx[s]]), subject=s)[:, vox]
            own[tgt][s] = column_score(va_resp[s][:, vox], pred, "pearson")
    acc, rel, models = {}, np.ones((len(rois), len(rois))), {}
    for i, src in enumerate(rois):
        for j, tgt in enumerate(rois):
            if src == tgt:
                acc[(src, tgt)] = own[tgt]
                continue
            student = copy.copy(model)
            student.checkpoint_dir = None
            student.groups_ = {}
            sub = {s: tr_resp[s][:, vox] for s, vox in masks[tgt].items()}
            student.fit_readouts(pre_tr, sub, image_index={s: tr_idx[s] for s in sub}, trunk_group=src, source=model)
            acc[(src, tgt)] = {
                s: column_score(va_resp[s][:, vox], student.predict(PrefilteredImages(pre_val.maps[va_idx[s]]), subject=s),
                                "pearson")
                for s, vox in masks[tgt].items()
            }
            if keep_models:
                models[(src, tgt)] = student
            num = np.nanmean(np.concatenate(list(acc[(src, tgt)].values())))
            den = np.nanmean(np.concatenate(list(own[tgt].values())))
            rel[i, j] = num / den if den != 0 else np.nan
    frame = pd.DataFrame(rel, index=pd.Index(rois, name="source"), columns=pd.Index(rois, name="target"))
    return TransferResult(frame, acc, own, models)


def synthetic_transfer(teacher: GNet, train_images, val_images, *, noise: float = 0.0, seed: int = 0,
                       student_params: Mapping | None = None, subjects=None) -> TransferResult:
    """Transfer matrix on synthetic data: responses are the ``teacher``'s predictions (plus Gaussian
    noise of ``noise`` x their standard deviation), a new ROI-wise GNet is trained on them, then
    ``transfer_matrix`` runs on its validation predictions. Returns the result (``models["student"]``)."""
    if teacher.mode != "roi":
        raise ValueError(f"teacher must be a GNet fitted with mode='roi'; got mode={teacher.mode!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0; got {noise}")
    subjects = list(teacher.subjects_) if subjects is None else list(subjects)
    pre_tr = teacher.prefilter_images(train_images)
    pre_val = teacher.prefilter_images(val_images)
    rng = np.random.default_rng(seed)

    def fake(pre):
        out = {}
        for s in subjects:
            p = teacher.predict(pre, subject=s).astype(np.float32)
            if noise > 0:
                p = p + noise * p.std(0, keepdims=True) * rng.standard_normal(p.shape).astype(np.float32)
            out[s] = p
        return out

    tr, va = fake(pre_tr), fake(pre_val)
    rois = {s: {g: np.isin(np.arange(teacher.n_voxels_[s]), net["voxels"].get(s, [])) for g, net in teacher.groups_.items()}
            for s in subjects}
    student = copy.copy(teacher)
    student.checkpoint_dir = None
    student.random_state = teacher.random_state + 1
    student.set_params(**(student_params or {}))
    student.fit(pre_tr, tr, rois=rois)
    result = transfer_matrix(student, pre_tr, tr, pre_val, va)
    result.models["student"] = student
    return result


# ---------------------------------------------------------------------------------------------
# tuning analysis
# ---------------------------------------------------------------------------------------------
@dataclass
class TuningResult:
    """Per-partition, per-voxel contributions: ``inclusion``/``exclusion`` are arrays
    (n_partitions, n_voxels) in percent of the full model's explained variance (r²)."""

    partitions: list
    total_r: np.ndarray
    inclusion_r: np.ndarray
    exclusion_r: np.ndarray
    inclusion: np.ndarray
    exclusion: np.ndarray
    preferred: np.ndarray
    spread: np.ndarray

    def table(self) -> pd.DataFrame:
        """One row per voxel and partition (tidy)."""
        rows = []
        for p, name in enumerate(self.partitions):
            rows.append(pd.DataFrame({"voxel": np.arange(self.total_r.size), "partition": name, "total_r": self.total_r,
                                      "inclusion_r": self.inclusion_r[p], "exclusion_r": self.exclusion_r[p],
                                      "inclusion_pct": self.inclusion[p], "exclusion_pct": self.exclusion[p]}))
        return pd.concat(rows, ignore_index=True)


def tuning_analysis(predict: Callable, Y, partitions: Mapping[str, np.ndarray], n_features: int) -> TuningResult:
    """Contribution of each feature partition to each voxel's prediction.

    predict(feature_mask) -> (n_samples, n_voxels): predictions with the readout weights outside
    ``feature_mask`` set to zero (None = the full model). For each partition: inclusion r (only
    its weights) and exclusion r (all weights but its own); contributions in percent of the full
    model's r²: inclusion 100 r_in² / r², exclusion 100 (r² - r_ex²) / r². ``preferred`` is the
    partition with the largest exclusion contribution; ``spread`` the fraction of partitions whose
    min-max normalised exclusion contribution reaches half of the best (1/P = one partition).
    """
    Y = np.asarray(Y, dtype=np.float64)
    if not partitions:
        raise ValueError("partitions must name at least one feature partition")
    names = list(partitions)
    masks = []
    for name in names:
        m = np.zeros(n_features, bool)
        idx = np.asarray(partitions[name])
        if idx.dtype == bool:
            if idx.shape != (n_features,):
                raise ValueError(f"partitions[{name!r}] must be a boolean mask of shape ({n_features},); got {idx.shape}")
            m = idx
        else:
            if idx.size and (idx.min() < 0 or idx.max() >= n_features):
                raise ValueError(f"partitions[{name!r}] indexes features outside [0, {n_features})")
            m[idx] = True
        masks.append(m)
    total = column_score(Y, predict(None), "pearson")
    inc = np.stack([column_score(Y, predict(m), "pearson") for m in masks])
    exc = np.stack([column_score(Y, predict(~m), "pearson") for m in masks])
    tot2 = total**2
    with np.errstate(divide="ignore", invalid="ignore"):
        inclusion = 100.0 * np.nan_to_num(inc) ** 2 / tot2
        excl_var = tot2 - np.nan_to_num(exc) ** 2
        exclusion = 100.0 * excl_var / tot2
        lo, hi = excl_var.min(0), excl_var.max(0)
        norm = (excl_var - lo) / (hi - lo)
    preferred = np.argmax(excl_var, axis=0)
    spread = np.nanmean(np.nan_to_num(norm, nan=1.0) >= 0.5, axis=0)
    return TuningResult(names, total, inc, exc, inclusion, exclusion, preferred, spread)


def layer_partitions(model, names=None) -> dict:
    """Layer-wise partitions of the readout features: trunk layers (GNet) or network layers (FWRF).

    ``names``: the network's layer names, one per feature map given to the FWRF (e.g. conv1..conv5);
    without them FWRF partitions are called layer1, layer2, ...
    """
    if isinstance(model, GNet):
        return model.feature_groups()
    if isinstance(model, FWRF):
        slices = model.feature_slices()
        if names is not None and len(names) != len(slices):
            raise ValueError(f"names must give one name per feature map ({len(slices)}); got {list(names)}")
        names = [f"layer{i + 1}" for i in range(len(slices))] if names is None else list(names)
        return {n: np.arange(s.start, s.stop) for n, s in zip(names, slices)}
    raise ValueError(f"model must be a fitted GNet or FWRF; got {type(model).__name__}")


def bipartite_partitions(model, names=None) -> dict:
    """Two halves of the network: early layers vs late layers (GNet: the two resolution groups)."""
    layers = list(layer_partitions(model, names).values())
    half = (len(layers) + 1) // 2
    if len(layers) < 2:
        raise ValueError("the bipartite analysis needs a model with at least 2 layers")
    return {"early": np.concatenate(layers[:half]), "late": np.concatenate(layers[half:])}


def n_readout_features(model) -> int:
    if isinstance(model, GNet):
        return 6 * model.width
    return model.n_features_in_


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------
def comparison_table(accuracies: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """{model: {roi: per-voxel accuracy}} -> one row per (model, roi): n_voxels, mean, median, q25, q75."""
    rows = []
    for model, per_roi in accuracies.items():
        for roi, acc in per_roi.items():
            a = np.asarray(acc, dtype=np.float64).ravel()
            a = a[np.isfinite(a)]
            rows.append({"model": model, "roi": roi, "n_voxels": a.size,
                         "mean_r": a.mean() if a.size else np.nan, "median_r": np.median(a) if a.size else np.nan,
                         "q25_r": np.quantile(a, 0.25) if a.size else np.nan,
                         "q75_r": np.quantile(a, 0.75) if a.size else np.nan})
    if not rows:
        raise ValueError("accuracies is empty: expected {model: {roi: per-voxel accuracy}}")
    return pd.DataFrame(rows)


def plot_comparison(accuracies: Mapping[str, Mapping[str, np.ndarray]], path, *, reference: str | None = None,
                    title: str = "Validation accuracy per ROI") -> Path:
    """Bars (median, interquartile range) per ROI and model, and per-voxel scatter of each model
    against ``reference`` (default: the first model). Written atomically to ``path`` (PNG)."""
    from brainlike._plotting import save_png, subplots

    table = comparison_table(accuracies)
    models = list(accuracies)
    rois = list(dict.fromkeys(table["roi"]))
    reference = models[0] if reference is None else reference
    others = [m for m in models if m != reference]
    fig, axes = subplots(1, 1 + len(others), figsize=(4.5 * (1 + len(others)), 4), squeeze=False)
    ax = axes[0, 0]
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        sub = table[table.model == m].set_index("roi").reindex(rois)
        x = np.arange(len(rois)) + (k - (len(models) - 1) / 2) * width
        med = sub.median_r.to_numpy(float)
        err = np.vstack([med - sub.q25_r.to_numpy(float), sub.q75_r.to_numpy(float) - med])
        ax.bar(x, med, width, label=m)
        for xi, mi, lo, hi in zip(x, med, err[0], err[1]):  # one error bar at a time (matplotlib warns on arrays)
            ax.plot([xi, xi], [mi - lo, mi + hi], color="k", lw=1)
    ax.set_xticks(np.arange(len(rois)), rois)
    ax.set_ylabel("median r (IQR)")
    ax.set_title(title, fontsize=10)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, loc="lower center", framealpha=0.9)
    for k, m in enumerate(others):
        ax = axes[0, k + 1]
        for roi in rois:
            a = np.asarray(accuracies[reference].get(roi, []), float).ravel()
            b = np.asarray(accuracies[m].get(roi, []), float).ravel()
            if a.size and a.size == b.size:
                ax.scatter(a, b, s=10, alpha=0.6, label=roi)
        lim = [min(-0.1, ax.get_xlim()[0]), max(1.0, ax.get_xlim()[1])]
        ax.plot(lim, lim, "k--", lw=0.7)
        ax.set_xlabel(f"{reference} r")
        ax.set_ylabel(f"{m} r")
        ax.set_title(f"{m}\nvs {reference} (per voxel)", fontsize=9)
        ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    return save_png(fig, path)


def plot_transfer_matrix(result: TransferResult, path, title: str = "Transfer matrix (accuracy relative to own model)") -> Path:
    """Heat map of ``result.relative`` (rows: source trunk, columns: target ROI)."""
    from brainlike._plotting import save_png, subplots

    m = result.relative
    fig, ax = subplots(figsize=(1.2 * len(m.columns) + 2.5, 1.1 * len(m.index) + 1.8))
    im = ax.imshow(m.values, cmap="viridis", vmin=min(0.0, np.nanmin(m.values)), vmax=max(1.0, np.nanmax(m.values)))
    ax.set_xticks(range(len(m.columns)), m.columns)
    ax.set_yticks(range(len(m.index)), m.index)
    ax.set_xlabel("target ROI (readouts refit)")
    ax.set_ylabel("source ROI (trunk)")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m.values[i, j]:.2f}", ha="center", va="center", color="w", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)


def compare_encoding_models(train_images, train_responses, val_images, val_responses, *, rois, fwrf: FWRF,
                            make_gnet: Callable, train_index=None, val_index=None, out_dir=None,
                            names=("fwRF", "GNet8j", "GNet8r")):
    """Validation accuracy per ROI of an fwRF, a joint GNet (GNet8j) and ROI-wise GNets (GNet8r).

    fwrf : an unfitted ``FWRF`` with an ``extractor`` (images -> feature maps), fitted per subject.
    make_gnet(mode) : returns an unfitted ``GNet`` for ``mode`` "joint" or "roi".
    rois : {subject: {roi: boolean mask (n_voxels,)}}.
    Returns ``(table, accuracies)``: ``comparison_table`` and {model: {roi: per-voxel r (all subjects)}};
    with ``out_dir`` also comparison.csv and comparison.png.
    """
    from sklearn.base import clone

    if fwrf.extractor is None:
        raise ValueError("fwrf must have an extractor (images -> list of feature maps) to be compared on images")
    g8j, g8r = make_gnet("joint"), make_gnet("roi")
    pre_tr, pre_val = g8j.prefilter_images(train_images), g8j.prefilter_images(val_images)
    tr_resp, tr_idx = _normalise_responses(train_responses, train_index, len(pre_tr))
    va_resp, va_idx = _normalise_responses(val_responses, val_index, len(pre_val))
    raw_tr = train_images.array() if hasattr(train_images, "ids") else train_images
    raw_val = val_images.array() if hasattr(val_images, "ids") else val_images
    g8j.fit(pre_tr, tr_resp, image_index=tr_idx)
    g8r.fit(pre_tr, tr_resp, image_index=tr_idx, rois=rois)
    acc = {n: {} for n in names}
    for s in tr_resp:
        f = clone(fwrf).fit(raw_tr[tr_idx[s]], tr_resp[s])
        preds = {names[0]: f.predict(raw_val[va_idx[s]]),
                 names[1]: g8j.predict(PrefilteredImages(pre_val.maps[va_idx[s]]), subject=s),
                 names[2]: g8r.predict(PrefilteredImages(pre_val.maps[va_idx[s]]), subject=s)}
        for roi, mask in rois[s].items():
            mask = np.asarray(mask, bool)
            for n in names:
                r = column_score(va_resp[s][:, mask], preds[n][:, mask], "pearson")
                acc[n][roi] = np.concatenate([acc[n].get(roi, np.zeros(0)), r])
    table = comparison_table(acc)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "comparison.csv", index=False)
        plot_comparison(acc, out / "comparison.png", reference=names[0])
    return table, acc
