"""Generic Object Decoding fMRI as published on OpenNeuro (ds001246, Horikawa & Kamitani 2017).

The layout read here (names from the OpenNeuro snapshot 1.2.1 file paths, e.g.
``derivatives:preproc-spm:output:sub-01:ses-perceptionTraining01:func:sub-01_ses-perceptionTraining01_task-perception_run-01_bold_preproc.nii.gz``,
and ``sourcedata:sub-01:anat:sub-01_mask_RH_HVC.nii.gz`` of the sister dataset ds001506)::

    <root>/sub-01/ses-perceptionTraining01/func/sub-01_ses-perceptionTraining01_task-perception_run-01_bold.nii.gz
    <root>/sub-01/ses-perceptionTraining01/func/sub-01_ses-perceptionTraining01_task-perception_run-01_events.tsv
    <root>/derivatives/preproc-spm/output/sub-01/ses-perceptionTraining01/func/
        sub-01_ses-perceptionTraining01_task-perception_run-01_bold_preproc.nii.gz
    <root>/sourcedata/sub-01/anat/sub-01_mask_{LH,RH}_{V1,V2,V3,hV4,LOC,FFA,PPA,HVC}.nii.gz

The preprocessed runs (SPM: motion corrected, co-registered to the masks' space) are used by
default and named in the log; the raw runs only with ``runs="raw"``. Each stimulus event of
``events.tsv`` (``event_type`` 1; without that column, each block naming a stimulus in
``stimulus_name``/``stimulus_id``/``stim_id``, one-back repetitions left out) becomes one sample: the mean of the volumes acquired in
[onset + delay, onset + duration + delay), after per-run linear detrending and z-scoring of each
voxel (Horikawa & Kamitani 2017, Methods). LH and RH masks are merged per ROI; dorsal/ventral
halves (``V1d``/``V1v``...) are merged into ``V1``...; and the paper's ROIs are derived:
LVC = V1 + V2 + V3, HVC = the ``HVC`` mask (else LOC + FFA + PPA), VC = LVC + hV4 + HVC (+ LOC,
FFA, PPA).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from pathlib import Path

import numpy as np

from brainlike._zscore import train_stats

from ._braindata import BrainData
from .bdata import float_label_to_id

__all__ = ["load_horikawa_bids", "horikawa_bids_meta", "find_runs", "derive_rois", "HORIKAWA_ROIS", "PREPROC_DIR"]

log = logging.getLogger("brainlike")

HORIKAWA_ROIS = ("V1", "V2", "V3", "hV4", "LOC", "FFA", "PPA", "HVC", "LVC", "VC")
PREPROC_DIR = "derivatives/preproc-spm/output"  # OpenNeuro ds001246 snapshot 1.2.1
_MASK = re.compile(r"^(sub-[^_]+)_mask_(LH|RH)_([A-Za-z0-9]+)\.nii(\.gz)?$")
_RAW = re.compile(r"^(sub-[^_]+_.*)_bold\.nii(\.gz)?$")
_PREPROC = re.compile(r"^(sub-[^_]+_.*)_bold_preproc\.nii(\.gz)?$")
_EVENTS = re.compile(r"^(sub-[^_]+_.*)_events\.tsv$")
_KINDS = "*_bold.nii.gz (raw run), *_bold_preproc.nii.gz (preprocessed run), *_events.tsv, *.json (sidecar)"


def _split_from_session(ses: str) -> str:
    s = ses.lower()
    if "training" in s:
        return "train"
    if "test" in s and "imagery" not in s:
        return "test"
    if "imagery" in s:
        return "imagery"
    return s


def _classify(path: Path) -> tuple[str, str] | None:
    """(kind, run stem) of a file in a func folder; None for sidecars; ValueError if unknown."""
    name = path.name
    if name.startswith(".") or name.endswith(".json"):
        return None
    for kind, pat in (("preprocessed", _PREPROC), ("raw", _RAW), ("events", _EVENTS)):
        m = pat.match(name)
        if m:
            return kind, m.group(1)
    raise ValueError(f"cannot classify {path}: a file in a func folder must be one of {_KINDS} "
                     f"(ignore=[{name!r}] leaves such files out)")


def find_runs(root, subject: str = "sub-01", *, runs: str = "preprocessed", bold_glob: str | None = None,
              sessions: str = "ses-*", ignore=()) -> list[tuple[Path, Path]]:
    """(run NIfTI, its events.tsv) of ``subject``, in session/run order.

    ``runs="preprocessed"`` (default): ``<root>/derivatives/preproc-spm/output/<subject>/ses-*/func/
    *_bold_preproc.nii.gz``, each with the raw run's ``events.tsv`` (same name up to ``_bold``;
    ``<root>/<subject>/ses-*/func/``, or beside the derivative). ``runs="raw"``: the raw
    ``*_bold.nii.gz`` (not motion corrected: only when asked for). ``bold_glob`` narrows the runs
    by file name (fnmatch); every file it matches must be a run of the chosen kind. Every file
    in the func folders is classified; one that is none of the known kinds is an error naming it,
    unless its name matches a pattern of ``ignore`` (fnmatch; each file left out is logged).
    """
    root = Path(root)
    if runs not in ("preprocessed", "raw"):
        raise ValueError(f"runs must be 'preprocessed' or 'raw'; got {runs!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"root must be a folder (OpenNeuro ds001246 layout); got {root}")
    raw_dirs = sorted((root / subject).glob(f"{sessions}/func"))
    pre_dirs = sorted((root / PREPROC_DIR / subject).glob(f"{sessions}/func"))
    files: dict[str, dict[str, Path]] = {"raw": {}, "preprocessed": {}, "events": {}}
    events_beside: dict[str, Path] = {}
    for folder in raw_dirs + pre_dirs:
        for p in sorted(folder.iterdir()):
            if p.is_dir():
                continue
            if any(fnmatch.fnmatch(p.name, pat) for pat in ([ignore] if isinstance(ignore, str) else ignore)):
                log.info("%s left out (ignore=%r)", p, ignore)
                continue
            c = _classify(p)
            if c is None:
                continue
            kind, stem = c
            if kind == "events" and folder in pre_dirs:
                events_beside[stem] = p
            else:
                files[kind][stem] = p
    chosen = files[runs]
    if bold_glob is not None:
        hits = [p for folder in raw_dirs + pre_dirs for p in sorted(folder.iterdir())
                if fnmatch.fnmatch(p.name, bold_glob)]
        wrong = [p for p in hits if p not in chosen.values()]
        if wrong:
            expected = "*_bold_preproc.nii.gz" if runs == "preprocessed" else "*_bold.nii.gz"
            hint = "; pass runs='raw' for raw runs" if runs == "preprocessed" else ""
            raise ValueError(f"bold_glob={bold_glob!r} matches {wrong[0]}, which is not a {runs} run "
                             f"(expected {expected}{hint})")
        chosen = {s: p for s, p in chosen.items() if p in hits}
    if not chosen:
        where = (root / PREPROC_DIR / subject / f"{sessions}/func/*_bold_preproc.nii.gz" if runs == "preprocessed"
                 else root / subject / f"{sessions}/func/*_bold.nii.gz")
        extra = ""
        if runs == "preprocessed" and files["raw"]:
            extra = (f"; {len(files['raw'])} raw run(s) exist under {root / subject}: pass runs='raw' to use them "
                     "(not motion corrected)")
        raise FileNotFoundError(f"no {runs} runs {where}{' matching ' + repr(bold_glob) if bold_glob else ''}{extra}")
    out = []
    for stem in sorted(chosen):
        ev = files["events"].get(stem) or events_beside.get(stem)
        if ev is None:
            raise FileNotFoundError(f"events file {stem}_events.tsv for run {chosen[stem]} not found "
                                    f"(looked in {root / subject}/ses-*/func and beside the run)")
        out.append((chosen[stem], ev))
    return out


def _read_masks(root: Path, subject: str) -> tuple[dict[str, np.ndarray], list[Path]]:
    import nibabel as nib

    anat = root / "sourcedata" / subject / "anat"
    found = sorted(anat.glob(f"{subject}_mask_*.nii*")) if anat.is_dir() else []
    if not found:
        found = sorted(p for p in root.rglob(f"{subject}_mask_*.nii*") if "derivatives" not in p.parts)
        if found:
            log.info("ROI masks of %s read from %s (not at sourcedata/%s/anat/)", subject, found[0].parent, subject)
    if not found:
        raise FileNotFoundError(f"no ROI masks {anat}/{subject}_mask_{{LH,RH}}_<ROI>.nii.gz")
    masks: dict[str, np.ndarray] = {}
    shape = None
    for mf in found:
        m = _MASK.match(mf.name)
        if not m:
            raise ValueError(f"cannot classify mask file {mf}: expected {subject}_mask_{{LH,RH}}_<ROI>.nii.gz")
        vol = np.asarray(nib.load(mf).dataobj) > 0
        if shape is None:
            shape = vol.shape
        elif vol.shape != shape:
            raise ValueError(f"mask {mf.name} has shape {vol.shape}, other masks have {shape}")
        masks[m.group(3)] = masks.get(m.group(3), np.zeros(vol.shape, dtype=bool)) | vol
    return masks, found


def derive_rois(masks: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Add V1..V3 from dorsal/ventral halves, LVC, HVC and VC as in Horikawa & Kamitani 2017.

    LVC = V1 + V2 + V3; HVC = the ``HVC`` mask when given, else LOC + FFA + PPA; VC = LVC + hV4
    + HVC + LOC + FFA + PPA (those present). Returns (masks with the derived ones, {derived
    name: the masks it joins}). Masks given under a derived name are kept as given.
    """
    out = dict(masks)
    made: dict[str, list[str]] = {}

    def join(name, parts):
        have = [p for p in parts if p in out]
        if name in out or not have:
            return
        out[name] = np.logical_or.reduce([out[p] for p in have])
        made[name] = have

    for v in ("V1", "V2", "V3"):
        join(v, [f"{v}d", f"{v}v"])
    if all(v in out for v in ("V1", "V2", "V3")):
        join("LVC", ["V1", "V2", "V3"])
    join("HVC", ["LOC", "FFA", "PPA"])
    if "LVC" in out:
        join("VC", ["LVC", "hV4", "HVC", "LOC", "FFA", "PPA"])
    return out, made


