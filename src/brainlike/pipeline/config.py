"""Experiments as configs: a YAML file (or BHscore's own ``settings.json``) -> :class:`Experiment`.

Everything is validated before any heavy work starts; each error names the bad key
(``dnns.AlexNet.layers``), what was expected and what was found.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ANALYSES = ("decoding", "encoding", "decodability")
# BH scores rank ROIs against layers: they need >= 2 of each. A decodability study (Horikawa et al.
# 2019) does not: one ROI (VC) and any number of layers.
BH_ANALYSES = ("decoding", "encoding")
ENCODING_METHODS = ("ridge_cv", "recipe")

DEFAULTS: dict[str, Any] = {
    "name": "experiment",
    "out": "brainlike-output",
    "seed": 0,
    "analyses": ["decoding"],
    "dataset": None,
    "stimuli": None,
    "subjects": None,
    "rois": None,
    "dnns": None,
    "decoding": {
        "alpha": 100.0,  # BHscore / Horikawa et al. 2019
        "n_feat": 500,  # voxels selected per unit by correlation (FastL2LiR)
        "units_per_layer": 1000,  # random subset per layer as in Nonaka et al. 2021; null = all units
        "chunk_size": 1000,  # units per job
        "dtype": "float32",
        "voxel_cache_mb": 2048,  # per worker: ROI voxels + Gram kept across jobs (0: rebuild for every job)
    },
    "encoding": {
        "method": "ridge_cv",  # "ridge_cv" (all units, per-voxel alpha by CV) or "recipe" (BHscore's published one)
        "alphas": [0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6],  # ridge_cv
        "cv": 5,  # ridge_cv
        "alpha": 100.0,  # recipe: FastL2LiR's alpha ("encoding alpha" of BHscore's bhscore_caffe_*_allunits.yaml)
        "n_feat": 500,  # recipe: units selected per voxel by correlation ("layers unit num")
        "voxels_per_job": 5000,  # recipe: voxels of one subject encoded by one job (each job streams the layer)
        "memory_mb": 1024,  # recipe: per job, the selected units' columns gathered at once
        "chunk_size": 20000,  # units read at a time (ridge_cv: the layer's kernel; recipe: at most this)
        "dtype": "float32",
    },
    "scores": {
        "pval": 0.05,
        "n_layers": 5,  # layers per draw in the layer-selected BH score (first and last always kept)
        "n_repeat": 100,
        "voxels_per_roi": 1000,  # encoding BH: random voxels per subject and ROI
        "n_boot": 200,  # bootstrap over test images and units -> confidence interval
        "n_perm": 200,  # layer labels shuffled -> permutation p
        "ci": 0.95,
    },
    "execution": {
        "scheduler": "local",  # "local" (Dask LocalCluster), "synchronous", or a scheduler address
        "n_workers": None,  # default: number of cores
        "threads_per_worker": 1,
        "retries": 2,
        "lease_s": 60.0,  # claims of jobs (several processes on one folder): a dead owner's expire after this
    },
    "report": True,
}

_DNN_KEYS = {"model", "layers", "pretrained", "seed", "features", "dir", "layer_labels", "batch_size", "control",
             "input_size", "feature_index", "model_options", "encoding_features"}
CONTROLS = ("layer_shuffled",)
_DATASET_KEYS = {"name", "options", "subject_option"}
# local files instead of a registered name: {format: ..., path: ..., <format options>}
DATASET_FORMATS = {
    "bhscore": {"path", "features"},  # BHscore's data/ folder (fmri/, features/ or features_all/), datasets.bhscore_data
    "bdata": {"path", "splits", "label"},  # BData HDF5 file(s); path may hold {subject} and {split}
    "npz": {"path", "splits"},  # .npz per subject: responses, stimulus_ids, split, roi_<NAME> masks
    "bids": {"path", "options"},  # a BIDS folder read by datasets.load_horikawa_bids(path, subject, **options)
}
_STIMULI_KEYS = {"folder", "zip", "npz", "hdf5", "key", "dataset"}


@dataclass
class DNN:
    """One network: how to get its features and its layers in hierarchy order."""

    name: str
    layers: list[str]
    model: str | None = None  # brainlike.models.load name
    pretrained: bool = True
    seed: int = 0  # random weights (pretrained: false) are drawn from this seed
    model_options: dict = field(default_factory=dict)  # keyword options of the model's loader (models.load)
    features: str | list[str] | None = None  # BHscore-layout network folder(s) (features/<image set>/<dir>)
    dir: str | None = None  # BHscore settings' "dir" (framework/network inside the feature tree)
    layer_labels: list[str] | None = None  # display names (default: the layer names)
    batch_size: int = 32
    control: str | None = None  # "layer_shuffled": units dealt out to the layers at random (no hierarchy)
    input_size: int | None = None  # images resized to this instead of the model's own input size
    feature_index: str | None = None  # bdpy feature_index file (BHscore's index_random1000.mat): units kept per layer
    # the encoding analysis reads this feature tree (all its units) instead of `features` (BHscore: features_all/)
    encoding_features: str | list[str] | None = None


@dataclass
class Experiment:
    """A validated experiment; ``raw`` keeps the config as given (for provenance)."""

    name: str
    out: Path
    dnns: dict[str, DNN]
    analyses: list[str]
    dataset: dict | None
    stimuli: dict | None
    subjects: list[str] | None
    rois: list[str] | None
    decoding: dict
    encoding: dict
    scores: dict
    execution: dict
    seed: int
    report: bool
    raw: dict = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict:
        """Plain, JSON-ready form of the resolved config (defaults filled in)."""
        return {
            "name": self.name,
            "out": str(self.out),
            "seed": self.seed,
            "analyses": list(self.analyses),
            "dataset": self.dataset,
            "stimuli": self.stimuli,
            "subjects": self.subjects,
            "rois": self.rois,
            "dnns": {
                k: {"model": d.model, "layers": d.layers, "pretrained": d.pretrained, "seed": d.seed,
                    "model_options": d.model_options,
                    "features": d.features,
                    "dir": d.dir, "layer_labels": d.layer_labels, "batch_size": d.batch_size,
                    "control": d.control, "input_size": d.input_size, "feature_index": d.feature_index,
                    "encoding_features": d.encoding_features}
                for k, d in self.dnns.items()
            },
            "decoding": self.decoding,
            "encoding": self.encoding,
            "scores": self.scores,
            "execution": self.execution,
            "report": self.report,
        }


def _err(key: str, expected: str, got) -> ValueError:
    return ValueError(f"config key '{key}': expected {expected}; got {got!r}")


def _merge(defaults: dict, given: dict, prefix: str) -> dict:
    out = copy.deepcopy(defaults)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"config key '{prefix}.{unknown[0]}' is not known; expected one of {sorted(defaults)}"
        )
    out.update(given)
    return out


def _str_list(value, key: str, allow_none: bool = True) -> list[str] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise _err(key, "a non-empty list of names", value)
    if not all(isinstance(v, str) and v for v in value):
        raise _err(key, "a list of non-empty strings", value)
    if len(set(value)) != len(value):
        dup = sorted({v for v in value if list(value).count(v) > 1})
        raise _err(key, "names without duplicates", dup)
    return list(value)


def _number(section: dict, key: str, prefix: str, *, integer=False, minimum=None, allow_none=False,
            strict=False):
    value = section[key]
    if value is None and allow_none:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float) if not integer else (int,)):
        if integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _err(f"{prefix}.{key}", kind + (" or null" if allow_none else ""), value)
    if not math.isfinite(value):
        raise _err(f"{prefix}.{key}", f"a finite {kind.split()[-1]}", value)
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise _err(f"{prefix}.{key}", f"{kind} {'>' if strict else '>='} {minimum}", value)
    section[key] = value
    return value


_ADDRESS = re.compile(r"^(?:(tcp|tls|ucx|ws|wss)://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_scheduler(value, key: str = "execution.scheduler") -> str:
    """'local', 'synchronous' or a Dask scheduler address (``tcp://host:port``, ``host:port``, ``inproc://...``)."""
    expected = "'local', 'synchronous' or a scheduler address such as tcp://host:8786"
    if not isinstance(value, str) or not value:
        raise _err(key, expected, value)
    if value in ("local", "synchronous") or value.startswith("inproc://"):
        return value
    m = _ADDRESS.match(value)
    if m is None or not 0 < int(m.group(3)) < 65536:
        raise _err(key, expected, value)
    return value


def is_bhscore_settings(raw: dict) -> bool:
    """BHscore's settings.json: exactly subjects, rois and dnns{name: {dir, layers}}."""
    if not isinstance(raw, dict) or set(raw) != {"subjects", "rois", "dnns"}:
        return False
    dnns = raw.get("dnns")
    return isinstance(dnns, dict) and all(isinstance(d, dict) and "dir" in d for d in dnns.values())


def from_bhscore_settings(raw: dict) -> dict:
    """Turn BHscore's settings.json into an experiment config (decoding, BHscore's defaults).

    The settings name only subjects, ROIs and DNN feature folders; the dataset, the feature tree
    root and the output folder come from the command line (``--dataset``, ``--features``, ``--out``).
    """
    dnns = {}
    for name, d in raw["dnns"].items():
        unknown = sorted(set(d) - {"dir", "layers"})
        if unknown:
            raise ValueError(f"config key 'dnns.{name}.{unknown[0]}' is not known in BHscore settings; "
                             f"expected 'dir' and 'layers'")
        dnns[name] = {"dir": d["dir"], "layers": d.get("layers")}
    # BHscore decodes every unit of its feature files (feature_decoding_train.py l.164: the whole
    # layer; its published features already hold the 1000 random units per layer)
    return {"name": "bhscore", "subjects": raw["subjects"], "rois": raw["rois"], "dnns": dnns,
            "analyses": ["decoding"], "decoding": {"units_per_layer": None}, "encoding": {"method": "recipe"}}


def read_config_file(path) -> dict:
    """Read YAML or JSON (BHscore settings.json is converted) into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (UTF-8): {err.reason} at byte {err.start}") from None
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON: {err}") from None
        except DuplicateKeyError as err:
            raise DuplicateKeyError(f"{path}: {err}") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    else:
        import yaml

        try:
            raw = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
        except DuplicateKeyError as err:
            raise DuplicateKeyError(f"{path}: {err}") from None
        except yaml.YAMLError as err:
            msg = " ".join(str(err).replace('"<unicode string>"', "").split())
            raise ValueError(f"{path}: not valid YAML: {msg}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of config keys at top level; got {type(raw).__name__}")
    if is_bhscore_settings(raw):
        raw = from_bhscore_settings(raw)
    return raw


def _json_pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}; a key may appear once per mapping")
        out[key] = value
    return out


def _json_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


class DuplicateKeyError(ValueError):
    """A config mapping names the same key twice (YAML would silently keep the last value)."""


_LOADER = None


def _unique_key_loader():
    """A YAML SafeLoader that refuses a key given twice in one mapping, naming the key and its line."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise DuplicateKeyError(f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first "
                                            f"given on line {first}); a key may appear once per mapping")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    # YAML 1.2 floats: '1e3' and '1e-6' are numbers (PyYAML's YAML 1.1 rule would read them as strings)
    UniqueKeyLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    _LOADER = UniqueKeyLoader
    return _LOADER


