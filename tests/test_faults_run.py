"""``brainlike run`` killed with SIGKILL at 10 random moments, then rerun: bitwise the same results.

Moments drawn (seeded, the seed is printed): one while the run starts (reading inputs, planning),
six after a random number of finished jobs, three while the results generation is written and
published. After each kill the previous complete generation (if any) must still read and verify,
and every job result file present must be whole; the final rerun must give job results, tables
and scores bitwise equal to an uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainlike.pipeline import load_results
from brainlike.pipeline.jobs import RESULT_KEYS
from brainlike.pipeline.store import load_result

from test_pipeline import result_files
from test_shared_folder import DRIVER, _config, _env, _jobs_run

SEED = int(os.environ.get("BRAINLIKE_FAULT_SEED", "12"))


def _cmd(cfg, out):
    return [sys.executable, str(DRIVER), str(cfg), "--out", str(out), "--no-progress", "--no-report"]


def _n_results(work: Path) -> int:
    return sum(1 for _ in work.rglob("*.npz")) - sum(1 for _ in (work / "subjects").glob("*.npz")) \
        if work.is_dir() else 0


def _published(out: Path) -> dict[str, bytes]:
    """Tables and scores of the current generation, as bytes (provenance holds timings: left out)."""
    gen = (out / "current").resolve()
    return {p.relative_to(gen).as_posix(): p.read_bytes() for p in sorted((gen / "results").rglob("*"))
            if p.is_file() and p.name != "provenance.json"}


def _kill_at(cfg, out, moment, stale: set) -> str:
    kind, value = moment
    p = subprocess.Popen(_cmd(cfg, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=_env(), start_new_session=True)
    t0 = time.monotonic()
    work = out / "work"
    try:
        while p.poll() is None and time.monotonic() - t0 < 120:
            if kind == "time" and time.monotonic() - t0 >= value:
                break
            if kind == "jobs" and _n_results(work) >= value:
                break
            if kind == "publish":
                new = set((out / "generations").glob("*.incomplete")) - stale if (out / "generations").is_dir() else set()
                if new:
                    time.sleep(value)
                    break
            time.sleep(0.002)
        if p.poll() is not None:
            return f"{kind} {value}: finished before the kill (rc {p.returncode})"
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        return f"{kind} {value}: killed after {time.monotonic() - t0:.2f} s"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stderr.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_is_bitwise_equal(tmp_path):
    cfg = _config(tmp_path, decoding={"units_per_layer": 20, "chunk_size": 5}, scores={"n_boot": 5, "n_perm": 5})
    ref = subprocess.run(_cmd(cfg, tmp_path / "ref"), capture_output=True, text=True, env=_env())
    assert ref.returncode == 0, ref.stderr[-3000:]
    _, n_jobs = _jobs_run(ref.stderr)

    rng = random.Random(SEED)
    moments = ([("time", round(rng.uniform(0.3, 2.5), 2))]
               + [("jobs", k) for k in sorted(rng.sample(range(1, n_jobs), 6))]
               + [("publish", round(rng.uniform(0.0, 0.2), 3)) for _ in range(3)])
    out = tmp_path / "out"
    log, killed = [], 0
    for moment in moments:
        stale = set((out / "generations").glob("*.incomplete")) if (out / "generations").is_dir() else set()
        line = _kill_at(cfg, out, moment, stale)
        log.append(line)
        killed += "killed" in line
        # the previous complete generation stays readable; no job result is partial
        if (out / "current").is_symlink():
            load_results(out)
        for path in (out / "work").rglob("*.npz") if (out / "work").is_dir() else []:
            kind = {"decoding": "decode", "kernels": "kernel", "encoding": "encode"}.get(
                path.relative_to(out / "work").parts[0].split("-")[0])
            if kind:
                load_result(path, RESULT_KEYS[kind])
    print(f"seed {SEED}:", *log, sep="\n  ")
    assert killed >= 8, log  # a run may finish before a late moment comes; most must be cut short

    final = subprocess.run(_cmd(cfg, out), capture_output=True, text=True, env=_env())
    assert final.returncode == 0, final.stderr[-3000:]
    assert result_files(out) == result_files(tmp_path / "ref")
    assert _published(out) == _published(tmp_path / "ref")
    assert not list((out / "generations").glob("*.incomplete"))
    assert not list((out / "work" / "claims").glob("*.claim"))
