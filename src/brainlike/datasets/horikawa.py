"""Horikawa et al. data: raw BIDS runs (OpenNeuro) and the DNN feature decodability files.

BIDS: runs ``sub-XX_ses-*_task-*_run-*_bold.nii.gz`` with ``*_events.tsv`` (onset, duration,
trial_no, event_type, stim_id, response_time); ROI masks ``sub-XX_mask_{LH,RH}_{ROI}.nii.gz``
anywhere under the root (LH and RH merged per ROI). Each stimulus event (event_type 1) becomes
one sample: the mean of the volumes acquired in [onset + delay, onset + duration + delay), after
per-run linear detrending and z-scoring of each voxel. The runs must be preprocessed (motion
corrected, in the masks' space); this loader does the per-trial extraction only.

Decodability (figshare, ``bdds.DecodedDNN`` layout, loose or inside the per-layer zips)::

    accuracy/<net>/<layer>/accuracy-<net>-<layer>-<subject>.mat   ('accuracy', one value per unit)
    rank/<net>/<layer>/rank-<net>-<layer>-<subject>.mat           ('rank')
    decoded/<net>/<layer>/<subject>/decoded-<net>-<layer>-<subject>-<image>.mat   ('feat')
    true/<net>/<layer>/true-<net>-<layer>-<image>.mat             ('feat')

with subjects S1..S5 and ``Averaged``.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from ._braindata import BrainData
from .bdata import float_label_to_id

__all__ = ["load_horikawa_bids", "load_decodability", "read_decoded_features", "HORIKAWA_ROIS"]

HORIKAWA_ROIS = ("V1", "V2", "V3", "hV4", "LOC", "FFA", "PPA", "HVC", "LVC", "VC")
_MASK = re.compile(r"(sub-[^_]+)_mask_(LH|RH)_([A-Za-z0-9]+)\.nii(\.gz)?$")


def _split_from_session(ses: str) -> str:
    s = ses.lower()
    if "training" in s:
        return "train"
    if "test" in s:
        return "test"
    if "imagery" in s:
        return "imagery"
    return s


def load_horikawa_bids(
    root,
    subject: str = "sub-01",
    roi=None,
    *,
    bold_glob: str | None = None,
    delay_s: float = 3.0,
    detrend: bool = True,
    zscore: bool = True,
    stimulus_event_type: int = 1,
    nan: str = "warn",
    dtype=np.float32,
) -> BrainData:
    """Per-trial samples of ``subject`` from preprocessed BIDS runs; ROIs from the LH/RH masks."""
    import nibabel as nib
    import pandas as pd
    from scipy.signal import detrend as sp_detrend

    root = Path(root)
    masks: dict[str, np.ndarray] = {}
    mask_shape = None
    mask_files = sorted(root.rglob(f"{subject}_mask_*.nii*"))
    for mf in mask_files:
        m = _MASK.search(mf.name)
        if not m:
            continue
        vol = np.asarray(nib.load(mf).dataobj) > 0
        if mask_shape is None:
            mask_shape = vol.shape
        elif vol.shape != mask_shape:
            raise ValueError(f"mask {mf.name} has shape {vol.shape}, other masks have {mask_shape}")
        name = m.group(3)
        masks[name] = masks.get(name, np.zeros(vol.shape, dtype=bool)) | vol
    if not masks:
        raise ValueError(f"no ROI masks {subject}_mask_{{LH,RH}}_<ROI>.nii.gz found under {root}")
    if roi is not None:
        want = [roi] if isinstance(roi, str) else list(roi)
        for nm in want:
            if nm not in masks:
                raise ValueError(f"roi must be among {sorted(masks)}; got {nm!r}")
        union = np.logical_or.reduce([masks[nm] for nm in want])
    else:
        union = np.logical_or.reduce(list(masks.values()))
    coords = np.argwhere(union)
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    rel = coords - lo
    runs = sorted(root.rglob(bold_glob or f"{subject}_*_bold.nii*"))
    if not runs:
        raise ValueError(f"no runs {bold_glob or subject + '_*_bold.nii.gz'} found under {root}")
    samples, ids, splits, run_ids, onsets = [], [], [], [], []
    for r, bold in enumerate(runs):
        ev_path = Path(re.sub(r"_bold\.nii(\.gz)?$", "_events.tsv", str(bold)))
        if not ev_path.is_file():
            raise FileNotFoundError(f"events file {ev_path} for run {bold.name} not found")
        img = nib.load(bold)
        if img.ndim != 4 or tuple(img.shape[:3]) != mask_shape:
            raise ValueError(f"mask shape {mask_shape} does not match the functional data {bold.name}: {img.shape}")
        tr = float(img.header.get_zooms()[3])
        if not tr > 0:
            raise ValueError(f"{bold.name}: repetition time (4th zoom) must be > 0; got {tr}")
        box = np.asarray(img.dataobj[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2], :], dtype=np.float64)
        ts = box[rel[:, 0], rel[:, 1], rel[:, 2], :].T  # (n_volumes, n_voxels)
        if detrend:
            ts = sp_detrend(ts, axis=0, type="linear")
        if zscore:
            sd = ts.std(axis=0)
            ts = (ts - ts.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        ev = pd.read_csv(ev_path, sep="\t")
        for col in ("onset", "duration", "event_type", "stim_id"):
            if col not in ev.columns:
                raise ValueError(f"{ev_path.name} must have a {col!r} column; has {list(ev.columns)}")
        ses = next((p for p in bold.name.split("_") if p.startswith("ses-")), "ses-")
        t = np.arange(ts.shape[0]) * tr
        for _, row in ev[ev["event_type"] == stimulus_event_type].iterrows():
            start, stop = row["onset"] + delay_s, row["onset"] + row["duration"] + delay_s
            vols = (t >= start - 1e-6) & (t < stop - 1e-6)
            if not vols.any():
                raise ValueError(f"{bold.name}: event at onset {row['onset']} s has no volume in the run")
            samples.append(ts[vols].mean(axis=0))
            sid = row["stim_id"]
            if isinstance(sid, float):
                ids.append(float_label_to_id(sid) if sid % 1 else str(int(sid)))
            else:
                ids.append(str(sid))
            splits.append(_split_from_session(ses[4:]))
            run_ids.append(r)
            onsets.append(row["onset"])
    return BrainData(
        np.vstack(samples),
        np.array(ids),
        rois={nm: m[tuple(coords.T)] for nm, m in masks.items()},
        split=np.array(splits),
        subject=subject,
        provenance={"dataset": "horikawa_bids", "files": [str(b) for b in runs] + [str(m) for m in mask_files],
                    "options": {"delay_s": delay_s, "detrend": detrend, "zscore": zscore}},
        nan=nan,
        dtype=dtype,
        voxel_info={"ijk": coords.astype(np.int64)},
        sample_info={"run": np.array(run_ids), "onset": np.array(onsets, dtype=float)},
    )


# --- decodability files -------------------------------------------------------------------
def _read_mat(data: bytes | Path, keys=("accuracy", "rank", "feat")) -> np.ndarray:
    from scipy.io import loadmat

    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        m = loadmat(io.BytesIO(raw))
        for k in keys:
            if k in m:
                return np.asarray(m[k])
    except (NotImplementedError, ValueError):  # MATLAB v7.3 = HDF5
        import h5py

        with h5py.File(io.BytesIO(raw), "r") as f:
            for k in keys:
                if k in f:
                    return np.asarray(f[k][()]).T  # MATLAB order
    raise ValueError(f"no variable among {keys} in the .mat data")


def _members(sources) -> dict[str, object]:
    """Relative posix path (from the mode folder on) -> Path or (zip path, member)."""
    out: dict[str, object] = {}
    if isinstance(sources, (str, Path)):
        sources = [sources]
    for src in sources:
        src = Path(src)
        if src.is_dir():
            for p in src.rglob("*.mat"):
                rel = p.relative_to(src).as_posix()
                out[_from_mode(rel)] = p
        elif zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                for name in z.namelist():
                    if name.endswith(".mat"):
                        out[_from_mode(name)] = (src, name)
        else:
            raise ValueError(f"sources must be folders or zip files; got {src}")
    return out


def _from_mode(rel: str) -> str:
    parts = rel.split("/")
    for i, p in enumerate(parts):
        if p in ("accuracy", "rank", "decoded", "true"):
            return "/".join(parts[i:])
    return rel


def _read(member) -> np.ndarray:
    if isinstance(member, Path):
        return _read_mat(member)
    zpath, name = member
    with zipfile.ZipFile(zpath) as z:
        return _read_mat(z.read(name))


def load_decodability(sources, *, net=None, layers=None, modes=("accuracy", "rank"), subjects=None):
    """Per-unit accuracy / rank values as one tidy table.

    ``sources``: folder(s) and/or zip file(s) in the layout of the module docstring. Returns a
    pandas DataFrame with columns net, layer, subject, unit, and one column per mode.
    """
    import pandas as pd

    mem = _members(sources)
    rows = {}
    pat = re.compile(r"^(accuracy|rank)/([^/]+)/([^/]+)/(accuracy|rank)-(.+)\.mat$")
    for rel, m in sorted(mem.items()):
        hit = pat.match(rel)
        if not hit:
            continue
        mode, n, ly = hit.group(1), hit.group(2), hit.group(3)
        subj = hit.group(5).split("-")[-1]
        if mode not in modes or (net and n != net) or (layers and ly not in layers) or (subjects and subj not in subjects):
            continue
        vals = _read(m).ravel().astype(np.float64)
        rows.setdefault((n, ly, subj), {})[mode] = vals
    if not rows:
        raise ValueError(f"no {list(modes)} files for net={net!r} layers={layers!r} in {sources}")
    frames = []
    for (n, ly, subj), d in rows.items():
        sizes = {k: v.size for k, v in d.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"{n}/{ly}/{subj}: modes hold different numbers of units {sizes}")
        size = next(iter(sizes.values()))
        frame = {"net": n, "layer": ly, "subject": subj, "unit": np.arange(size)}
        for mode in modes:
            frame[mode] = d.get(mode, np.full(size, np.nan))
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def read_decoded_features(sources, net: str, layer: str, subject: str | None = None):
    """(image ids, (n_images, n_units) array): decoded features of ``subject``, or true features if None."""
    mem = _members(sources)
    if subject is None:
        pat = re.compile(rf"^true/{re.escape(net)}/{re.escape(layer)}/true-{re.escape(net)}-{re.escape(layer)}-(.+)\.mat$")
    else:
        pat = re.compile(
            rf"^decoded/{re.escape(net)}/{re.escape(layer)}/{re.escape(subject)}/"
            rf"decoded-{re.escape(net)}-{re.escape(layer)}-{re.escape(subject)}-(.+)\.mat$"
        )
    found = sorted((hit.group(1), m) for rel, m in mem.items() if (hit := pat.match(rel)))
    if not found:
        raise ValueError(f"no {'true' if subject is None else 'decoded'} features for {net}/{layer}/{subject}")
    ids = [i for i, _ in found]
    return ids, np.stack([_read(m).ravel() for _, m in found]).astype(np.float32)