def load_config(config, **overrides) -> Experiment:
    """Validate a config (path, dict or :class:`Experiment`) and fill in defaults.

    ``overrides`` replace top-level keys (``out=...``, ``execution={...}`` is merged);
    ``features_root=ROOT`` reads each DNN that has a BHscore ``dir`` (and no ``model``/``features``)
    from the feature tree ``ROOT/<dir>``. Relative paths in the config are resolved against the
    config file's folder.
    """
    features_root = overrides.pop("features_root", None)
    bhscore_data = overrides.pop("bhscore_data", None)
    bhscore_features = overrides.pop("bhscore_features", None)
    add_controls = overrides.pop("add_controls", ())
    if isinstance(config, Experiment):
        raw, source = copy.deepcopy(config.raw), config.source
    elif isinstance(config, (str, Path)):
        source = str(config)
        raw = read_config_file(config)
        base = Path(config).resolve().parent
        raw = _resolve_paths(raw, base)
    elif isinstance(config, dict):
        raw, source = copy.deepcopy(config), "<dict>"
        if is_bhscore_settings(raw):
            raw = from_bhscore_settings(raw)
    else:
        raise ValueError(f"config must be a path, a dict or an Experiment; got {type(config).__name__}")
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("execution", "decoding", "encoding", "scores") and isinstance(value, dict):
            raw[key] = {**(raw.get(key) or {}), **value}
        else:
            raw[key] = value
    if features_root is not None:
        for name, d in (raw.get("dnns") or {}).items():
            if isinstance(d, dict) and d.get("dir") and not d.get("model") and not d.get("features"):
                d["features"] = str(Path(features_root) / d["dir"])
    if bhscore_data is not None:
        apply_bhscore_data(raw, bhscore_data, features=bhscore_features)
    for control in add_controls:
        add_control_networks(raw, control)
    return validate(raw, source=source)


