"""``check_experiment``: everything a run would check before its first job, without running it.

``brainlike run CONFIG --check`` calls it. On top of the config's own validation
(:func:`~brainlike.pipeline.config.load_config`: keys, types, finite numbers in range, duplicate
YAML keys) it resolves what the run would resolve, and fails where the run would fail:

- the dataset (registered name and options), its subjects, ROIs, stimulus ids and train/test
  split, and too few test images. These are read from the data's metadata without the voxel
  matrix (:mod:`brainlike.datasets.metadata`: BData HDF5, npz, BIDS, BHscore's data folder, and the
  registered ``shen2019_deeprecon``, ``horikawa2017_god`` and ``nsd``); NaN voxels, which only the
  responses show, are then found by the run when it reads them. Data given in Python, and
  registered datasets without a metadata reader (``cowley2023_v4``, ``kay2008_vim1``,
  ``kay2008_vim1_npz``, your ``register``-ed ones without ``metadata``), are loaded whole as the
  run loads them, NaN voxels included;
- the stimuli (every stimulus id of the brain data has an image);
- each DNN: the model name (loaded as the run loads it) and its layers, resolved by tracing the
  model once; a BHscore feature tree: every layer folder and every image file (of the
  ``encoding_features`` tree too when the encoding analysis reads one);
- the scheduler: the address format, and for a remote scheduler that something answers there.

Nothing is written and no feature is extracted.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import inputs as I
from .config import Experiment, load_config


@dataclass
class CheckReport:
    """What a run of the experiment would use: one line per resolved input."""

    experiment: Experiment
    lines: list[str] = field(default_factory=list)
    rois: list[str] = field(default_factory=list)
    subjects: dict = field(default_factory=dict)  # {subject: {n_train, n_test, n_voxels: {roi: n}}}
    layers: dict = field(default_factory=dict)  # {dnn: {layer: n_units or None}}

    def __str__(self) -> str:
        return "\n".join(self.lines)


def check_scheduler_reachable(address: str, timeout: float = 3.0) -> None:
    """For a ``tcp://host:port`` (or ``host:port``) scheduler: fail unless something accepts a connection."""
    if address in ("local", "synchronous") or "://" in address and not address.startswith(("tcp://", "tls://")):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ValueError(f"config key 'execution.scheduler': no Dask scheduler answers at {address} "
                         f"({err.strerror or err})") from None


def _check_dataset_name(exp: Experiment) -> None:
    if exp.dataset is None or "name" not in exp.dataset or exp.dataset.get("name") is None:
        return
    from brainlike import datasets

    name = exp.dataset["name"]
    known = datasets.list_datasets()
    if name not in known:
        raise ValueError(f"config key 'dataset.name': unknown dataset {name!r}; expected one of {known}")
    entry = datasets.info(name)
    allowed = set(entry.options) | {exp.dataset.get("subject_option", "subject")}
    bad = sorted(set(exp.dataset.get("options") or {}) - allowed)
    if bad:
        raise ValueError(f"config key 'dataset.options.{bad[0]}' is not an option of {name!r}; "
                         f"expected one of {sorted(entry.options)}")


def _model(dnn):
    from brainlike import models

    key = f"dnns.{dnn.name}.model"
    try:
        model = models.load(dnn.model, pretrained=dnn.pretrained, seed=dnn.seed, **dnn.model_options)
    except models.WeightsUnavailableError as err:
        raise ValueError(f"config key '{key}': weights of {dnn.model!r} are not available: {err}") from None
    except (ValueError, ImportError, FileNotFoundError, AttributeError, KeyError) as err:
        # unknown name, a package that is not installed, a missing model file
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ValueError(f"config key '{key}': {msg}") from None
    if dnn.input_size is not None:
        import dataclasses

        model = dataclasses.replace(model, input_size=(dnn.input_size, dnn.input_size))
    return model


def _check_model_layers(dnn) -> dict:
    """{layer: n_units} after resolving the layer names on the traced model."""
    from brainlike import models

    model = _model(dnn)
    try:
        paths = models.resolve_layers(model, dnn.layers)
    except ValueError as err:
        raise ValueError(f"config key 'dnns.{dnn.name}.layers': {err}") from None
    except RuntimeError as err:  # the model cannot run at this input size
        raise ValueError(f"config key 'dnns.{dnn.name}': {dnn.model!r} cannot run on a "
                         f"{model.input_size} input: {err}") from None
    shapes = models.layer_shapes(model)
    return {name: int(np.prod(shapes[p])) for name, p in zip(dnn.layers, paths)}


def _check_feature_tree(dnn, ids) -> dict:
    from brainlike.features._bhscore import _layer_dir

    if dnn.features is None:
        raise ValueError(f"config key 'dnns.{dnn.name}': give 'model', 'features' (a BHscore feature tree) or "
                         f"--features ROOT for its dir {dnn.dir!r}")
    # one folder, or several (BHscore's training and test trees): each id in one of them
    bases = [Path(f) for f in (dnn.features if isinstance(dnn.features, list) else [dnn.features])]
    for base in bases:
        if not base.is_dir():
            raise FileNotFoundError(f"config key 'dnns.{dnn.name}.features': feature folder not found: {base}")
    if dnn.feature_index is not None and not Path(dnn.feature_index).is_file():
        raise FileNotFoundError(f"config key 'dnns.{dnn.name}.feature_index': file not found: {dnn.feature_index}")
    out = {}
    for layer in dnn.layers:
        dirs = [base / _layer_dir(layer) for base in bases]
        for d in dirs:
            if not d.is_dir():
                raise FileNotFoundError(f"config key 'dnns.{dnn.name}.layers': no folder for layer {layer!r}: {d}")
        if ids is not None:
            have = {p.stem for d in dirs for p in d.glob("*.mat")}
            missing = [i for i in ids if i not in have]
            if missing:
                raise FileNotFoundError(f"dnns.{dnn.name} layer {layer!r}: no feature file for {len(missing)} "
                                        f"stimulus id(s) in {' or '.join(map(str, dirs))}, e.g. {missing[:5]}")
        out[layer] = None
    return out