# stimulus label columns, most specific first: ``stimulus_name`` ("n01518878_5958") and the float
# ``stimulus_id`` (1518878.005958) are read by public scripts on ds001246's events.tsv; ``stim_id``
# is the name in older copies.
_LABELS = ("stimulus_name", "stimulus_id", "stim_id")


def _as_id(value) -> str:
    if isinstance(value, (float, np.floating)):
        return float_label_to_id(value) if value % 1 else str(int(value))
    return str(value).strip()


def _stimulus_events(ev, path: Path, stimulus_event_type: int):
    """The stimulus blocks of one events table, with their stimulus id in column ``_id``.

    With an ``event_type`` column: rows of ``stimulus_event_type``. Without one: rows that name a
    stimulus, less the one-back repetition blocks (a block showing the image of the block
    before it), as the published samples count each image once per presentation run.
    """
    for col in ("onset", "duration"):
        if col not in ev.columns:
            raise ValueError(f"{path.name} must have a {col!r} column; has {list(ev.columns)}")
    label = next((c for c in _LABELS if c in ev.columns), None)
    if label is None:
        raise ValueError(f"{path.name} must name the stimulus in one of the columns {list(_LABELS)}; "
                         f"has {list(ev.columns)}")
    if "event_type" in ev.columns:
        stim = ev[ev["event_type"] == stimulus_event_type].copy()
        if stim[label].isna().any():
            raise ValueError(f"{path.name}: {int(stim[label].isna().sum())} event(s) of event_type "
                             f"{stimulus_event_type} have no {label!r}")
    else:
        stim = ev[ev[label].notna()].copy()
        repeat = stim[label].eq(stim[label].shift())
        if repeat.any():
            log.info("%s: %d one-back repetition block(s) left out", path.name, int(repeat.sum()))
        stim = stim[~repeat]
    stim["_id"] = [_as_id(v) for v in stim[label]]
    return stim