def add_control_networks(raw: dict, control: str = "layer_shuffled") -> dict:
    """Add to the config, for each network without a control, a copy ``"<name> (<control>)"`` with
    ``control`` set (``brainlike run --control layer_shuffled``)."""
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {list(CONTROLS)}; got {control!r}")
    dnns = raw.get("dnns")
    if isinstance(dnns, dict):
        for name, d in list(dnns.items()):
            label = f"{name} ({control.replace('_', '-')})"
            if isinstance(d, dict) and not d.get("control") and label not in dnns:
                dnns[label] = {**copy.deepcopy(d), "control": control}
    return raw


def apply_bhscore_data(raw: dict, data, features: str | None = None) -> dict:
    """Point a config at BHscore's ``data/`` folder: its fMRI files and its feature trees.

    The dataset becomes ``{format: bhscore, path: DATA}`` (unless the config names one); each DNN
    with a ``dir`` and no ``model``/``features`` reads ``DATA/<folder>/ImageNetTraining/<dir>`` and
    ``DATA/<folder>/ImageNetTest/<dir>``, with ``index_random1000.mat`` of the training tree's
    network folder when it is there (see :mod:`brainlike.datasets.bhscore_data`).

    ``features=None`` (default) is BHscore's own arrangement: decoding reads ``features/`` (its
    decoding scripts; the published files hold 1000 random units per layer) and encoding reads
    ``features_all/`` (every unit, ``encoding/bhscore_caffe_*_allunits.yaml``), each DNN getting
    ``encoding_features``; when only one of the two folders is there, both analyses read it (logged).
    ``features="features"`` or ``"features_all"`` makes both analyses read that folder.
    """
    import logging

    from brainlike.datasets.bhscore_data import FEATURE_FOLDERS, FEATURE_TREES, INDEX_FILE

    if features is not None and features not in FEATURE_FOLDERS:
        raise ValueError(f"--bhscore-features must be one of {list(FEATURE_FOLDERS)}; got {features!r}")

    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"--bhscore-data: folder not found: {data} (BHscore's data/ folder, with fmri/ "
                                "and features/ inside)")
    decoding, encoding = features, None
    if features is None:
        have = [f for f in FEATURE_FOLDERS if (data / f).is_dir()]
        decoding = have[0] if have else "features"  # none there: --check names the missing folder
        if len(have) == 2:
            encoding = "features_all"
        elif have:
            logging.getLogger("brainlike").info("--bhscore-data: only %s/ in %s: decoding and encoding both read it",
                                                decoding, data)
    if raw.get("dataset") is None:
        raw["dataset"] = {"format": "bhscore", "path": str(data), "features": decoding}
    for d in (raw.get("dnns") or {}).values():
        if isinstance(d, dict) and d.get("dir") and not d.get("model") and not d.get("features"):
            d["features"] = [str(data / decoding / FEATURE_TREES[s] / d["dir"]) for s in ("train", "test")]
            index = data / decoding / FEATURE_TREES["train"] / d["dir"] / INDEX_FILE
            if d.get("feature_index") is None and index.is_file():
                d["feature_index"] = str(index)
            if encoding is not None and d.get("encoding_features") is None:
                d["encoding_features"] = [str(data / encoding / FEATURE_TREES[s] / d["dir"])
                                          for s in ("train", "test")]
    return raw


