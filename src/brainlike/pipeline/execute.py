"""Run a list of jobs: synchronously, on a Dask ``LocalCluster``, or on an existing Dask cluster.

Only jobs whose result file is missing (or damaged: set aside and run again) are run. Every job is
claimed first (``claims.py``: a claim file with a lease in ``work/claims``), so several
``brainlike run`` processes on one output folder, on one machine or on several sharing a file
system, split the jobs and compute each once. A worker that dies mid-job loses only that job: the
scheduler runs it again on another worker, and since every result is written atomically and
deterministically the outcome is the same as a serial run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path

from .claims import Claims
from .jobs import RESULT_KEYS, Job, release_voxel_cache, run_job
from .store import CorruptResultError, check_result, set_aside

log = logging.getLogger("brainlike")


def _progress(total: int, enabled: bool, desc: str):
    if not enabled or total == 0:
        return None
    from brainlike._logging import progress_bar

    # no bar when stderr is not a terminal (logs stay readable) or the "brainlike" logger is silenced
    return progress_bar(total=total, desc=desc, unit="job", leave=False)


def result_ok(job: Job, workdir) -> bool:
    """Whether ``job``'s result is there and whole; a damaged one is set aside (and not done)."""
    path = job.path(workdir)
    if not path.is_file():
        return False
    try:
        check_result(path, RESULT_KEYS.get(job.kind, ()))
    except CorruptResultError as e:
        set_aside(e.path, workdir)
        return False
    return True


def pending_jobs(jobs: list[Job], workdir) -> list[Job]:
    """The jobs without a whole result (damaged results are moved aside, with a warning)."""
    return [j for j in jobs if not result_ok(j, workdir)]


def run_jobs(jobs: list[Job], context_path, workdir, *, scheduler="local", n_workers=None,
             threads_per_worker=1, retries=2, client=None, progress=True, lease_s=60.0) -> dict:
    """Run the missing jobs; return a summary {n_jobs, n_done_before, n_run, n_by_others, seconds, scheduler}.

    scheduler: "synchronous" (in this process), "local" (a Dask LocalCluster with ``n_workers``
    worker processes, started and closed here), or an address ("tcp://host:8786") of a running
    Dask scheduler. An existing ``distributed.Client`` may be passed as ``client`` instead.
    Jobs are claimed in ``<workdir>/claims`` with a lease of ``lease_s`` seconds: ``n_run`` counts
    the jobs this process computed, ``n_by_others`` those other processes on the same folder did.
    """
    if (Path(workdir) / "claims").is_dir():
        Claims(Path(workdir) / "claims", lease_s=lease_s).sweep_dead()  # left by killed runs, jobs done or not
    todo = pending_jobs(jobs, workdir)
    summary = {"n_jobs": len(jobs), "n_done_before": len(jobs) - len(todo), "n_run": 0, "n_by_others": 0,
               "scheduler": scheduler if client is None else "client"}
    t0 = time.perf_counter()
    if todo:
        with Claims(Path(workdir) / "claims", lease_s=lease_s) as claims:
            run = _Runner(todo, context_path, workdir, claims, progress)
            if client is None and scheduler == "synchronous":
                run.serial()
            elif client is not None:
                run.dask(client, retries, n_workers)
            else:
                from distributed import Client, LocalCluster

                if scheduler == "local":
                    n = n_workers or min(os.cpu_count() or 1, max(1, len(todo)))
                    with LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                      dashboard_address=None) as cluster, Client(cluster) as cl:
                        run.dask(cl, retries, n)
                else:
                    with Client(scheduler) as cl:
                        run.dask(cl, retries, n_workers)
        summary["n_run"] = run.n_run
        summary["n_by_others"] = len(todo) - run.n_run
        summary["claims_taken_over"] = claims.taken_over
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _dependency_order(todo: list[Job]) -> list[Job]:
    first = [j for j in todo if not j.depends_on()]
    return first + [j for j in todo if j.depends_on()]


class _Runner:
    """Claims and runs the jobs of ``todo`` until each is done, here or by another process."""

    def __init__(self, todo, context_path, workdir, claims: Claims, progress: bool):
        self.remaining = _dependency_order(todo)
        self.context_path, self.workdir, self.claims = str(context_path), workdir, claims
        self.poll_s = min(5.0, max(0.05, claims.lease_s / 10))
        self.bar = _progress(len(todo), progress, "jobs")
        self.n_run = 0

    def _ready(self, job: Job) -> bool:
        return all(d.path(self.workdir).is_file() for d in job.depends_on())

    def _take(self, limit: int) -> list[Job]:
        """Claim up to ``limit`` runnable jobs; drop those found done (here or elsewhere)."""
        taken, still = [], []
        for i, job in enumerate(self.remaining):
            if len(taken) >= limit:
                still += self.remaining[i:]  # looked at on a later call
                break
            if job.done(self.workdir):
                self._tick()
                continue
            if self._ready(job) and self.claims.claim(job.key + "|" + job.sig):
                if job.done(self.workdir):  # finished by another process between the look and the claim
                    self.claims.release(job.key + "|" + job.sig)
                    self._tick()
                    continue
                taken.append(job)
            else:
                still.append(job)
        self.remaining = still
        return taken

    def _finished(self, job: Job) -> None:
        self.claims.release(job.key + "|" + job.sig)
        self.n_run += 1
        self._tick()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def serial(self) -> None:
        try:
            while self.remaining:
                batch = self._take(1)
                if not batch:
                    time.sleep(self.poll_s)  # every remaining job is claimed by another process
                    continue
                job = batch[0]
                try:
                    run_job(self.context_path, job)
                except BaseException:
                    self.claims.release(job.key + "|" + job.sig)
                    raise
                self._finished(job)
        finally:
            release_voxel_cache()  # this process outlives the run: give the cached ROI Grams back
            self._close()

    def dask(self, client, retries: int, n_workers) -> None:
        from distributed import wait

        window = 2 * max(1, n_workers or len(client.scheduler_info().get("workers", {})) or 1)
        inflight: dict = {}
        try:
            while self.remaining or inflight:
                for job in self._take(window - len(inflight)):
                    fut = client.submit(run_job, self.context_path, job, retries=retries, pure=False,
                                        key=f"brainlike-{job.key}-{secrets.token_hex(4)}")
                    inflight[fut] = job
                if not inflight:
                    time.sleep(self.poll_s)
                    continue
                with contextlib.suppress(TimeoutError):
                    wait(list(inflight), timeout=self.poll_s, return_when="FIRST_COMPLETED")
                for fut in [f for f in inflight if f.done()]:
                    job = inflight.pop(fut)
                    try:
                        fut.result()  # raises the job's error here, with its traceback
                    except BaseException:
                        self.claims.release(job.key + "|" + job.sig)
                        raise
                    self._finished(job)
        except BaseException:
            for fut, job in inflight.items():
                fut.cancel()
                self.claims.release(job.key + "|" + job.sig)
            raise
        finally:
            with contextlib.suppress(Exception):  # workers of an external cluster live on after the run
                client.run(release_voxel_cache)
            self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
