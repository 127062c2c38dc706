"""The job graph on a Dask cluster over loopback: a worker killed mid-run changes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
import numpy as np
import pandas as pd
import pytest

from brainlike.pipeline import run_experiment

from test_pipeline import make_experiment, result_files, small_config

distributed = pytest.importorskip("distributed")


def _config(out, scheduler):
    return small_config(out, analyses=["decoding", "encoding"],
                        decoding={"units_per_layer": 40, "chunk_size": 5},
                        execution={"scheduler": scheduler, "retries": 1})


@pytest.mark.slow
def test_killed_worker_gives_results_identical_to_serial(tmp_path, rng):
    feats, brains = make_experiment(rng, n_units=(60, 50, 40, 40))
    serial = run_experiment(_config(tmp_path / "serial", "synchronous"), brain=brains, features={"net": feats},
                            progress=False)

    out = tmp_path / "dask"
    state = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids

        def kill_one_worker_mid_run():
            deadline = time.time() + 120
            while time.time() < deadline:
                done = list((out / "work").rglob("chunk-*.npz")) if (out / "work").exists() else []
                if len(done) >= 3:
                    state["done_at_kill"] = len(done)
                    os.kill(pids[0], signal.SIGKILL)
                    state["killed"] = True
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
        killer.start()
        res = run_experiment(_config(out, cluster.scheduler_address), brain=brains, features={"net": feats},
                             progress=False)
        killer.join(timeout=5)

    assert state.get("killed"), "the worker was not killed during the run"
    assert state["done_at_kill"] < serial.summary["n_jobs"]
    assert res.summary["n_run"] == serial.summary["n_jobs"]
    # every result file, table and score equals the serial run's, to float32 rounding: dask workers
    # run BLAS on one thread, the serial run on all cores (another summation order)
    a, b = result_files(tmp_path / "serial"), result_files(out)
    assert a.keys() == b.keys()
    for key in a:
        ra, rb = np.load(tmp_path / "serial" / "work" / key), np.load(out / "work" / key)
        for name in ra.files:
            np.testing.assert_allclose(rb[name], ra[name], rtol=1e-5, atol=1e-6, err_msg=f"{key}:{name}")
    for table in ("decoding_accuracy", "encoding_accuracy"):
        pd.testing.assert_frame_equal(pd.read_parquet(res.results_dir / f"{table}.parquet"),
                                      pd.read_parquet(serial.results_dir / f"{table}.parquet"),
                                      check_exact=False, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(res.scores, serial.scores, check_exact=False, rtol=1e-9)