def _resolve_paths(raw: dict, base: Path) -> dict:
    raw = copy.deepcopy(raw)

    def fix(p):
        return p if p is None or Path(p).is_absolute() else str(base / p)

    if isinstance(raw.get("out"), str):
        raw["out"] = fix(raw["out"])
    if isinstance(raw.get("stimuli"), dict):
        for k in ("folder", "zip", "npz", "hdf5"):
            if isinstance(raw["stimuli"].get(k), str):
                raw["stimuli"][k] = fix(raw["stimuli"][k])
    if isinstance(raw.get("dnns"), dict):
        for d in raw["dnns"].values():
            for key in ("features", "encoding_features"):
                if isinstance(d, dict) and isinstance(d.get(key), str):
                    d[key] = fix(d[key])
                elif isinstance(d, dict) and isinstance(d.get(key), list):
                    d[key] = [fix(f) if isinstance(f, str) else f for f in d[key]]
            if isinstance(d, dict) and isinstance(d.get("feature_index"), str):
                d["feature_index"] = fix(d["feature_index"])
            model = d.get("model") if isinstance(d, dict) else None
            if isinstance(model, str) and model.split(":", 1)[0] in ("onnx", "torchscript") and ":" in model:
                kind, file = model.split(":", 1)  # a network file, like every other path of the config
                d["model"] = f"{kind}:{fix(file)}"
    if isinstance(raw.get("dataset"), dict) and isinstance(raw["dataset"].get("path"), str):
        raw["dataset"]["path"] = fix(raw["dataset"]["path"])
    return raw