def _samples_of_run(bold_name: str, ev_path: Path, n_vols: int, tr: float, delay_s: float,
                    stimulus_event_type: int):
    """(volume mask, stimulus id, onset) of each stimulus event of one run: its sample is the mean of
    the volumes acquired in [onset + delay, onset + duration + delay)."""
    import pandas as pd

    try:
        ev = pd.read_csv(ev_path, sep="\t", na_values=["n/a"])
    except (UnicodeDecodeError, pd.errors.ParserError) as err:
        raise ValueError(f"{ev_path}: not a tab-separated events table ({err})") from None
    stim = _stimulus_events(ev, ev_path, stimulus_event_type)
    t = np.arange(n_vols) * tr
    out = []
    for _, row in stim.iterrows():
        start, stop = row["onset"] + delay_s, row["onset"] + row["duration"] + delay_s
        vols = (t >= start - 1e-6) & (t < stop - 1e-6)
        if not vols.any():
            raise ValueError(f"{bold_name}: event at onset {row['onset']} s has no volume in the run")
        out.append((vols, row["_id"], row["onset"]))
    return out


def _roi_masks(root: Path, subject: str, roi):
    """(masks with derived ROIs, mask files, union of the voxels read, derived ROIs)."""
    masks, mask_files = _read_masks(root, subject)
    masks, made = derive_rois(masks)
    if roi is not None:
        want = [roi] if isinstance(roi, str) else list(roi)
        for nm in want:
            if nm not in masks:
                raise ValueError(f"roi must be among {sorted(masks)}; got {nm!r}")
        union = np.logical_or.reduce([masks[nm] for nm in want])
    else:
        union = np.logical_or.reduce(list(masks.values()))
    return masks, mask_files, union, made