def check_experiment(config, *, brain=None, stimuli=None, features=None, features_root=None,
                     connect: bool = True, **overrides) -> CheckReport:
    """Validate ``config`` and resolve every input a run would resolve; raise where the run would fail.

    Arguments as for :func:`~brainlike.pipeline.run_experiment` (``brain``, ``stimuli``, ``features``
    given in Python replace what the config names). ``connect=False`` skips contacting a remote
    scheduler. Returns a :class:`CheckReport`; raises ``ValueError`` / ``FileNotFoundError`` naming
    the config key, id or file at fault.
    """
    exp = load_config(config, features_root=features_root, **overrides)
    rep = CheckReport(exp)
    lines = rep.lines
    lines.append(f"experiment {exp.name!r} -> {exp.out}")
    lines.append(f"  analyses: {', '.join(exp.analyses)}")
    out = Path(exp.out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"config key 'out': {parent} is a file, not a folder")
            break

    # brain data: its metadata where the format has them, else the same loaders as the run
    metas = None
    if brain is None:
        _check_dataset_name(exp)
        metas = I.load_brain_meta(exp)
    brains = metas if metas is not None else I.load_brain(exp, brain)
    rois = I.resolve_rois(exp, brains)
    rep.rois = rois
    needed: set[str] = set()
    for s, b in brains.items():
        if metas is not None:
            arr = I.split_meta(b, rois, s)
            counts = arr["n_train"], arr["n_test"], arr["n_voxels"]
        else:
            arr = I.split_subject(b, rois, s)
            counts = (int(arr["train_x"].shape[0]), int(arr["test_x"].shape[0]),
                      {r: int(arr[f"roi_{r}"].sum()) for r in rois})
        needed.update(arr["train_ids"].tolist())
        needed.update(arr["test_ids"].tolist())
        rep.subjects[s] = dict(zip(("n_train", "n_test", "n_voxels"), counts))
    if not exp.dataset:
        name = "(given in Python)"
    elif "format" in exp.dataset:
        name = f"{exp.dataset['format']} files at {exp.dataset['path']}"
    else:
        name = exp.dataset["name"]
    lines.append(f"  dataset: {name}")
    for s, info in rep.subjects.items():
        vox = ", ".join(f"{r} {n}" for r, n in info["n_voxels"].items())
        lines.append(f"    {s}: {info['n_train']} training samples, {info['n_test']} test images; voxels {vox}")
    lines.append(f"  rois: {rois}")

    stim = I.load_stimuli(exp, brains, stimuli)
    if stim is not None:
        missing = sorted(needed - set(stim.ids))
        if missing:
            raise ValueError(f"{len(missing)} stimulus id(s) of the brain data have no image, e.g. {missing[:5]}")
        lines.append(f"  stimuli: {len(needed)} of {len(stim.ids)} images used")
    from brainlike.stimuli import natural_key

    ids = sorted(needed, key=natural_key)

    lines.append(f"  dnns ({len(exp.dnns)}):")
    for dname, dnn in exp.dnns.items():
        given = None if features is None else features.get(dname)
        if given is not None:
            missing = [layer for layer in dnn.layers if layer not in given]
            if missing:
                raise ValueError(f"features of {dname!r}: layers {missing} missing; given {list(given)}")
            units = {layer: int(I._shape(given[layer])[1]) for layer in dnn.layers}
            src = "given features"
        elif dnn.model is not None:
            if stim is None:
                raise ValueError(f"DNN {dname!r} needs stimulus images: set config key 'stimuli' or give "
                                 "brain data with .stimuli")
            units = _check_model_layers(dnn)
            src = dnn.model
        else:
            decodes = bool({"decoding", "decodability"} & set(exp.analyses))
            enc = I.encoding_source(dnn) if dnn.encoding_features is not None else None
            read = [("", dnn)] if enc is None else [("decoding", dnn)] * decodes + [("encoding", enc)] * (
                "encoding" in exp.analyses)
            units, parts = {}, []
            for what, d in read or [("", dnn)]:
                units = _check_feature_tree(d, ids)
                tree = " + ".join(d.features) if isinstance(d.features, list) else d.features
                parts.append(f"{tree} ({what})" if what else tree)
            src = "; ".join(parts)
        rep.layers[dname] = units
        sizes = ", ".join(f"{k} {v}" if v is not None else k for k, v in units.items())
        lines.append(f"    {dname}: {len(dnn.layers)} layers from {src}" + (f" [{dnn.control}]" if dnn.control else "")
                     + f" ({sizes})")
    dec = exp.decoding
    if "decoding" in exp.analyses:
        lines.append(f"  decoding: alpha={dec['alpha']} n_feat={dec['n_feat']} "
                     f"units_per_layer={dec['units_per_layer']} chunk_size={dec['chunk_size']}")
    if "encoding" in exp.analyses:
        enc = exp.encoding
        if enc.get("method") == "recipe":
            lines.append(f"  encoding: BHscore's recipe, alpha={enc['alpha']} n_feat={enc['n_feat']}")
        else:
            lines.append(f"  encoding: alphas={enc['alphas']} cv={enc['cv']}")
    sched = exp.execution["scheduler"]
    if connect:
        check_scheduler_reachable(sched)
    lines.append(f"  execution: {sched}")
    return rep
