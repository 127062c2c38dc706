"""Several processes on one output folder: leased claims split the jobs, each is computed once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from brainlike.pipeline import load_results
from brainlike.pipeline.claims import Claims

from test_pipeline import result_files, small_config

DRIVER = Path(__file__).resolve().parent / "run_driver.py"


def _env(**kw):
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(kw)
    return env


def _config(tmp_path, **kw) -> Path:
    """A small experiment config (JSON) for whole ``brainlike run`` processes."""
    base = {"analyses": ["decoding", "encoding"], "decoding": {"units_per_layer": 30, "chunk_size": 5},
            "execution": {"scheduler": "synchronous", "lease_s": 5.0}}
    cfg = small_config("unused", **{**base, **kw})
    del cfg["out"]
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(cfg))
    return path


def _jobs_run(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) of (\d+) jobs run", stderr)
    assert m, stderr[-2000:]
    return int(m.group(1)), int(m.group(2))


# ------------------------------------------------------------------------------ claims
def test_claim_is_exclusive_renewed_and_released(tmp_path):
    with Claims(tmp_path, lease_s=0.4) as a, Claims(tmp_path, lease_s=0.4) as b:
        assert a.claim("job-1") and not b.claim("job-1")
        t = time.monotonic()
        while time.monotonic() - t < 1.5:  # far beyond the lease: a's heartbeat keeps it
            assert not b.claim("job-1")
            time.sleep(0.05)
        assert b.claim("job-2") and not a.claim("job-2")
        a.release("job-1")
        assert b.claim("job-1") and b.taken_over == 0
    assert not list(tmp_path.glob("*.claim"))  # closing releases what is held


def test_claim_of_another_host_expires_after_the_lease(tmp_path):
    c = Claims(tmp_path, lease_s=0.3)
    Path(c.path("job")).write_text(json.dumps({"host": "elsewhere", "boot": "x", "pid": 1, "token": "t"}))
    assert not c.claim("job")  # first look: its age is unknown here
    time.sleep(0.15)
    assert not c.claim("job")
    time.sleep(0.25)
    assert c.claim("job") and c.taken_over == 1
    assert json.loads(Path(c.path("job")).read_text())["pid"] == os.getpid()
    c.close()


def test_claim_of_a_sigkilled_process_is_taken_over(tmp_path):
    code = ("import sys, time; from brainlike.pipeline.claims import Claims\n"
            "c = Claims(sys.argv[1], lease_s=600).__enter__()\n"
            "assert c.claim('job'); print('held', flush=True); time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert p.stdout.readline().strip() == "held"
        mine = Claims(tmp_path, lease_s=600)
        assert not mine.claim("job")  # its owner is alive
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        # a dead process of this host: its claim expires at once, without waiting for the lease
        assert mine.claim("job") and mine.taken_over == 1
        mine.close()
    finally:
        if p.poll() is None:
            p.kill()


def test_claims_of_dead_processes_are_swept_but_live_ones_kept(tmp_path):
    """A run killed after its job's result was written leaves a claim no later run would take over
    (the job is done): the next run sweeps the claims of this machine's dead processes."""
    code = ("import sys, time; from brainlike.pipeline.claims import Claims\n"
            "c = Claims(sys.argv[1], lease_s=600).__enter__()\n"
            "assert c.claim(sys.argv[2]); print('held', flush=True); time.sleep(600)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), key], stdout=subprocess.PIPE, text=True,
                              env=_env()) for key in ("dead-job", "live-job")]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "held"
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=30)
        other = Claims(tmp_path, lease_s=600)
        assert other.sweep_dead() == 1
        left = list(tmp_path.glob("*.claim"))
        assert left == [Path(other.path("live-job"))]  # the live process keeps its claim
        assert not other.claim("live-job")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


