"""``BrainData``: one object for fMRI / neural responses, whatever file they came from.

Responses are (n_samples, n_voxels). Each sample has a stimulus id, a repetition
index and a split; each voxel may belong to several ROIs (e.g. V1 and VC). Operations
return new objects that share data where numpy allows it (contiguous selections are
views); nothing large is copied behind the user's back.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from brainlike._validate import check_choice

__all__ = ["BrainData", "concat_subjects", "NaNVoxelWarning"]


class NaNVoxelWarning(RuntimeWarning):
    """Some voxels hold NaN values (reported with their count)."""


def _as_index(idx: np.ndarray, n: int):
    """A slice when ``idx`` is a contiguous increasing run (so numpy gives a view)."""
    idx = np.asarray(idx)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if idx.size == 0:
        return idx.astype(np.intp)
    if idx.size == n and idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) == 1):
        return slice(None)
    if np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _occurrence_index(keys: Sequence) -> np.ndarray:
    """0 for the first occurrence of each key, 1 for the second, ..."""
    seen: dict = {}
    out = np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        out[i] = seen.get(k, 0)
        seen[k] = out[i] + 1
    return out


def _nan_voxels(responses: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
    """Bool (n_voxels,) mask of voxels with any NaN, computed in row chunks (bounded memory)."""
    bad = np.zeros(responses.shape[1], dtype=bool)
    if not np.issubdtype(responses.dtype, np.floating):
        return bad
    for start in range(0, responses.shape[0], chunk_rows):
        bad |= np.isnan(responses[start : start + chunk_rows]).any(axis=0)
    return bad


class BrainData:
    """Responses (n_samples, n_voxels) with per-sample stimulus ids and per-voxel ROIs.

    Parameters
    ----------
    responses : array (n_samples, n_voxels); stored as float32 (``dtype=np.float64`` on
        request) without a copy when it already has that dtype.
    stimulus_ids : (n_samples,) ids (converted to ``str``).
    rois : {name: bool mask (n_voxels,)}; a voxel may be in several ROIs.
    repetition : (n_samples,) int or None (None: 0, 1, 2... per (split, stimulus id) in order).
    split : (n_samples,) str such as "train"/"test", a single str for all samples, or None.
    subject : subject name, or per-sample names (n_samples,) after ``concat_subjects``.
    provenance : dict (dataset, files with SHA-256, options).
    stimuli : optional ImageSet whose ids cover ``stimulus_ids``.
    nan : "warn" (default: warn with the count of NaN voxels), "drop" (remove them, with a
        warning), "raise", or "ignore".
    """

    def __init__(
        self,
        responses,
        stimulus_ids,
        rois: Mapping[str, np.ndarray] | None = None,
        repetition=None,
        split=None,
        subject="",
        provenance: Mapping | None = None,
        stimuli=None,
        *,
        dtype=np.float32,
        nan: str = "warn",
        voxel_subject=None,
        voxel_info: Mapping[str, np.ndarray] | None = None,
        sample_info: Mapping[str, np.ndarray] | None = None,
    ):
        check_choice(nan, "nan", ("warn", "drop", "raise", "ignore"))
        arr = np.asarray(responses)
        if arr.ndim != 2:
            raise ValueError(f"responses must be a 2-D array (n_samples, n_voxels); got shape {arr.shape}")
        if dtype not in (np.float32, np.float64, "float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64; got {dtype!r}")
        self.responses = arr.astype(dtype, copy=False)
        n, v = self.responses.shape
        ids = np.asarray(stimulus_ids)
        if ids.ndim != 1 or ids.shape[0] != n:
            raise ValueError(f"stimulus_ids must have shape ({n},) (one id per sample); got {ids.shape}")
        self.stimulus_ids = ids.astype(str)
        self.rois: dict[str, np.ndarray] = {}
        for name, mask in (rois or {}).items():
            m = np.asarray(mask)
            if m.shape != (v,):
                raise ValueError(f"rois[{name!r}] must be a mask of shape ({v},) (one per voxel); got {m.shape}")
            if m.dtype != bool:
                if not np.isin(m, (0, 1)).all():
                    raise ValueError(f"rois[{name!r}] must be boolean (or 0/1); got values {np.unique(m)[:5]}")
                m = m.astype(bool)
            self.rois[str(name)] = m
        if split is None:
            self.split = None
        else:
            sp = np.full(n, split, dtype=object) if isinstance(split, str) else np.asarray(split)
            if sp.shape != (n,):
                raise ValueError(f"split must have shape ({n},) or be one string; got {sp.shape}")
            self.split = sp.astype(str)
        if repetition is None:
            keys = self.stimulus_ids if self.split is None else list(zip(self.split, self.stimulus_ids))
            self.repetition = _occurrence_index(list(keys))
        else:
            rep = np.asarray(repetition)
            if rep.shape != (n,):
                raise ValueError(f"repetition must have shape ({n},); got {rep.shape}")
            self.repetition = rep.astype(np.int64)
        if isinstance(subject, str):
            self.subject = subject
            self.sample_subject = None
        else:
            ss = np.asarray(subject).astype(str)
            if ss.shape != (n,):
                raise ValueError(f"subject must be a string or have shape ({n},); got {ss.shape}")
            self.sample_subject = ss
            self.subject = "+".join(dict.fromkeys(ss.tolist()))
        self.voxel_subject = None if voxel_subject is None else np.asarray(voxel_subject).astype(str)
        if self.voxel_subject is not None and self.voxel_subject.shape != (v,):
            raise ValueError(f"voxel_subject must have shape ({v},); got {self.voxel_subject.shape}")
        self.voxel_info = {}
        for k, a in (voxel_info or {}).items():
            a = np.asarray(a)
            if a.shape[:1] != (v,):
                raise ValueError(f"voxel_info[{k!r}] must have {v} rows (one per voxel); got shape {a.shape}")
            self.voxel_info[str(k)] = a
        self.sample_info = {}
        for k, a in (sample_info or {}).items():
            a = np.asarray(a)
            if a.shape[:1] != (n,):
                raise ValueError(f"sample_info[{k!r}] must have {n} rows (one per sample); got shape {a.shape}")
            self.sample_info[str(k)] = a
        self.provenance = dict(provenance or {})
        self.stimuli = stimuli
        self.n_averaged: np.ndarray | None = None
        if nan != "ignore":
            self._handle_nan(nan)

    # --- basic properties -------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.responses.shape[0]

    @property
    def n_voxels(self) -> int:
        return self.responses.shape[1]

    @property
    def roi_names(self) -> list[str]:
        return list(self.rois)

    @property
    def splits(self) -> list[str]:
        return [] if self.split is None else list(dict.fromkeys(self.split.tolist()))

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        ds = self.provenance.get("dataset", "")
        rois = ", ".join(f"{k}:{int(m.sum())}" for k, m in self.rois.items())
        splits = ", ".join(f"{s}:{int((self.split == s).sum())}" for s in self.splits)
        return (
            f"BrainData({ds!r}, subject={self.subject!r}, responses={self.responses.shape} "
            f"{self.responses.dtype}, rois=[{rois}], splits=[{splits}])"
        )

    # --- NaN voxels ------------------------------------------------------------------
    def nan_voxels(self) -> np.ndarray:
        """Indices of voxels holding at least one NaN."""
        return np.flatnonzero(_nan_voxels(self.responses))

    def _handle_nan(self, policy: str) -> None:
        bad = self.nan_voxels()
        if bad.size == 0:
            return
        msg = (
            f"{bad.size} of {self.n_voxels} voxel(s) contain NaN values (e.g. voxel indices {bad[:5].tolist()})"
        )
        if policy == "raise":
            raise ValueError(f"responses: {msg}; pass nan='drop' to remove them")
        if policy == "drop":
            warnings.warn(f"{msg}; dropped them (nan='drop')", NaNVoxelWarning, stacklevel=3)
            keep = np.ones(self.n_voxels, dtype=bool)
            keep[bad] = False
            self._set_voxels(keep)
        else:
            warnings.warn(
                f"{msg}; use .drop_nan_voxels() or nan='drop' to remove them", NaNVoxelWarning, stacklevel=3
            )

    def drop_nan_voxels(self) -> BrainData:
        """A copy without the voxels holding NaN (the count is recorded in provenance)."""
        bad = self.nan_voxels()
        keep = np.ones(self.n_voxels, dtype=bool)
        keep[bad] = False
        out = self.select_voxels(keep)
        out.provenance["dropped_nan_voxels"] = int(bad.size)
        return out

    # --- selection -------------------------------------------------------------------
    def _set_voxels(self, keep) -> None:
        col = _as_index(keep, self.n_voxels)
        self.responses = self.responses[:, col]
        self.rois = {k: m[col] for k, m in self.rois.items()}
        if self.voxel_subject is not None:
            self.voxel_subject = self.voxel_subject[col]
        self.voxel_info = {k: a[col] for k, a in self.voxel_info.items()}

    def _new(self, **changes) -> BrainData:
        out = object.__new__(BrainData)
        out.__dict__.update(self.__dict__)
        out.provenance = dict(self.provenance)
        out.__dict__.update(changes)
        return out

    def select_voxels(self, voxels) -> BrainData:
        """Voxels by bool mask (n_voxels,) or index array; a view when they are contiguous."""
        v = np.asarray(voxels)
        if v.dtype == bool and v.shape != (self.n_voxels,):
            raise ValueError(f"voxels mask must have shape ({self.n_voxels},); got {v.shape}")
        out = self._new()
        out._set_voxels(v)
        return out

    def select_roi(self, roi: str | Iterable[str]) -> BrainData:
        """Voxels of one ROI or of the union of several (order of voxels kept)."""
        names = [roi] if isinstance(roi, str) else list(roi)
        if not names:
            raise ValueError("roi must name at least one ROI; got an empty list")
        for name in names:
            if name not in self.rois:
                raise ValueError(f"roi must be one of {self.roi_names}; got {name!r}")
        mask = np.zeros(self.n_voxels, dtype=bool)
        for name in names:
            mask |= self.rois[name]
        if not mask.any():
            raise ValueError(f"roi {names} selects no voxel (empty ROI)")
        out = self.select_voxels(mask)
        out.provenance["roi"] = names if len(names) > 1 else names[0]
        return out

    def select_samples(self, samples) -> BrainData:
        """Samples by bool mask (n_samples,) or index array; a view when they are contiguous."""
        s = np.asarray(samples)
        if s.dtype == bool and s.shape != (self.n_samples,):
            raise ValueError(f"samples mask must have shape ({self.n_samples},); got {s.shape}")
        row = _as_index(s, self.n_samples)

        def take(a):
            return None if a is None else a[row]

        return self._new(
            responses=self.responses[row],
            stimulus_ids=self.stimulus_ids[row],
            repetition=self.repetition[row],
            split=take(self.split),
            sample_subject=take(self.sample_subject),
            n_averaged=take(self.n_averaged),
            sample_info={k: a[row] for k, a in self.sample_info.items()},
        )

    def select_split(self, split: str) -> BrainData:
        """Samples of one split ("train", "test", ...)."""
        if self.split is None:
            raise ValueError("split: this BrainData has no split information (split=None)")
        check_choice(split, "split", self.splits)
        out = self.select_samples(self.split == split)
        out.provenance["split"] = split
        return out

    # --- averaging and alignment ----------------------------------------------------
    def average_repetitions(self) -> BrainData:
        """One sample per (split, stimulus id), in order of first appearance; NaN-aware mean.

        ``n_averaged`` gives the number of repetitions behind each sample.
        """
        import scipy.sparse as sp

        split = self.split if self.split is not None else np.full(self.n_samples, "", dtype=object)
        keys = [f"{s}\x00{i}" for s, i in zip(split, self.stimulus_ids)]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first)  # groups in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        group = rank[inverse]
        n_groups = order.size
        s = sp.csr_matrix(
            (np.ones(self.n_samples, dtype=self.responses.dtype), (group, np.arange(self.n_samples))),
            shape=(n_groups, self.n_samples),
        )
        counts = np.bincount(group, minlength=n_groups)
        nan = np.isnan(self.responses)
        if nan.any():
            sums = np.asarray(s @ np.where(nan, 0, self.responses))
            valid = np.asarray(s @ (~nan).astype(self.responses.dtype))
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (sums / valid).astype(self.responses.dtype)
        else:
            mean = np.asarray(s @ self.responses) / counts[:, None].astype(self.responses.dtype)
        firsts = first[order]
        out = self._new(
            responses=mean.astype(self.responses.dtype, copy=False),
            stimulus_ids=self.stimulus_ids[firsts],
            repetition=np.zeros(n_groups, dtype=np.int64),
            split=None if self.split is None else self.split[firsts],
            sample_subject=None if self.sample_subject is None else self.sample_subject[firsts],
            n_averaged=counts if self.n_averaged is None else np.bincount(group, self.n_averaged, n_groups).astype(np.int64),
            sample_info={},  # per-trial details (run, onset) do not survive averaging
        )
        return out

    def align(self, ids, *, allow_extra: bool = False) -> BrainData:
        """Samples reordered so that ``stimulus_ids`` equals ``ids`` (a list, or anything with ``.ids``).

        Pairs by id through :func:`brainlike.ids.align`: fails naming how many ids are missing from
        either side and the first few, unless ``allow_extra`` (samples whose id is not in ``ids``
        are then dropped). Each id must name one sample: average repetitions or select a split first.
        """
        from brainlike.ids import IdMismatchError, align

        try:
            rows = align(self.stimulus_ids, ids, source="the responses", wanted="the requested ids",
                         allow_extra=allow_extra)
        except IdMismatchError as err:
            if err.duplicated:
                raise IdMismatchError(f"{err}; call .average_repetitions() or .select_split() before .align()",
                                      duplicated=err.duplicated) from None
            raise
        return self.select_samples(rows)

    def check_stimuli(self) -> None:
        """Every stimulus id must name an image of ``.stimuli``."""
        if self.stimuli is None:
            raise ValueError("stimuli: this BrainData has no ImageSet attached")
        from brainlike.ids import align

        align(self.stimuli.ids, self.stimulus_ids, source=f"the image set {getattr(self.stimuli, 'name', '')!r}",
              wanted="the responses")

    def to_dataframe(self):
        """Per-sample table (stimulus id, split, repetition, subject) without the responses."""
        import pandas as pd

        return pd.DataFrame(
            {
                "stimulus_id": self.stimulus_ids,
                "split": self.split if self.split is not None else "",
                "repetition": self.repetition,
                "subject": self.sample_subject if self.sample_subject is not None else self.subject,
            }
        )


def concat_subjects(datas: Sequence[BrainData], axis: str = "samples") -> BrainData:
    """Concatenate several subjects' BrainData.

    ``axis="samples"``: stack samples (same voxels and ROI masks in every input, e.g. data in a
    common space); the subject is kept per sample in ``sample_subject``.
    ``axis="voxels"``: put voxels side by side after aligning every input on the first one's
    (split, stimulus id) order (each id once per split: average repetitions first); the subject
    is kept per voxel in ``voxel_subject`` and ROIs are kept per subject as ``"<subject>/<roi>"``
    plus the union under ``"<roi>"``.
    """
    check_choice(axis, "axis", ("samples", "voxels"))
    datas = list(datas)
    if not datas:
        raise ValueError("datas must hold at least one BrainData; got an empty list")
    names = [d.subject or f"subject{i}" for i, d in enumerate(datas)]
    if len(set(names)) != len(names):
        raise ValueError(f"datas: subject names must be distinct; got {names}")
    dtype = np.result_type(*[d.responses.dtype for d in datas])
    prov = {"concat_subjects": [d.provenance for d in datas], "axis": axis}
    if axis == "samples":
        first = datas[0]
        for d, name in zip(datas[1:], names[1:]):
            if d.n_voxels != first.n_voxels:
                raise ValueError(
                    f"datas: subject {name!r} has {d.n_voxels} voxels, {names[0]!r} has {first.n_voxels}; "
                    "use axis='voxels' for subjects with their own voxels"
                )
            if d.rois.keys() != first.rois.keys() or any(
                not np.array_equal(d.rois[k], first.rois[k]) for k in first.rois
            ):
                raise ValueError(f"datas: ROI masks of subject {name!r} differ from those of {names[0]!r}")
        has_split = all(d.split is not None for d in datas)
        out = BrainData(
            np.concatenate([d.responses for d in datas], axis=0).astype(dtype, copy=False),
            np.concatenate([d.stimulus_ids for d in datas]),
            rois=first.rois,
            repetition=np.concatenate([d.repetition for d in datas]),
            split=np.concatenate([d.split for d in datas]) if has_split else None,
            subject=np.concatenate([np.full(d.n_samples, nm) for d, nm in zip(datas, names)]),
            provenance=prov,
            stimuli=first.stimuli,
            dtype=dtype,
            nan="ignore",
        )
        return out
    # axis == "voxels": samples paired by (split, stimulus id) through brainlike.ids.align
    from brainlike.ids import IdMismatchError, align

    def keyed(d: BrainData):
        if d.split is None:
            return d.stimulus_ids
        return np.array([f"{s}:{i}" for s, i in zip(d.split, d.stimulus_ids)])

    ref_keys = keyed(datas[0])
    blocks, rois, vsub = [], {}, []
    total = sum(d.n_voxels for d in datas)
    offset = 0
    for d, name in zip(datas, names):
        try:
            order = align(keyed(d), ref_keys, source=f"subject {name!r}", wanted=f"subject {names[0]!r}",
                          allow_extra=False)
        except IdMismatchError as err:
            hint = "; call .average_repetitions() first" if err.duplicated else ""
            raise IdMismatchError(f"datas: (split:)stimulus ids of the subjects differ: {err}{hint}",
                                  missing=err.missing, extra=err.extra, duplicated=err.duplicated) from None
        blocks.append(d.responses[_as_index(order, d.n_samples)])
        for roi, mask in d.rois.items():
            full = np.zeros(total, dtype=bool)
            full[offset : offset + d.n_voxels] = mask
            rois[f"{name}/{roi}"] = full
            rois[roi] = rois.get(roi, np.zeros(total, dtype=bool)) | full
        vsub.append(np.full(d.n_voxels, name))
        offset += d.n_voxels
    first = datas[0]
    return BrainData(
        np.concatenate(blocks, axis=1).astype(dtype, copy=False),
        first.stimulus_ids,
        rois=rois,
        repetition=first.repetition,
        split=first.split,
        subject="+".join(names),
        provenance=prov,
        stimuli=first.stimuli,
        dtype=dtype,
        nan="ignore",
        voxel_subject=np.concatenate(vsub),
    )
