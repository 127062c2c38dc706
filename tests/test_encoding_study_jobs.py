"""An encoding study on the pipeline's machinery: its fits are jobs of ``pipeline.execute.run_jobs``
(synchronous, Dask, several processes on one folder) and its tables one results generation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainlike.demo.nsd import write_nsd
from brainlike.encoding.study import run_encoding_study
from brainlike.pipeline import ResultsError, load_results

NETWORK = {"model": "torchvision:alexnet", "pretrained": False, "seed": 0, "layers": ["conv1"],
           "input_size": 64}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    write_nsd(root, subjects=(1, 2), n_shared=20, n_own=60, image_size=64, noise=0.3)
    return root


def _config(root):
    return {"dataset": {"name": "nsd", "data_dir": str(root), "options": {"sessions": [1]}},
            "subjects": [1, 2], "rois": ["V1", "V2", "V3"], "network": dict(NETWORK), "models": ["fwrf", "ridge"],
            "analyses": ["comparison"], "validation": {"kfold": 3},
            "fwrf": {"grid": {"n_sizes": 2, "min_spacing": 3.0}, "alphas": [1.0, 100.0], "holdout": 0.25}}


def _job_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "jobs").glob("*-*/*/fold*.npz"))


@pytest.fixture(scope="module")
def sync(root, tmp_path_factory):
    from threadpoolctl import threadpool_limits

    out = tmp_path_factory.mktemp("sync")
    # Dask's workers run BLAS on one thread: so does this run, for the same summation order (with
    # all cores the fits differ in float32 rounding, as for brainlike run)
    with threadpool_limits(limits=1, user_api="blas"):
        return out, run_encoding_study(_config(root), out)


def test_jobs_per_model_subject_fold_and_one_generation(sync):
    out, res = sync
    # one job per (model, subject, fold): 2 models, 2 subjects, 3 folds
    assert res.jobs["n_jobs"] == 2 * 2 * 3 == len(_job_files(out)) and res.jobs["n_run"] == 12
    loaded = load_results(out)  # the reader of brainlike run, checked against the manifest
    assert loaded.generation == (out / "current").resolve().name
    assert {"voxel_accuracy", "comparison", "fwrf_fields"} <= set(loaded.tables)
    pd.testing.assert_frame_equal(loaded.tables["voxel_accuracy"], res.voxels, check_exact=True)
    assert _job_files(out)[0].parent.parent.name.endswith(loaded.provenance["signature"])
    assert (out / "report" / "index.html").is_file()


def test_dask_local_cluster_gives_bitwise_the_same_tables(root, sync, tmp_path):
    pytest.importorskip("distributed")
    _, res = sync
    dask = run_encoding_study(_config(root), tmp_path, scheduler="local", n_workers=2)
    assert dask.jobs["n_run"] == 12 and dask.jobs["scheduler"] == "local"
    pd.testing.assert_frame_equal(dask.voxels, res.voxels, check_exact=True)
    pd.testing.assert_frame_equal(dask.fields, res.fields, check_exact=True)


def test_rerun_runs_nothing_and_a_damaged_job_alone_reruns(root, sync, caplog):
    out, res = sync
    again = run_encoding_study(_config(root), out)
    assert again.jobs["n_run"] == 0 and again.jobs["n_done_before"] == 12
    job = next(p for p in _job_files(out) if p.parts[-3].startswith("ridge-") and p.parts[-2:] == ("2", "fold1.npz"))
    job.write_bytes(job.read_bytes()[:60])  # truncated
    fixed = run_encoding_study(_config(root), out)
    assert fixed.jobs["n_run"] == 1
    aside = list((out / "jobs" / "corrupt").rglob("fold1.npz.*"))  # pipeline.store.set_aside, one rule
    assert len(aside) == 1 and aside[0].parent.name == "2" and "moved to" in caplog.text
    pd.testing.assert_frame_equal(fixed.voxels, res.voxels, check_exact=True)


def test_a_crash_while_writing_tables_leaves_the_previous_generation_current(root, sync, monkeypatch):
    out, _ = sync
    before = (out / "current").resolve()
    import brainlike.encoding.study_tables as T

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(T, "fields_table", broken)
    with pytest.raises(OSError, match="disk full"):
        run_encoding_study(_config(root), out)
    assert (out / "current").resolve() == before
    failed = [p for p in (out / "generations").glob("*.incomplete") if (p / "FAILED.json").is_file()]
    assert len(failed) == 1 and "disk full" in (failed[0] / "FAILED.json").read_text()
    assert load_results(out).generation == before.name
    with pytest.raises(ResultsError, match="incomplete results generation"):
        load_results(failed[0])


def _env(**kw):
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(kw)
    return env


DRIVER = ("import os, sys, time\nfrom pathlib import Path\nfrom brainlike.cli import main\n"
          "import brainlike.encoding.study, torch\n"
          "b = Path(os.environ['BARRIER']); (b / f'ready-{os.getpid()}').write_text('')\n"
          "while not (b / 'go').exists(): time.sleep(0.01)\n"
          "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.slow
def test_two_processes_on_one_folder_compute_each_job_once(root, sync, tmp_path):
    _, res = sync
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(_config(root)))
    out = tmp_path / "shared"
    shutil.copytree(sync[0], out, symlinks=True)  # features and inputs in place: the processes race for the jobs
    for p in _job_files(out):
        p.unlink()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, cmd, str(cfg), "--out", str(out), *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(BARRIER=str(barrier)))
             for cmd, flags in (("encode", ["--quiet"]), ("run", ["--no-progress"]))]  # both commands, one folder
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.02)
    (barrier / "go").write_text("")
    done = [p.communicate(timeout=300) for p in procs]
    counts = []
    for p, (_, err) in zip(procs, done):
        assert p.returncode == 0, err[-3000:]
        m = re.search(r"(\d+) of (\d+) jobs run", err)
        assert m, err[-2000:]
        counts.append((int(m.group(1)), int(m.group(2))))
    print("jobs computed by each process:", counts)
    assert all(total == 12 for _, total in counts) and sum(n for n, _ in counts) == 12, counts
    assert len(_job_files(out)) == 12 and not list((out / "jobs" / "claims").glob("*.claim"))
    pd.testing.assert_frame_equal(load_results(out).tables["voxel_accuracy"], res.voxels, check_exact=True)