def _run_header(bold: Path, mask_shape) -> tuple[object, float]:
    """(NIfTI image, repetition time) of a run, its shape checked against the masks (header only)."""
    import nibabel as nib

    img = nib.load(bold)
    if img.ndim != 4 or tuple(img.shape[:3]) != mask_shape:
        raise ValueError(f"mask shape {mask_shape} does not match the functional data {bold.name}: {img.shape}")
    tr = float(img.header.get_zooms()[3])
    if not tr > 0:
        raise ValueError(f"{bold.name}: repetition time (4th zoom) must be > 0; got {tr}")
    return img, tr


def horikawa_bids_meta(root, subject: str = "sub-01", roi=None, *, runs: str = "preprocessed",
                       bold_glob: str | None = None, sessions: str = "ses-perception*", ignore=(),
                       delay_s: float = 3.0, stimulus_event_type: int = 1, **_):
    """:func:`load_horikawa_bids` without the responses: a ``BrainMeta`` from the file names, the
    events tables, the ROI masks and the runs' NIfTI headers (no volume is read)."""
    from .metadata import BrainMeta

    root = Path(root)
    pairs = find_runs(root, subject, runs=runs, bold_glob=bold_glob, sessions=sessions, ignore=ignore)
    masks, _, union, _ = _roi_masks(root, subject, roi)
    mask_shape = next(iter(masks.values())).shape
    coords = np.argwhere(union)
    ids, splits = [], []
    for bold, ev_path in pairs:
        img, tr = _run_header(bold, mask_shape)
        split = _split_from_session(next((p for p in bold.name.split("_") if p.startswith("ses-")), "ses-")[4:])
        for _, sid, _ in _samples_of_run(bold.name, ev_path, img.shape[3], tr, delay_s, stimulus_event_type):
            ids.append(sid)
            splits.append(split)
    if not ids:
        raise ValueError(f"{subject}: no stimulus events in {len(pairs)} run(s)")
    return BrainMeta(np.array(ids), {nm: m[tuple(coords.T)] for nm, m in masks.items()}, split=np.array(splits),
                     subject=subject, n_voxels=int(coords.shape[0]), source=str(root))