def _local_dataset(spec: dict) -> dict:
    """Check ``dataset: {format: ..., path: ..., ...}`` (local files, no registry entry)."""
    fmt = spec["format"]
    if fmt not in DATASET_FORMATS:
        raise _err("dataset.format", f"one of {sorted(DATASET_FORMATS)}", fmt)
    allowed = DATASET_FORMATS[fmt] | {"format"}
    bad = sorted(set(spec) - allowed)
    if bad:
        raise ValueError(f"config key 'dataset.{bad[0]}' is not known for format {fmt!r}; expected one of {sorted(allowed)}")
    path = spec.get("path")
    if not isinstance(path, str) or not path:
        raise _err("dataset.path", "a file or folder path (may hold {subject} / {split})", path)
    splits = spec.get("splits")
    if splits is not None and not (isinstance(splits, dict) and splits and set(splits) <= {"train", "test"}
                                   and all(isinstance(v, str) for v in splits.values())):
        raise _err("dataset.splits", "{train: VALUE, test: VALUE} (substituted for {split} in path)", splits)
    for key in ("label",):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise _err(f"dataset.{key}", "a metadata key name", spec[key])
    if fmt == "bhscore" and spec.get("features", "features") not in ("features", "features_all"):
        raise _err("dataset.features", "'features' or 'features_all' (BHscore's feature folders)", spec["features"])
    if spec.get("options") is not None and not isinstance(spec["options"], dict):
        raise _err("dataset.options", "a mapping of loader options", spec["options"])
    return {k: copy.deepcopy(v) for k, v in spec.items()}