# ------------------------------------------------------------------------------ two processes
@pytest.mark.slow
def test_two_processes_on_one_folder_compute_each_job_once(tmp_path):
    cfg = _config(tmp_path)
    single = subprocess.run([sys.executable, str(DRIVER), str(cfg), "--out", str(tmp_path / "single"),
                             "--no-progress", "--no-report"], capture_output=True, text=True, env=_env())
    assert single.returncode == 0, single.stderr[-3000:]
    n_single, n_jobs = _jobs_run(single.stderr)
    assert n_single == n_jobs

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, str(DRIVER), str(cfg), "--out", str(out), "--no-progress",
                               "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(BARRIER=str(barrier))) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.02)
    (barrier / "go").write_text("")
    done = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, done):
        assert p.returncode == 0, se[-3000:]
    counts = [_jobs_run(se) for _, se in done]
    print("jobs computed by each process:", [n for n, _ in counts], "of", n_jobs)
    # every job computed exactly once: the two processes' counts add up to the job count (a job
    # computed twice would need another computed never, and then it would be missing)
    assert all(total == n_jobs for _, total in counts)
    assert sum(n for n, _ in counts) == n_jobs and min(n for n, _ in counts) > 0, counts
    assert result_files(out) == result_files(tmp_path / "single")
    a, b = load_results(out), load_results(tmp_path / "single")
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    assert not list((out / "work" / "claims").glob("*.claim"))


# ------------------------------------------------------------------------------ the executor's waits
def _claimed_elsewhere(out, victim: Path, lease_s: float):
    """Plant another machine's claim on the job of result file ``victim`` (its key from the planner)."""
    from brainlike.pipeline.jobs import load_context, plan

    work = out / "work"
    ctx = load_context(sorted(work.glob("context-*.pkl"))[0])
    jobs = plan(ctx, {"net": ["layer1", "layer2", "layer3", "layer4"]}, ["decoding", "encoding"])
    job = next(j for j in jobs if j.path(work) == victim)
    claims = Claims(work / "claims", lease_s=lease_s)
    path = Path(claims.path(job.key + "|" + job.sig))
    path.write_text(json.dumps({"host": "elsewhere", "boot": "b", "pid": 1, "token": "theirs"}))
    return path


@pytest.mark.parametrize("scheduler", ["synchronous", "client"])
def test_a_job_claimed_elsewhere_is_waited_for_then_counted_as_theirs(tmp_path, rng, scheduler):
    import threading

    from brainlike.pipeline import run_experiment
    from test_pipeline import make_experiment

    feats, brains = make_experiment(rng)
    cfg = small_config(tmp_path / "o", execution={"scheduler": "synchronous", "lease_s": 30.0})
    run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    files = result_files(tmp_path / "o")
    victim, free = sorted((tmp_path / "o" / "work").rglob("chunk-*.npz"))[3:5]
    saved = victim.read_bytes()
    victim.unlink()
    free.unlink()
    claim = _claimed_elsewhere(tmp_path / "o", victim, 30.0)

    def the_other_machine_finishes():
        # once this run is computing (the free job is done again), write the result, release the claim
        deadline = time.time() + 120
        while not free.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        tmp = victim.with_name(victim.name + ".tmp-x")
        tmp.write_bytes(saved)
        os.replace(tmp, victim)
        claim.unlink()

    other = threading.Thread(target=the_other_machine_finishes)
    other.start()
    if scheduler == "client":
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c, \
                distributed.Client(c) as client:
            res = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False, client=client)
    else:
        res = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    other.join()
    assert res.summary["n_run"] == 1 and res.summary["n_by_others"] == 1
    assert result_files(tmp_path / "o") == files


def test_an_expired_claim_of_another_machine_is_taken_over(tmp_path, rng):
    from brainlike.pipeline import run_experiment
    from test_pipeline import make_experiment

    feats, brains = make_experiment(rng)
    cfg = small_config(tmp_path / "o", execution={"scheduler": "synchronous", "lease_s": 0.5})
    run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    files = result_files(tmp_path / "o")
    victim = sorted((tmp_path / "o" / "work").rglob("chunk-*.npz"))[3]
    victim.unlink()
    _claimed_elsewhere(tmp_path / "o", victim, 0.5)  # never renewed: its machine is gone
    res = run_experiment(cfg, brain=brains, features={"net": feats}, progress=False)
    assert res.summary["n_run"] == 1 and res.summary["claims_taken_over"] == 1
    assert result_files(tmp_path / "o") == files