def load_horikawa_bids(
    root,
    subject: str = "sub-01",
    roi=None,
    *,
    runs: str = "preprocessed",
    bold_glob: str | None = None,
    sessions: str = "ses-perception*",
    ignore=(),
    delay_s: float = 3.0,
    detrend: bool = True,
    zscore: bool = True,
    stimulus_event_type: int = 1,
    nan: str = "warn",
    dtype=np.float32,
) -> BrainData:
    """Per-trial samples of ``subject`` from ds001246 (see the module docstring).

    ``runs``: "preprocessed" (``derivatives/preproc-spm``; default) or "raw". ``roi``: ROI
    name(s) whose voxels to read (default: all masks' voxels; derived ROIs LVC/HVC/VC allowed).
    ``sessions``: glob of session folders (default the perception sessions; imagery sessions
    get split "imagery"). Samples of ``ses-*Training*`` are split "train", of ``ses-*Test*``
    "test" (repetitions of a test image are kept as separate samples). ``ignore``: fnmatch
    patterns of files in the func folders to leave out (any other file that is not a run, an
    events table or a sidecar is an error naming it).
    """
    from scipy.signal import detrend as sp_detrend

    root = Path(root)
    pairs = find_runs(root, subject, runs=runs, bold_glob=bold_glob, sessions=sessions, ignore=ignore)
    where = root / PREPROC_DIR if runs == "preprocessed" else root
    log.info("%s: %d %s run(s) from %s", subject, len(pairs), runs, where)
    if runs == "raw":
        log.warning("%s: using raw, unpreprocessed runs (no motion correction) as asked (runs='raw')", subject)
    masks, mask_files, union, made = _roi_masks(root, subject, roi)
    for name, parts in made.items():
        log.info("%s: ROI %s derived as %s", subject, name, " + ".join(parts))
    mask_shape = next(iter(masks.values())).shape
    coords = np.argwhere(union)
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    rel = coords - lo
    samples, ids, splits, run_ids, onsets = [], [], [], [], []
    for r, (bold, ev_path) in enumerate(pairs):
        img, tr = _run_header(bold, mask_shape)
        box = np.asarray(img.dataobj[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2], :], dtype=np.float64)
        ts = box[rel[:, 0], rel[:, 1], rel[:, 2], :].T  # (n_volumes, n_voxels)
        if detrend:
            ts = sp_detrend(ts, axis=0, type="linear")
        if zscore:
            ts = train_stats(ts, what=f"voxels of {bold.name}", level=logging.DEBUG).apply(ts)
        split = _split_from_session(next((p for p in bold.name.split("_") if p.startswith("ses-")), "ses-")[4:])
        for vols, sid, onset in _samples_of_run(bold.name, ev_path, ts.shape[0], tr, delay_s, stimulus_event_type):
            samples.append(ts[vols].mean(axis=0))
            ids.append(sid)
            splits.append(split)
            run_ids.append(r)
            onsets.append(onset)
    if not samples:
        raise ValueError(f"{subject}: no stimulus events in {len(pairs)} run(s)")
    return BrainData(
        np.vstack(samples),
        np.array(ids),
        rois={nm: m[tuple(coords.T)] for nm, m in masks.items()},
        split=np.array(splits),
        subject=subject,
        provenance={"dataset": "horikawa_bids", "runs": runs,
                    "files": [str(b) for b, _ in pairs] + [str(e) for _, e in pairs] + [str(m) for m in mask_files],
                    "derived_rois": made,
                    "options": {"delay_s": delay_s, "detrend": detrend, "zscore": zscore, "sessions": sessions}},
        nan=nan,
        dtype=dtype,
        voxel_info={"ijk": coords.astype(np.int64)},
        sample_info={"run": np.array(run_ids), "onset": np.array(onsets, dtype=float)},
    )