def validate(raw: dict, source: str = "<dict>") -> Experiment:
    """Check every key of a raw config; return the resolved :class:`Experiment`."""
    if not isinstance(raw, dict):
        raise ValueError(f"config must be a mapping; got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"config key '{unknown[0]}' is not known; expected one of {sorted(DEFAULTS)}")
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if isinstance(DEFAULTS[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise _err(key, "a mapping", value)
            cfg[key] = _merge(DEFAULTS[key], value, key)
        else:
            cfg[key] = value

    name = cfg["name"]
    if not isinstance(name, str) or not name:
        raise _err("name", "a non-empty string", name)
    if not isinstance(cfg["out"], (str, Path)) or not str(cfg["out"]):
        raise _err("out", "an output folder path", cfg["out"])
    seed = cfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _err("seed", "a non-negative integer", seed)

    analyses = cfg["analyses"]
    if isinstance(analyses, str):
        analyses = [analyses]
    if not isinstance(analyses, list) or not analyses or any(a not in ANALYSES for a in analyses):
        raise _err("analyses", f"a non-empty list drawn from {list(ANALYSES)}", cfg["analyses"])

    # dnns
    dnns_raw = cfg["dnns"]
    if not isinstance(dnns_raw, dict) or not dnns_raw:
        raise _err("dnns", "a mapping {name: {model: ..., layers: [...]}} with at least one DNN", dnns_raw)
    dnns: dict[str, DNN] = {}
    for dname, d in dnns_raw.items():
        key = f"dnns.{dname}"
        if not isinstance(dname, str) or not dname or "/" in dname:
            raise _err("dnns", "DNN names that are non-empty strings without '/'", dname)
        if not isinstance(d, dict):
            raise _err(key, "a mapping with 'model' (or 'features') and 'layers'", d)
        bad = sorted(set(d) - _DNN_KEYS)
        if bad:
            raise ValueError(f"config key '{key}.{bad[0]}' is not known; expected one of {sorted(_DNN_KEYS)}")
        layers = _str_list(d.get("layers"), f"{key}.layers", allow_none=False)
        if len(layers) < 2 and "encoding" in analyses:
            raise _err(f"{key}.layers", "at least 2 layers in hierarchy order (encoding BH score)", layers)
        model = d.get("model")
        if model is not None and not isinstance(model, str):
            raise _err(f"{key}.model", "a model name such as 'torchvision:alexnet'", model)
        features = d.get("features")
        if features is not None and not (isinstance(features, str) or (
                isinstance(features, list) and features and all(isinstance(f, str) and f for f in features))):
            raise _err(f"{key}.features", "a folder path or a list of folder paths", features)
        enc_features = d.get("encoding_features")
        if enc_features is not None and not (isinstance(enc_features, str) or (
                isinstance(enc_features, list) and enc_features and all(isinstance(f, str) and f for f in enc_features))):
            raise _err(f"{key}.encoding_features", "a folder path or a list of folder paths", enc_features)
        if enc_features is not None and model is not None:
            raise _err(f"{key}.encoding_features", "no value with 'model' (a feature tree for the encoding analysis "
                       "of a DNN read from 'features')", enc_features)
        feature_index = d.get("feature_index")
        if feature_index is not None and not isinstance(feature_index, str):
            raise _err(f"{key}.feature_index", "null or the path of a bdpy feature_index file", feature_index)
        if model is None and features is None and d.get("dir") is None:
            raise _err(key, "'model' (a brainlike.models name) or 'features' (a feature tree)", d)
        pretrained = d.get("pretrained", True)
        if not isinstance(pretrained, bool):
            raise _err(f"{key}.pretrained", "true or false", pretrained)
        dseed = d.get("seed", 0)
        if isinstance(dseed, bool) or not isinstance(dseed, int) or dseed < 0:
            raise _err(f"{key}.seed", "a non-negative integer (the seed of random weights)", dseed)
        model_options = d.get("model_options") or {}
        if not isinstance(model_options, dict) or not all(isinstance(k, str) for k in model_options):
            raise _err(f"{key}.model_options", "a mapping of the model loader's options (e.g. {input_size: 227})",
                       model_options)
        labels = _str_list(d.get("layer_labels"), f"{key}.layer_labels")
        if labels is not None and len(labels) != len(layers):
            raise _err(f"{key}.layer_labels", f"{len(layers)} labels (one per layer)", labels)
        bs = d.get("batch_size", 32)
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise _err(f"{key}.batch_size", "a positive integer", bs)
        input_size = d.get("input_size")
        if input_size is not None and (isinstance(input_size, bool) or not isinstance(input_size, int)
                                       or input_size < 16):
            raise _err(f"{key}.input_size", "null or an integer >= 16 (pixels)", input_size)
        control = d.get("control")
        if control is not None and control not in CONTROLS:
            raise _err(f"{key}.control", f"null or one of {list(CONTROLS)}", control)
        dnns[dname] = DNN(name=dname, layers=layers, model=model, pretrained=pretrained, seed=dseed,
                          model_options=dict(model_options), features=features,
                          dir=d.get("dir"), layer_labels=labels, batch_size=bs, control=control,
                          input_size=input_size, feature_index=feature_index, encoding_features=enc_features)

    subjects = _str_list(cfg["subjects"], "subjects")
    rois = _str_list(cfg["rois"], "rois")
    if rois is not None and len(rois) < 2 and "encoding" in analyses:
        raise _err("rois", "at least 2 ROIs in hierarchy order (encoding BH score)", rois)

    dataset = cfg["dataset"]
    if dataset is not None:
        if isinstance(dataset, str):
            dataset = {"name": dataset}
        if not isinstance(dataset, dict):
            raise _err("dataset", "a dataset name or {name: ..., options: {...}}", dataset)
        if "format" in dataset:
            dataset = _local_dataset(dataset)
        else:
            bad = sorted(set(dataset) - _DATASET_KEYS)
            if bad:
                raise ValueError(f"config key 'dataset.{bad[0]}' is not known; expected one of "
                                 f"{sorted(_DATASET_KEYS)}, or 'format' and 'path' for local files")
            if not isinstance(dataset.get("name"), str):
                raise _err("dataset.name", "a registered dataset name (brainlike.datasets.list_datasets())",
                           dataset.get("name"))
            if not isinstance(dataset.get("options", {}), dict):
                raise _err("dataset.options", "a mapping of loader options", dataset.get("options"))
            dataset = {"name": dataset["name"], "options": dict(dataset.get("options") or {}),
                       "subject_option": dataset.get("subject_option", "subject")}
    stimuli = cfg["stimuli"]
    if stimuli is not None:
        if not isinstance(stimuli, dict) or not (set(stimuli) & {"folder", "zip", "npz", "hdf5"}):
            raise _err("stimuli", "{folder: PATH} | {zip: PATH} | {npz: PATH, key: NAME} | {hdf5: PATH, key: NAME}",
                       stimuli)
        bad = sorted(set(stimuli) - _STIMULI_KEYS)
        if bad:
            raise ValueError(f"config key 'stimuli.{bad[0]}' is not known; expected one of {sorted(_STIMULI_KEYS)}")

    dec = cfg["decoding"]
    if "decodability" in analyses and "units_per_layer" not in (raw.get("decoding") or {}):
        dec["units_per_layer"] = None  # Horikawa et al. 2019: every unit of every layer
    _number(dec, "alpha", "decoding", minimum=0, strict=True)
    _number(dec, "n_feat", "decoding", integer=True, minimum=0)
    _number(dec, "units_per_layer", "decoding", integer=True, minimum=1, allow_none=True)
    _number(dec, "chunk_size", "decoding", integer=True, minimum=1)
    _number(dec, "voxel_cache_mb", "decoding", integer=True, minimum=0)
    if dec["dtype"] not in ("float32", "float64"):
        raise _err("decoding.dtype", "'float32' or 'float64'", dec["dtype"])
    enc = cfg["encoding"]
    alphas = enc["alphas"]
    if isinstance(alphas, (int, float)) and not isinstance(alphas, bool):
        alphas = [alphas]
    if (not isinstance(alphas, (list, tuple)) or not alphas
            or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and a > 0
                       for a in alphas)):
        raise _err("encoding.alphas", "a non-empty list of finite positive numbers", enc["alphas"])
    enc["alphas"] = [float(a) for a in alphas]
    _number(enc, "cv", "encoding", integer=True, minimum=2)
    if enc["method"] not in ENCODING_METHODS:
        raise _err("encoding.method", f"one of {list(ENCODING_METHODS)}", enc["method"])
    _number(enc, "alpha", "encoding", minimum=0, strict=True)
    _number(enc, "n_feat", "encoding", integer=True, minimum=1)
    _number(enc, "voxels_per_job", "encoding", integer=True, minimum=1)
    _number(enc, "memory_mb", "encoding", minimum=0, strict=True)
    _number(enc, "chunk_size", "encoding", integer=True, minimum=1)
    if enc["dtype"] not in ("float32", "float64"):
        raise _err("encoding.dtype", "'float32' or 'float64'", enc["dtype"])
    sc = cfg["scores"]
    _number(sc, "pval", "scores", minimum=0, strict=True)
    if sc["pval"] >= 1:
        raise _err("scores.pval", "a number in (0, 1)", sc["pval"])
    _number(sc, "n_layers", "scores", integer=True, minimum=2, allow_none=True)
    _number(sc, "n_repeat", "scores", integer=True, minimum=1)
    _number(sc, "voxels_per_roi", "scores", integer=True, minimum=1, allow_none=True)
    _number(sc, "n_boot", "scores", integer=True, minimum=0)
    _number(sc, "n_perm", "scores", integer=True, minimum=0)
    _number(sc, "ci", "scores", minimum=0, strict=True)
    if sc["ci"] >= 1:
        raise _err("scores.ci", "a number in (0, 1)", sc["ci"])
    ex = cfg["execution"]
    check_scheduler(ex["scheduler"], "execution.scheduler")
    _number(ex, "n_workers", "execution", integer=True, minimum=1, allow_none=True)
    _number(ex, "threads_per_worker", "execution", integer=True, minimum=1)
    _number(ex, "retries", "execution", integer=True, minimum=0)
    _number(ex, "lease_s", "execution", minimum=0, strict=True)
    if not np.isfinite(ex["lease_s"]):
        raise _err("execution.lease_s", "a finite number of seconds > 0", ex["lease_s"])
    if not isinstance(cfg["report"], bool):
        raise _err("report", "true or false", cfg["report"])
    np.asarray(enc["alphas"])  # sanity
    return Experiment(name=name, out=Path(cfg["out"]), dnns=dnns, analyses=list(analyses), dataset=dataset,
                      stimuli=stimuli, subjects=subjects, rois=rois, decoding=dec, encoding=enc, scores=sc,
                      execution=ex, seed=seed, report=cfg["report"], raw=copy.deepcopy(raw), source=source)
