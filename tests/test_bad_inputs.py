"""Bad inputs and faults, tried as a new user would: every one ends in a clear error naming the
argument, key, id or file at fault (CLI: one line on stderr, exit code 2), or in the correct result.

Sections: CLI arguments, configs (``load_config``), ``--check`` / ``check_experiment`` (deep: the
data, models, layers, feature trees, scheduler), data files, degenerate data in a run, the Python
API (scores and estimators), and the seams other parts own (feature stores, results folders,
identity, registries). docs/reliability.md is the table of these cases.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.cli import main
from brainlike.pipeline import check_experiment, load_config, run_experiment
from brainlike.pipeline.config import DuplicateKeyError

from test_pipeline import make_experiment, small_config

BASE_DNN = "dnns: {net: {model: m, layers: [a, b]}}\n"


def one_line_error(capsys, argv, *needles, rc=2):
    """Run the CLI in-process; it must exit ``rc`` with exactly one stderr line containing ``needles``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == rc, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert str(n) in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def planted(rng):
    return make_experiment(rng)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# =============================================================================================== CLI
def test_cli_real_process_exit_code_and_one_line(tmp_path):
    """The installed command, not main(): exit status 2 and one line on stderr."""
    done = subprocess.run([sys.executable, "-m", "brainlike", "run", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "missing.yaml" in done.stderr


def test_cli_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        main(["--debug", "run", str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize("argv, needles", [
    (["run"], ["the following arguments are required: config"]),
    (["nonsense"], ["invalid choice: 'nonsense'"]),
    (["run", "x.yaml", "--workers", "x"], ["--workers", "invalid int value: 'x'"]),
    (["run", "x.yaml", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["demo", "--images", "many"], ["--images", "invalid int value"]),
    (["report", "r", "--pval", "x"], ["--pval", "invalid float value"]),
    (["extract", "--model", "m"], ["the following arguments are required"]),
    (["reproduce", "nonaka2020"], ["invalid choice: 'nonaka2020'"]),
    (["benchmark", "v5"], ["benchmark name must be one of ['v4-cowley2023'", "got 'v5'"]),
    (["datasets", "frobnicate"], ["invalid choice: 'frobnicate'"]),
], ids=["run-no-config", "unknown-command", "workers-not-int", "unknown-option", "demo-images-not-int",
        "report-pval-not-float", "extract-missing-required", "reproduce-unknown", "benchmark-unknown",
        "datasets-unknown-action"])
def test_cli_bad_arguments_are_one_line(capsys, argv, needles):
    one_line_error(capsys, argv, *needles)


def test_cli_run_missing_config_names_it(capsys, tmp_path):
    one_line_error(capsys, ["run", str(tmp_path / "nope.yaml")], "nope.yaml", "not found")


def test_cli_run_workers_zero_names_the_key(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    one_line_error(capsys, ["run", str(cfg), "--workers", "0"], "execution.n_workers")


def test_cli_run_bad_scheduler_address(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    one_line_error(capsys, ["run", str(cfg), "--check", "--scheduler", "tcp//host"], "execution.scheduler",
                   "tcp//host")


def test_cli_run_out_is_a_file(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    f = write(tmp_path / "file.txt", "x")
    one_line_error(capsys, ["run", str(cfg), "--out", str(f)], "--out", "file.txt", "is a file")


def test_cli_run_out_below_a_file(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    f = write(tmp_path / "file.txt", "x")
    one_line_error(capsys, ["run", str(cfg), "--out", str(f / "sub")], "--out", "file.txt")


def _read_only_folder(tmp_path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    return Path("/proc/brainlike-out")  # not writable even for root


def test_cli_run_out_read_only_folder(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    ro = _read_only_folder(tmp_path)
    one_line_error(capsys, ["run", str(cfg), "--out", str(ro / "out")], "--out", "not writable")


def test_cli_demo_out_is_a_file(capsys, tmp_path):
    f = write(tmp_path / "demo.txt", "x")
    one_line_error(capsys, ["demo", "--out", str(f)], "--out", "demo.txt", "is a file")


def test_cli_demo_out_read_only(capsys, tmp_path):
    one_line_error(capsys, ["demo", "--out", str(_read_only_folder(tmp_path) / "d")], "--out", "not writable")


@pytest.mark.parametrize("option, value", [("--workers", "0"), ("--images", "0"), ("--units-per-layer", "1")])
def test_cli_demo_numbers_out_of_range(capsys, tmp_path, option, value):
    one_line_error(capsys, ["demo", "--out", str(tmp_path / "d"), option, value], option)


def test_cli_run_features_root_missing(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    one_line_error(capsys, ["run", str(cfg), "--features", str(tmp_path / "nofeat")], "--features", "nofeat")


def test_cli_report_missing_folder(capsys, tmp_path):
    one_line_error(capsys, ["report", str(tmp_path / "nores")], "nores")


def test_cli_report_folder_without_tables(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, ["report", str(tmp_path / "empty")], "empty", "no results tables")


def test_cli_extract_missing_images(capsys, tmp_path):
    one_line_error(capsys, ["extract", "--model", "efficientnet_lite0", "--images", str(tmp_path / "imgs"),
                            "--layers", "block1", "--out", str(tmp_path / "s")], "--images", "imgs")


def test_cli_extract_unknown_model(capsys, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    one_line_error(capsys, ["extract", "--model", "nonsense_net", "--images", str(tmp_path / "imgs"),
                            "--layers", "x", "--out", str(tmp_path / "s")], "nonsense_net")


def test_cli_datasets_info_unknown(capsys):
    one_line_error(capsys, ["datasets", "info", "no_such_data"], "no_such_data")


def test_cli_config_not_a_mapping(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", "- a\n- b\n")
    one_line_error(capsys, ["run", str(cfg), "--check"], "c.yaml", "mapping")


# =========================================================================================== configs
def cfg_with(section: str | None, key: str, value) -> dict:
    cfg = {"dnns": {"net": {"model": "m", "layers": ["a", "b"]}}}
    if section is None:
        cfg[key] = value
    else:
        cfg[section] = {key: value}
    return cfg


NAN, INF = float("nan"), float("inf")
BAD_NUMBERS = [
    ("decoding", "alpha", NAN), ("decoding", "alpha", INF), ("decoding", "alpha", -1.0), ("decoding", "alpha", 0),
    ("decoding", "alpha", "x"), ("decoding", "n_feat", -3), ("decoding", "n_feat", 1.5),
    ("decoding", "units_per_layer", 0), ("decoding", "chunk_size", 0), ("decoding", "voxel_cache_mb", -1),
    ("decoding", "dtype", "float16"), ("encoding", "alphas", [INF]), ("encoding", "alphas", [NAN]),
    ("encoding", "alphas", []), ("encoding", "alphas", [-1.0]), ("encoding", "alphas", "x"),
    ("encoding", "cv", 1), ("encoding", "cv", NAN), ("encoding", "dtype", "int8"), ("encoding", "method", "magic"),
    ("encoding", "alpha", NAN), ("encoding", "voxels_per_job", 0), ("encoding", "memory_mb", INF),
    ("scores", "pval", NAN), ("scores", "pval", 0), ("scores", "pval", 1), ("scores", "pval", 1.5),
    ("scores", "pval", -0.1), ("scores", "n_layers", 1), ("scores", "n_repeat", 0), ("scores", "n_boot", -1),
    ("scores", "n_perm", -1), ("scores", "ci", 1), ("scores", "ci", NAN), ("scores", "ci", 0),
    ("scores", "voxels_per_roi", 0), ("execution", "n_workers", 0), ("execution", "threads_per_worker", 0),
    ("execution", "retries", -1), ("execution", "scheduler", ""), ("execution", "scheduler", "tcp//x"),
    ("execution", "scheduler", "tcp://h:0"), ("execution", "scheduler", "tcp://h:70000"),
    ("execution", "scheduler", 5), (None, "report", "yes"), (None, "seed", -1), (None, "seed", 1.5),
    (None, "seed", True), (None, "name", ""), (None, "out", 5), (None, "analyses", []),
    (None, "analyses", ["nonsense"]),
]


@pytest.mark.parametrize("section, key, value", BAD_NUMBERS,
                         ids=[f"{s}.{k}={v!r}" if s else f"{k}={v!r}" for s, k, v in BAD_NUMBERS])
def test_config_value_errors_name_the_key(section, key, value):
    name = f"{section}.{key}" if section else key
    with pytest.raises(ValueError, match=f"config key '{name}'"):
        load_config(cfg_with(section, key, value))


DNN_PROBLEMS = [
    ({"layers": ["a", "b"]}, "dnns.net"),  # neither model nor features
    ({"model": "m", "layers": ["a", "a"]}, "dnns.net.layers"),
    ({"model": "m", "layers": "a"}, "dnns.net.layers"),
    ({"model": "m", "layers": ["a", "b"], "pretrained": "yes"}, "dnns.net.pretrained"),
    ({"model": "m", "layers": ["a", "b"], "batch_size": 0}, "dnns.net.batch_size"),
    ({"model": "m", "layers": ["a", "b"], "input_size": 8}, "dnns.net.input_size"),
    ({"model": "m", "layers": ["a", "b"], "control": "x"}, "dnns.net.control"),
    ({"model": "m", "layers": ["a", "b"], "layer_labels": ["x"]}, "dnns.net.layer_labels"),
    ({"model": "m", "layers": ["a", "b"], "colour": 1}, "dnns.net.colour"),
    ({"model": 5, "layers": ["a", "b"]}, "dnns.net.model"),
]


@pytest.mark.parametrize("dnn, key", DNN_PROBLEMS, ids=[k for _, k in DNN_PROBLEMS])
def test_config_dnn_errors_name_the_key(dnn, key):
    with pytest.raises(ValueError, match=f"config key '{key}"):
        load_config({"dnns": {"net": dnn}})


@pytest.mark.parametrize("cfg, key", [
    ({}, "dnns"),
    ({"dnns": {}}, "dnns"),
    ({"dnns": {"a/b": {"model": "m", "layers": ["a", "b"]}}}, "dnns"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "colour": 1}, "colour"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "decoding": {"alfa": 1}}, "decoding.alfa"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "decoding": 5}, "decoding"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "rois": ["V1", "V1"]}, "rois"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "subjects": [""]}, "subjects"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "dataset": 5}, "dataset"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "dataset": {"name": "x", "colour": 1}}, "dataset.colour"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "dataset": {"name": "x", "options": 3}}, "dataset.options"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "stimuli": {}}, "stimuli"),
    ({"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "stimuli": {"zip": "a.zip", "colour": 1}}, "stimuli.colour"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_config_structure_errors_name_the_key(cfg, key):
    with pytest.raises(ValueError, match=f"config key '{key}"):
        load_config(cfg)


@pytest.mark.parametrize("text, where", [
    (BASE_DNN + "scores:\n  pval: 0.05\n  pval: 0.01\n", "duplicate key 'pval' on line 4 (first given on line 3)"),
    (BASE_DNN + "seed: 1\nseed: 2\n", "duplicate key 'seed' on line 3 (first given on line 2)"),
    ("dnns:\n  net: {model: m, layers: [a, b], model: n}\n", "duplicate key 'model' on line 2"),
])
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path, text, where):
    path = write(tmp_path / "dup.yaml", text)
    with pytest.raises(DuplicateKeyError, match=r"dup\.yaml: " + where.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


def test_duplicate_json_key_is_refused(tmp_path):
    path = write(tmp_path / "dup.json", '{"dnns": {"n": {"model": "m", "layers": ["a", "b"]}}, "seed": 1, "seed": 2}')
    with pytest.raises(DuplicateKeyError, match=r"dup\.json: duplicate key 'seed'"):
        load_config(path)


@pytest.mark.parametrize("name, content, needle", [
    ("syntax.yaml", "dnns: [a, b\nseed: 1\n", "not valid YAML"),
    ("list.yaml", "- a\n", "expected a mapping"),
    ("empty.yaml", "", "expected a mapping"),
    ("bad.json", "{dnns: 1}", "not valid JSON"),
    ("nan.json", '{"seed": NaN}', "NaN is not a valid JSON number"),
])
def test_config_file_errors_name_the_file(tmp_path, name, content, needle):
    path = write(tmp_path / name, content)
    with pytest.raises(ValueError, match=needle) as err:
        load_config(path)
    assert name in str(err.value)


def test_config_binary_file_names_it(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match=r"bin\.yaml: not a text file"):
        load_config(path)


def test_config_nan_written_in_yaml(tmp_path):
    """`alpha: .nan` and `alphas: [.inf]` as YAML spells them."""
    for body, key in (("decoding: {alpha: .nan}\n", "decoding.alpha"), ("encoding: {alphas: [.inf]}\n",
                                                                        "encoding.alphas")):
        with pytest.raises(ValueError, match=f"config key '{key}'"):
            load_config(write(tmp_path / "c.yaml", BASE_DNN + body))


def test_cli_pval_nan_fails_at_check_time(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN + "scores: {pval: .nan}\n")
    one_line_error(capsys, ["run", str(cfg), "--check"], "scores.pval", "finite")
    one_line_error(capsys, ["run", str(cfg), "--out", str(tmp_path / "o")], "scores.pval")
    assert not (tmp_path / "o").exists()  # no job ran


def test_valid_config_still_loads(tmp_path):
    exp = load_config(write(tmp_path / "ok.yaml", BASE_DNN + "scores: {pval: 0.01}\nencoding: {alphas: [1, 1e3]}\n"))
    assert exp.scores["pval"] == 0.01 and exp.encoding["alphas"] == [1.0, 1000.0]


# ======================================================================== --check / check_experiment
def test_check_passes_and_writes_nothing(tmp_path, planted):
    feats, brains = planted
    rep = check_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": feats})
    assert rep.layers["net"] == {"layer1": 60, "layer2": 50, "layer3": 40, "layer4": 30}
    assert rep.subjects["s1"]["n_voxels"] == {"R1": 25, "R2": 25, "R3": 25, "R4": 25}
    assert not (tmp_path / "o").exists()


def test_check_unknown_dataset(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN + "dataset: no_such_dataset\n")
    one_line_error(capsys, ["run", str(cfg), "--check"], "dataset.name", "no_such_dataset")


def test_check_unknown_dataset_option(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN + "dataset: {name: cowley2023_v4, options: {sesion: 1}}\n")
    one_line_error(capsys, ["run", str(cfg), "--check"], "dataset.options.sesion")


def test_check_missing_dataset(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    one_line_error(capsys, ["run", str(cfg), "--check"], "'dataset' is missing")


def test_check_docs_old_example_rois_not_in_the_data(capsys, tmp_path, mirror):
    """The docs' former example (cowley2023_v4 with rois V1-V3) passed --check and could never run."""
    cfg = write(tmp_path / "c.yaml", "dataset: cowley2023_v4\nrois: [V1, V2, V3]\n"
                "dnns:\n  lite0: {model: efficientnet_lite0, layers: [block1, block4, block9, head]}\n")
    one_line_error(capsys, ["run", str(cfg), "--check"], "config key 'rois'", "['V1', 'V2', 'V3']", "V4")


def test_check_unknown_roi(tmp_path, planted):
    feats, brains = planted
    with pytest.raises(ValueError, match=r"config key 'rois': \['V9'\] not found for subject 's1'"):
        check_experiment(small_config(tmp_path / "o", rois=["R1", "V9"]), brain=brains, features={"net": feats})


def test_check_unknown_subject(tmp_path, planted):
    feats, brains = planted
    with pytest.raises(ValueError, match=r"config key 'subjects': \['s7'\] not in the brain data"):
        check_experiment(small_config(tmp_path / "o", subjects=["s7"]), brain=brains, features={"net": feats})


def test_check_given_features_miss_a_layer(tmp_path, planted):
    feats, brains = planted
    part = {k: v for k, v in feats.items() if k != "layer3"}
    with pytest.raises(ValueError, match=r"features of 'net': layers \['layer3'\] missing"):
        check_experiment(small_config(tmp_path / "o"), brain=brains, features={"net": part})


def _with_stimuli(brains):
    from brainlike.datasets import BrainData
    from brainlike.stimuli import ImageSet

    b = brains[0]
    ids = sorted(set(b.stimulus_ids))
    stim = ImageSet.from_array(np.zeros((len(ids), 16, 16, 3), np.uint8), ids=ids)
    return [BrainData(b.responses, b.stimulus_ids, rois=dict(b.rois), split=b.split, subject="s1")], stim


def test_check_unknown_model(tmp_path, planted):
    _, brains = planted
    brains, stim = _with_stimuli(brains)
    cfg = small_config(tmp_path / "o", dnns={"net": {"model": "nonsense_net", "layers": ["a", "b"]}})
    with pytest.raises(ValueError, match=r"config key 'dnns.net.model'.*nonsense_net"):
        check_experiment(cfg, brain=brains, stimuli=stim)


def test_check_unknown_layer_by_tracing_the_model(tmp_path, planted):
    _, brains = planted
    brains, stim = _with_stimuli(brains)
    cfg = small_config(tmp_path / "o", dnns={"net": {"model": "torchvision:alexnet", "pretrained": False,
                                                     "layers": ["conv1", "conv9"]}})
    with pytest.raises(ValueError, match=r"config key 'dnns.net.layers'.*unknown layer 'conv9'.*valid layers"):
        check_experiment(cfg, brain=brains, stimuli=stim)
    cfg["dnns"]["net"]["layers"] = ["conv1", "fc8"]
    rep = check_experiment(cfg, brain=brains, stimuli=stim)
    assert rep.layers["net"] == {"conv1": 64 * 55 * 55, "fc8": 1000}


def test_check_model_without_images(tmp_path, planted):
    _, brains = planted
    cfg = small_config(tmp_path / "o", dnns={"net": {"model": "torchvision:alexnet", "pretrained": False,
                                                     "layers": ["conv1", "fc8"]}})
    with pytest.raises(ValueError, match=r"DNN 'net' needs stimulus images"):
        check_experiment(cfg, brain=brains)


def test_check_missing_stimulus_image(tmp_path, planted):
    from brainlike.stimuli import ImageSet

    feats, brains = planted
    stim = ImageSet.from_array(np.zeros((3, 8, 8, 3), np.uint8), ids=["im000", "im001", "im002"])
    with pytest.raises(ValueError, match=r"stimulus id\(s\) of the brain data have no image, e.g. \['im003'"):
        check_experiment(small_config(tmp_path / "o"), brain=brains, stimuli=stim, features={"net": feats})


def test_check_nan_voxels(tmp_path, planted):
    from brainlike.datasets import BrainData

    feats, brains = planted
    b = brains[0]
    r = b.responses.copy()
    r[0, 3] = np.nan
    bad = BrainData(r, b.stimulus_ids, rois=dict(b.rois), split=b.split, subject="s1", nan="ignore")
    with pytest.raises(ValueError, match=r"1 ROI voxel\(s\) of subject 's1' hold NaN/inf"):
        check_experiment(small_config(tmp_path / "o"), brain=[bad], features={"net": feats})


def test_check_no_split(tmp_path, planted):
    from brainlike.datasets import BrainData

    feats, brains = planted
    b = brains[0]
    bad = BrainData(b.responses, b.stimulus_ids, rois=dict(b.rois), subject="s1")
    with pytest.raises(ValueError, match=r"subject 's1' has no train/test split"):
        check_experiment(small_config(tmp_path / "o"), brain=[bad], features={"net": feats})


def test_check_empty_roi(tmp_path, planted):
    from brainlike.datasets import BrainData

    feats, brains = planted
    b = brains[0]
    rois = dict(b.rois)
    rois["R2"] = np.zeros(b.n_voxels, bool)
    bad = BrainData(b.responses, b.stimulus_ids, rois=rois, split=b.split, subject="s1")
    with pytest.raises(ValueError, match=r"ROI\(s\) \['R2'\] of subject 's1' have no voxels"):
        check_experiment(small_config(tmp_path / "o"), brain=[bad], features={"net": feats})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_scheduler_that_does_not_answer(tmp_path, planted):
    feats, brains = planted
    addr = f"tcp://127.0.0.1:{_free_port()}"
    cfg = small_config(tmp_path / "o", execution={"scheduler": addr})
    with pytest.raises(ValueError, match=f"config key 'execution.scheduler': no Dask scheduler answers at {addr}"):
        check_experiment(cfg, brain=brains, features={"net": feats})
    assert check_experiment(cfg, brain=brains, features={"net": feats}, connect=False).rois


def test_check_scheduler_that_answers(tmp_path, planted):
    feats, brains = planted
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        cfg = small_config(tmp_path / "o", execution={"scheduler": f"127.0.0.1:{server.getsockname()[1]}"})
        assert "execution: 127.0.0.1" in str(check_experiment(cfg, brain=brains, features={"net": feats}))


def _feature_tree(root: Path, layers, ids):
    """BHscore layout features/<layer>/<image>.mat with array 'feat' (1, n_units): BHscore README,
    bdpy dataform/features.py."""
    from scipy.io import savemat

    for layer in layers:
        (root / layer).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(ids):
            savemat(root / layer / f"{i}.mat", {"feat": np.full((1, 3), k, np.float32)})


def test_check_feature_tree_folder_missing(tmp_path, planted):
    _, brains = planted
    cfg = small_config(tmp_path / "o", dnns={"net": {"features": str(tmp_path / "tree"), "layers": ["c1", "c2"]}})
    with pytest.raises(FileNotFoundError, match=r"config key 'dnns.net.features': feature folder not found"):
        check_experiment(cfg, brain=brains)


def test_check_feature_tree_layer_missing(tmp_path, planted):
    _, brains = planted
    ids = sorted(set(brains[0].stimulus_ids))
    _feature_tree(tmp_path / "tree", ["c1"], ids)
    cfg = small_config(tmp_path / "o", dnns={"net": {"features": str(tmp_path / "tree"), "layers": ["c1", "c2"]}})
    with pytest.raises(FileNotFoundError, match=r"no folder for layer 'c2'"):
        check_experiment(cfg, brain=brains)


def test_check_feature_tree_image_missing(tmp_path, planted):
    _, brains = planted
    ids = sorted(set(brains[0].stimulus_ids))
    _feature_tree(tmp_path / "tree", ["c1", "c2"], ids)
    (tmp_path / "tree" / "c2" / f"{ids[4]}.mat").unlink()
    cfg = small_config(tmp_path / "o", dnns={"net": {"features": str(tmp_path / "tree"), "layers": ["c1", "c2"]}},
                       rois=["R1", "R2"])
    with pytest.raises(FileNotFoundError, match=rf"no feature file for 1 stimulus id\(s\).*\['{ids[4]}'\]"):
        check_experiment(cfg, brain=brains)


def test_check_dir_without_features_root(tmp_path, planted):
    _, brains = planted
    cfg = small_config(tmp_path / "o", dnns={"net": {"dir": "caffe/AlexNet", "layers": ["c1", "c2"]}})
    with pytest.raises(ValueError, match=r"config key 'dnns.net'.*--features ROOT"):
        check_experiment(cfg, brain=brains)


def test_check_out_is_a_file(tmp_path, planted):
    feats, brains = planted
    f = write(tmp_path / "f", "x")
    with pytest.raises(NotADirectoryError, match="config key 'out'"):
        check_experiment(small_config(f), brain=brains, features={"net": feats})


# ======================================================================================= data files
def test_truncated_npz_image_file_is_named(tmp_path):
    from brainlike.stimuli import ImageSet

    np.savez(tmp_path / "imgs.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    data = (tmp_path / "imgs.npz").read_bytes()
    (tmp_path / "imgs.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"imgs\.npz as an \.npz file"):
        ImageSet.from_npz(tmp_path / "imgs.npz", "images")


def test_truncated_hdf5_image_file_is_named(tmp_path):
    import h5py

    from brainlike.stimuli import ImageSet

    with h5py.File(tmp_path / "imgs.h5", "w") as f:
        f["images"] = np.zeros((4, 8, 8, 3), np.uint8)
    data = (tmp_path / "imgs.h5").read_bytes()
    (tmp_path / "imgs.h5").write_bytes(data[:1000])
    with pytest.raises(ValueError, match=r"imgs\.h5 as an HDF5 file"):
        ImageSet.from_hdf5(tmp_path / "imgs.h5", "images")


def test_npz_image_key_missing_is_named(tmp_path):
    from brainlike.stimuli import ImageSet

    np.savez(tmp_path / "imgs.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"key must be one of \['images'\] in .*imgs\.npz; got 'pics'"):
        ImageSet.from_npz(tmp_path / "imgs.npz", "pics")


def test_image_zip_that_is_not_a_zip(tmp_path):
    from brainlike.stimuli import ImageSet

    write(tmp_path / "imgs.zip", "not a zip")
    with pytest.raises(ValueError, match=r"imgs\.zip"):
        ImageSet.from_zip(tmp_path / "imgs.zip")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_bhscore_mat_is_named(tmp_path, damage):
    from brainlike.features import import_bhscore

    _feature_tree(tmp_path / "tree", ["c1", "c2"], ["a", "b", "c"])
    f = tmp_path / "tree" / "c2" / "b.mat"
    data = f.read_bytes()
    f.write_bytes(b"garbage!" * 4 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"c2/b\.mat"):
        import_bhscore(tmp_path / "tree")


def test_bhscore_mat_missing_in_one_layer_is_an_error(tmp_path):
    """One .mat missing: never 5 of 6 images without a word."""
    from brainlike.features import import_bhscore

    _feature_tree(tmp_path / "tree", ["c1", "c2"], [f"im{i}" for i in range(6)])
    (tmp_path / "tree" / "c2" / "im5.mat").unlink()
    with pytest.raises(ValueError, match=r"im5"):
        import_bhscore(tmp_path / "tree")
    (tmp_path / "tree" / "c1" / "im5.mat").unlink()  # missing from every layer: asked for by id, still named
    with pytest.raises(ValueError, match=r"no file for ids \['im5'\]"):
        import_bhscore(tmp_path / "tree", ids=[f"im{i}" for i in range(6)])


def test_bhscore_mat_without_feat_is_named(tmp_path):
    from scipy.io import savemat

    from brainlike.features import import_bhscore

    _feature_tree(tmp_path / "tree", ["c1", "c2"], ["a", "b"])
    savemat(tmp_path / "tree" / "c1" / "a.mat", {"features": np.zeros((1, 3))})
    with pytest.raises(ValueError, match=r"a\.mat holds no variable 'feat'"):
        import_bhscore(tmp_path / "tree")


def test_truncated_bdata_hdf5_is_named(tmp_path):
    from brainlike.datasets.bdata import load_bdata

    (tmp_path / "sub.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises((ValueError, OSError), match=r"sub\.h5"):
        load_bdata(tmp_path / "sub.h5")


def test_check_truncated_stimuli_npz_names_it(tmp_path, planted):
    feats, brains = planted
    np.savez(tmp_path / "imgs.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    data = (tmp_path / "imgs.npz").read_bytes()
    (tmp_path / "imgs.npz").write_bytes(data[: len(data) // 3])
    cfg = small_config(tmp_path / "o", stimuli={"npz": str(tmp_path / "imgs.npz"), "key": "images"})
    with pytest.raises(ValueError, match=r"imgs\.npz as an \.npz file"):
        check_experiment(cfg, brain=brains, features={"net": feats})


# ============================================================================ degenerate data in a run
def _replaced(feats, layer, values):
    """The FeatureSet with one layer's array replaced (same stimulus ids)."""
    from brainlike.features import FeatureSet

    arrays = {k: np.asarray(v) for k, v in feats.items()}
    arrays[layer] = values
    return FeatureSet(arrays, list(feats.ids))


def _run(tmp_path, feats, brains, name="o", **kw):
    return run_experiment(small_config(tmp_path / name, **kw), brain=brains, features={"net": feats}, progress=False)


def test_dead_layer_gives_nan_scores_with_the_reason(tmp_path, planted):
    feats, brains = planted
    feats = _replaced(feats, "layer3", np.zeros_like(np.asarray(feats["layer3"])))
    res = _run(tmp_path, feats, brains)
    s = res.scores.set_index("kind")
    assert s["score"].isna().all()
    assert "layer 'layer3' of subject 's1' has no usable unit: all 24 units" in s.loc["decoding", "reason"]
    assert "layer 'layer3' of subject 's1' has no usable accuracy from any ROI" in s.loc["encoding", "reason"]
    q = pd.read_parquet(res.results_dir / "data_quality.parquet")
    dead = q[(q["analysis"] == "decoding") & (q["layer"] == "layer3")]
    assert (dead["n_dead_units"] == 24).all() and (dead["n_nan"] == 24).all() and len(dead) == 4
    prov = json.loads((res.results_dir / "provenance.json").read_text())
    assert prov["inputs"]["data_quality"]["n_degenerate"] >= 4


def test_constant_roi_gives_nan_scores_with_the_reason(tmp_path, planted):
    from brainlike.datasets import BrainData

    feats, brains = planted
    b = brains[0]
    r = b.responses.copy()
    r[:, b.rois["R2"]] = 1.0
    brains = [BrainData(r, b.stimulus_ids, rois=dict(b.rois), split=b.split, subject="s1")]
    res = _run(tmp_path, feats, brains)
    s = res.scores.set_index("kind")
    assert s["score"].isna().all()
    assert "ROI 'R2' of subject 's1' has no usable accuracy from any layer" in s.loc["decoding", "reason"]
    assert "ROI 'R2' of subject 's1' has no usable voxel: all 25 voxels" in s.loc["encoding", "reason"]
    q = pd.read_parquet(res.results_dir / "data_quality.parquet")
    assert (q.loc[q["roi"] == "R2", "n_constant_voxels"] == 25).all()
    assert (q.loc[q["roi"] != "R2", "n_constant_voxels"] == 0).all()


def test_partly_degenerate_data_are_counted_exactly_and_scored(tmp_path, planted):
    from brainlike.datasets import BrainData
    from brainlike.pipeline.inputs import select_units

    feats, brains = planted
    layer2 = np.asarray(feats["layer2"]).copy()
    layer2[:, :10] = 0.0  # 10 dead units
    feats = _replaced(feats, "layer2", layer2)
    b = brains[0]
    r = b.responses.copy()
    r[:, np.flatnonzero(b.rois["R1"])[:3]] = 2.0  # 3 constant voxels
    brains = [BrainData(r, b.stimulus_ids, rois=dict(b.rois), split=b.split, subject="s1")]
    res = _run(tmp_path, feats, brains)
    q = pd.read_parquet(res.results_dir / "data_quality.parquet")
    chosen = select_units(50, 24, 0, "net", "layer2")
    n_dead = int((chosen < 10).sum())
    d2 = q[(q["analysis"] == "decoding") & (q["layer"] == "layer2")]
    assert (d2["n_dead_units"] == n_dead).all() and (d2["n_nan"] >= n_dead).all()
    e1 = q[(q["analysis"] == "encoding") & (q["roi"] == "R1")]
    assert (e1["n_constant_voxels"] == 3).all() and (e1["n_nan"] == 3).all()
    s = res.scores.set_index("kind")
    assert np.isfinite(s["score"]).all() and (s["reason"] == "").all()
    assert s.loc["decoding", "n_units"] == 96 and s.loc["decoding", "n_used"] == 96 - n_dead
    assert s.loc["encoding", "n_units"] == 100 and s.loc["encoding", "n_used"] == 97
    assert s.loc["decoding", "n_kept"] <= s.loc["decoding", "n_used"]


def test_report_shows_the_data_quality_section(tmp_path, planted):
    from brainlike.report import write_report

    feats, brains = planted
    feats = _replaced(feats, "layer3", np.zeros_like(np.asarray(feats["layer3"])))
    res = _run(tmp_path, feats, brains, analyses=["decoding"])
    html = Path(write_report(res.results_dir, tmp_path / "rep")).read_text()
    assert "<h2>Data quality</h2>" in html and "n_dead_units" in html
    assert "has no usable unit" in html


# ======================================================================================= Python API
def _accs(n_layers=3, n_rois=3, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.2, 0.6, (n_rois, n)) for _ in range(n_layers)]


@pytest.mark.parametrize("damage, needle", [
    ("inf", r"accuracies\[1\] holds 1 infinite value"),
    ("big", r"accuracies\[1\] holds 1 value\(s\) outside \[-1, 1\]"),
    ("small", r"accuracies\[1\] holds 1 value\(s\) outside \[-1, 1\]"),
    ("dead_layer", r"accuracies\[1\] has no usable accuracy \(20 unit\(s\), all NaN\)"),
    ("dead_row", r"row 2 of every accuracies\[i\] is all NaN"),
    ("empty_layer", r"accuracies\[1\] has no usable accuracy \(0 unit"),
    ("ndarray", r"accuracies must be a list"),
    ("one_layer", r"needs at least 2 layers; got 1"),
    ("one_roi", r"at least 2 rows \(ROIs\)"),
    ("rows", r"accuracies\[1\] has 2"),
    ("strings", r"accuracies\[0\] must hold numbers"),
    ("3d", r"accuracies\[0\] must be a 2-D array"),
])
def test_bh_score_rejects_bad_accuracies(damage, needle):
    from brainlike.scores import bh_score

    accs = _accs()
    if damage == "inf":
        accs[1][0, 3] = np.inf
    elif damage == "big":
        accs[1][0, 3] = 1.2
    elif damage == "small":
        accs[1][0, 3] = -1.01
    elif damage == "dead_layer":
        accs[1][:] = np.nan
    elif damage == "dead_row":
        for a in accs:
            a[2] = np.nan
    elif damage == "empty_layer":
        accs[1] = np.zeros((3, 0))
    elif damage == "ndarray":
        accs = np.stack(accs)
    elif damage == "one_layer":
        accs = accs[:1]
    elif damage == "one_roi":
        accs = [a[:1] for a in accs]
    elif damage == "rows":
        accs[1] = accs[1][:2]
    elif damage == "strings":
        accs[0] = np.array([["a", "b"], ["c", "d"]])
    elif damage == "3d":
        accs[0] = accs[0][None]
    with pytest.raises(ValueError, match=needle):
        bh_score(accs, n_samples=50)


@pytest.mark.parametrize("kwargs, needle", [
    ({"pval": NAN}, "pval must be a number in"), ({"pval": 0}, "pval must be a number in"),
    ({"pval": 2}, "pval must be a number in"), ({"n_samples": 2}, "n_samples must be an integer > 2"),
    ({"n_samples": 2.5}, "n_samples must be an integer > 2"), ({"significance": "z"}, "significance"),
    ({"n_samples": None}, "n_samples is required"),
])
def test_bh_score_rejects_bad_arguments(kwargs, needle):
    from brainlike.scores import bh_score

    with pytest.raises(ValueError, match=needle):
        bh_score(_accs(), **{"n_samples": 50, **kwargs})


def test_bh_score_correct_results_at_the_edges():
    """NaN counts as 0 (the reference); float32-rounded r = 1 is a correlation; inputs untouched."""
    from brainlike.scores import bh_score

    accs = _accs(n=200)
    with_nan = [a.copy() for a in accs]
    with_nan[0][1, :5] = np.nan
    zeros = [np.nan_to_num(a, nan=0.0) for a in with_nan]
    assert bh_score(with_nan, n_samples=50).score == bh_score(zeros, n_samples=50).score
    assert np.isnan(with_nan[0][1, :5]).all()
    accs[2][2, 0] = np.float32(1.0000001)
    assert np.isfinite(bh_score(accs, n_samples=50).score)


@pytest.mark.parametrize("call, needle", [
    (lambda S, a: S.bh_score_layer_select(a, n_layers=9, n_samples=50), r"n_layers must be an integer in \[2, 3\]"),
    (lambda S, a: S.bh_score_layer_select(a, n_layers=3, n_repeat=0, n_samples=50), "n_repeat must be a positive integer"),
    (lambda S, a: S.bh_score_encoding(a, n_voxels=0, n_samples=50), "n_voxels must be a positive integer or None"),
    (lambda S, a: S.bootstrap_bh_score(a, n_boot=0, n_samples=50), "n_boot must be a positive integer"),
    (lambda S, a: S.bootstrap_bh_score(a, level=1.0, n_samples=50), r"level must be in \(0, 1\)"),
    (lambda S, a: S.permutation_bh_score(a, alternative="less", n_samples=50), "alternative"),
    (lambda S, a: S.permutation_bh_score(a, n_perm=-1, n_samples=50), "n_perm must be a positive integer"),
    (lambda S, a: S.bootstrap_bh_score([a[0], np.full_like(a[1], np.inf)], n_samples=50), r"accuracies\[1\] holds"),
], ids=["layer_select_n_layers", "layer_select_n_repeat", "encoding_n_voxels", "bootstrap_n_boot",
        "bootstrap_level", "permutation_alternative", "permutation_n_perm", "bootstrap_inf"])
def test_score_variants_reject_bad_arguments(call, needle):
    from brainlike import scores as S

    with pytest.raises(ValueError, match=needle):
        call(S, _accs())


ESTIMATORS = ["Ridge", "RidgeCV", "PLS", "SelectiveRidge", "StreamingSelectiveRidge"]


def _estimator(name):
    from brainlike import linear

    if not hasattr(linear, name):
        pytest.skip(f"brainlike.linear has no {name}")
    kw = {"PLS": {"n_components": 1}, "SelectiveRidge": {"n_feat": 2},
          "StreamingSelectiveRidge": {"n_feat": 2}}.get(name, {})
    return getattr(linear, name)(**kw)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_refuse_one_sample(name):
    est = _estimator(name)
    with pytest.raises(ValueError, match=r"1 sample"):
        est.fit(np.ones((1, 4)), np.ones((1, 2)))


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("where", ["X", "Y"])
def test_estimators_refuse_non_finite_inputs(name, where):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 4)), rng.standard_normal((12, 2))
    (X if where == "X" else Y)[3, 1] = np.inf if where == "X" else np.nan
    with pytest.raises(ValueError, match=rf"^{where} (contains|holds) .*NaN"):
        _estimator(name).fit(X, Y)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_refuse_mismatched_rows(name):
    with pytest.raises(ValueError, match=r"X|Y"):
        _estimator(name).fit(np.ones((5, 4)), np.ones((6, 2)))


def test_pipeline_scoring_dead_layer_without_run():
    """scoring.decoding_scores on accuracies with a dead layer: NaN and the reason, never 'what is left'."""
    from brainlike.pipeline import scoring

    accs = _accs(n_layers=4, n_rois=4, n=30)
    accs[2][:] = np.nan
    sc = {"pval": 0.05, "n_layers": None, "n_repeat": 1, "n_boot": 0, "n_perm": 0, "ci": 0.95, "voxels_per_roi": None}
    r = scoring.decoding_scores({"acc": [accs], "n_test": [50]}, sc, 0, layers=["a", "b", "c", "d"],
                                rois=list("WXYZ"), subjects=["s1"])
    assert np.isnan(r["score"]) and "layer 'c' of subject 's1' has no usable unit" in r["reason"]
    accs[2][:] = 0.1
    ok = scoring.decoding_scores({"acc": [accs], "n_test": [50]}, sc, 0)
    assert np.isfinite(ok["score"]) and ok["reason"] == "" and ok["n_units"] == 120 and ok["n_used"] == 120


# ====================================================== seams owned by other parts (issue 12 items 1-6, 9, 10)
def test_features_as_plain_arrays_are_not_paired_by_position(tmp_path, planted):
    """Rows in sorted() order instead of natural order must not be paired by position."""
    feats, brains = planted
    try:
        from brainlike.features import FeatureSet
    except ImportError:  # pragma: no cover
        pytest.fail("brainlike.features.FeatureSet missing")
    plain = {k: np.asarray(v) for k, v in feats.items()}
    with pytest.raises(ValueError, match=r"carries no stimulus ids"):
        run_experiment(small_config(tmp_path / "o", analyses=["decoding"]), brain=brains, features={"net": plain},
                       progress=False)


class Handle:
    """A feature source that is not a numpy array (as a zarr array or a custom reader would be)."""

    def __init__(self, data, ids):
        self.data, self.ids, self.shape = data, list(ids), data.shape

    def read(self, units):
        return self.data[:, units]


def test_changed_middle_units_of_a_handle_are_not_reused(tmp_path, planted):
    """A non-numpy feature source whose units 8..31 change: the rerun recomputes, never the stale score."""
    feats, brains = planted
    ids = list(feats.ids)
    first = {k: Handle(np.asarray(v).copy(), ids) for k, v in feats.items()}
    cfg = small_config(tmp_path / "o", analyses=["decoding"])
    run_experiment(cfg, brain=brains, features={"net": first}, progress=False)
    second = {k: Handle(np.asarray(v).copy(), ids) for k, v in feats.items()}
    for h in second.values():
        h.data[:, 8:32] = np.random.default_rng(1).standard_normal((h.data.shape[0], min(24, h.data.shape[1] - 8)))
    again = run_experiment(cfg, brain=brains, features={"net": second}, progress=False)
    assert again.summary["n_run"] > 0


def _tiny_store(tmp_path):
    import torch
    from PIL import Image

    from brainlike import features, models
    from brainlike.stimuli import ImageSet

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv1 = torch.nn.Conv2d(3, 4, 3, stride=2)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.conv1(x).mean(dim=(2, 3)))

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    model = models.wrap(Tiny(), input_size=16, name="tiny")
    store = tmp_path / "store"
    features.extract(model, ImageSet.from_folder(d), ["conv1", "fc"], store=store, batch_size=3, progress=False)
    return store


def _chunk_files(store: Path):
    return sorted(p for p in store.rglob("*") if p.is_file() and "/c/" in p.as_posix())


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_store_damaged_chunk_is_detected_and_named(tmp_path, damage):
    from brainlike import features

    store = _tiny_store(tmp_path)
    victim = _chunk_files(store)[0 if damage == "delete" else -1]
    rel = victim.relative_to(store).as_posix()
    if damage == "delete":
        victim.unlink()
    else:
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x10
        victim.write_bytes(bytes(data))
    state = features.verify(store)
    assert not state.ok and any(p.file == rel for p in state.problems)
    with pytest.raises(features.DamagedStoreError, match=rel):
        features.FeatureSet.open(store)


def test_results_crash_in_scoring_keeps_the_previous_generation(tmp_path, planted, monkeypatch):
    from brainlike.pipeline import load_results, run as prun

    feats, brains = planted
    _run(tmp_path, feats, brains, analyses=["decoding"])
    before = load_results(tmp_path / "o").tables
    monkeypatch.setattr(prun, "compute_scores", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        _run(tmp_path, feats, brains, analyses=["decoding"], decoding={"alpha": 1000.0})
    after = load_results(tmp_path / "o").tables
    pd.testing.assert_frame_equal(after["decoding_accuracy"], before["decoding_accuracy"])
    pd.testing.assert_frame_equal(after["bh_scores"], before["bh_scores"])


def test_results_fewer_analyses_hide_the_old_encoding_table(tmp_path, planted):
    from brainlike.pipeline import load_results

    feats, brains = planted
    _run(tmp_path, feats, brains)
    _run(tmp_path, feats, brains, analyses=["decoding"])
    assert "encoding_accuracy" not in load_results(tmp_path / "o").tables


def test_results_truncated_job_result_is_recomputed(tmp_path, planted, caplog):
    feats, brains = planted
    first = _run(tmp_path, feats, brains, analyses=["decoding"])
    job = sorted((tmp_path / "o" / "work").rglob("chunk-*.npz"))[0]
    data = job.read_bytes()
    job.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="brainlike"):
        again = _run(tmp_path, feats, brains, analyses=["decoding"])
    assert f"damaged job result {job}" in caplog.text
    assert again.summary["n_run"] >= 1
    pd.testing.assert_frame_equal(again.scores, first.scores)


def test_registry_truncated_checksum_record_means_verify_from_scratch(tmp_path, monkeypatch):
    """A truncated record never switches verification off: offline, the file cannot be verified
    afresh, so it is refused, named, rather than trusted."""
    from brainlike.datasets import _fetch

    home = tmp_path / "home"
    monkeypatch.setenv("BRAINLIKE_DATA", str(home))
    monkeypatch.delenv("BRAINLIKE_DATA_MIRROR", raising=False)
    (home / "x").mkdir(parents=True)
    (home / "x" / "f.bin").write_bytes(b"good data")
    rf = _fetch.RemoteFile("x/f.bin", f"http://127.0.0.1:{_free_port()}/f.bin", None)
    rec = home / ".brainlike-checksums.json"
    rec.write_text(json.dumps({"x/f.bin": _fetch.file_sha256(home / "x" / "f.bin")}))
    (home / "x" / "f.bin").write_bytes(b"bad! data")  # corrupted afterwards
    rec.write_text(rec.read_text()[:10])  # and the record truncated
    with pytest.raises((_fetch.ChecksumError, FileNotFoundError), match=r"f\.bin"):
        _fetch.resolve_file(rf, progress=False)


def test_random_weights_are_seeded(tmp_path):
    import torch

    from brainlike import models

    a = models.load("torchvision:alexnet", pretrained=False, seed=3)
    b = models.load("torchvision:alexnet", pretrained=False, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.module.state_dict().values(), b.module.state_dict().values()))


def test_zip_slip_absolute_member_is_refused(tmp_path):
    import io
    import zipfile

    from PIL import Image

    from brainlike.stimuli import ImageSet

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        z.writestr("ok.png", buf.getvalue())
        z.writestr("/tmp/evil.png", buf.getvalue())
    with pytest.raises(ValueError, match=r"evil"):
        ImageSet.from_zip(tmp_path / "imgs.zip")


def test_gnet_checkpoints_load_without_pickle():
    import inspect

    from brainlike.encoding import gnet, gnet_inputs

    assert "weights_only=False" not in inspect.getsource(gnet) + inspect.getsource(gnet_inputs)
    assert "weights_only=True" in inspect.getsource(gnet_inputs._load_checkpoint)


# ============================================================== local dataset files ({format, path})
@pytest.mark.parametrize("dataset, key", [
    ({"format": "csv", "path": "x"}, "dataset.format"),
    ({"format": "npz"}, "dataset.path"),
    ({"format": "npz", "path": "x-{subject}.npz", "label": "y"}, "dataset.label"),
    ({"format": "bdata", "path": "x.h5", "splits": {"train": 1}}, "dataset.splits"),
    ({"format": "bids", "path": "ds", "options": 3}, "dataset.options"),
    ({"format": "bhscore", "path": "data", "features": "feats"}, "dataset.features"),
])
def test_local_dataset_spec_errors_name_the_key(dataset, key):
    with pytest.raises(ValueError, match=f"config key '{key}"):
        load_config({"dataset": dataset, "dnns": {"n": {"model": "m", "layers": ["a", "b"]}}})


def _npz_config(tmp_path, planted, subjects=("s1",)):
    from brainlike.datasets.local import save_npz_subject

    feats, brains = planted
    save_npz_subject(tmp_path / "sub-s1.npz", brains[0])
    cfg = small_config(tmp_path / "o", dataset={"format": "npz", "path": str(tmp_path / "sub-{subject}.npz")},
                       subjects=list(subjects))
    return cfg, feats


def test_check_local_npz_dataset_passes(tmp_path, planted):
    cfg, feats = _npz_config(tmp_path, planted)
    rep = check_experiment(cfg, features={"net": feats})
    assert rep.subjects["s1"]["n_test"] == 30


def test_check_local_npz_subject_file_missing(tmp_path, planted):
    cfg, feats = _npz_config(tmp_path, planted, subjects=["s2"])
    with pytest.raises(FileNotFoundError, match=r"file of subject 's2' not found: .*sub-s2\.npz"):
        check_experiment(cfg, features={"net": feats})


def test_check_local_npz_without_subjects(tmp_path, planted):
    cfg, feats = _npz_config(tmp_path, planted)
    cfg.pop("subjects")
    with pytest.raises(ValueError, match=r"config key 'subjects': list the subjects of the npz files"):
        check_experiment(cfg, features={"net": feats})


def test_check_local_npz_array_missing_names_the_file(tmp_path, planted):
    cfg, feats = _npz_config(tmp_path, planted)
    np.savez(tmp_path / "sub-s1.npz", responses=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"sub-s1\.npz: array 'stimulus_ids' missing"):
        check_experiment(cfg, features={"net": feats})


def test_cli_bhscore_data_folder_missing(capsys, tmp_path):
    cfg = write(tmp_path / "c.yaml", BASE_DNN)
    one_line_error(capsys, ["run", str(cfg), "--check", "--bhscore-data", str(tmp_path / "nodata")],
                   "--bhscore-data", "nodata")


# ================================================================================== results folders
def _scores_folder(tmp_path) -> Path:
    res = tmp_path / "res"
    res.mkdir()
    pd.DataFrame({"dnn": ["a"], "kind": ["decoding"], "score": [0.5]}).to_parquet(res / "bh_scores.parquet")
    return res


def test_cli_report_damaged_table_names_it(capsys, tmp_path):
    res = _scores_folder(tmp_path)
    data = (res / "bh_scores.parquet").read_bytes()
    (res / "bh_scores.parquet").write_bytes(data[:100])
    one_line_error(capsys, ["report", str(res)], "bh_scores.parquet")


def test_cli_report_out_is_a_file(capsys, tmp_path):
    res = _scores_folder(tmp_path)
    f = write(tmp_path / "f", "x")
    one_line_error(capsys, ["report", str(res), "--out", str(f)], str(f))


def test_cli_truncated_bhscore_settings_names_it(capsys, tmp_path):
    s = write(tmp_path / "settings.json", '{"subjects": ["sub-01"], "rois": ["V1"], "dnns": {"A": {"dir": "x"')
    one_line_error(capsys, ["run", str(s), "--check"], "settings.json", "not valid JSON")
