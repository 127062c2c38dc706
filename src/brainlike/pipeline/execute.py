"""Run a list of jobs: synchronously, on a Dask ``LocalCluster``, or on an existing Dask cluster.

Only jobs whose result file is missing are submitted. A worker that dies mid-job loses only
that job: the scheduler runs it again on another worker, and since every result is written
atomically and deterministically the outcome is the same as a serial run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from .jobs import Job, release_voxel_cache, run_job


def _progress(total: int, enabled: bool, desc: str):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs stay readable)
    return tqdm(total=total, desc=desc, unit="job", file=sys.stderr, leave=False, disable=None)


def pending_jobs(jobs: list[Job], workdir) -> list[Job]:
    return [j for j in jobs if not j.done(workdir)]


def run_jobs(jobs: list[Job], context_path, workdir, *, scheduler="local", n_workers=None,
             threads_per_worker=1, retries=2, client=None, progress=True) -> dict:
    """Run the missing jobs; return a summary {n_jobs, n_done_before, n_run, seconds, scheduler}.

    scheduler: "synchronous" (in this process), "local" (a Dask LocalCluster with ``n_workers``
    worker processes, started and closed here), or an address ("tcp://host:8786") of a running
    Dask scheduler. An existing ``distributed.Client`` may be passed as ``client`` instead.
    """
    todo = pending_jobs(jobs, workdir)
    summary = {"n_jobs": len(jobs), "n_done_before": len(jobs) - len(todo), "n_run": len(todo),
               "scheduler": scheduler if client is None else "client"}
    t0 = time.perf_counter()
    if todo:
        if client is None and scheduler == "synchronous":
            _run_serial(todo, context_path, progress)
        elif client is not None:
            _run_dask(client, todo, context_path, retries, progress)
        else:
            from distributed import Client, LocalCluster

            if scheduler == "local":
                n = n_workers or min(os.cpu_count() or 1, max(1, len(todo)))
                with LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                  dashboard_address=None) as cluster, Client(cluster) as cl:
                    _run_dask(cl, todo, context_path, retries, progress)
            else:
                with Client(scheduler) as cl:
                    _run_dask(cl, todo, context_path, retries, progress)
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _run_serial(todo: list[Job], context_path, progress: bool) -> None:
    bar = _progress(len(todo), progress, "jobs")
    try:
        for job in _dependency_order(todo):
            run_job(str(context_path), job)
            if bar is not None:
                bar.update()
    finally:
        release_voxel_cache()  # this process outlives the run: give the cached ROI Grams back
        if bar is not None:
            bar.close()


def _dependency_order(todo: list[Job]) -> list[Job]:
    first = [j for j in todo if not j.depends_on()]
    return first + [j for j in todo if j.depends_on()]


def _run_dask(client, todo: list[Job], context_path, retries: int, progress: bool) -> None:
    from distributed import as_completed

    todo_set = set(todo)
    futures = {}
    for job in _dependency_order(todo):
        deps = [futures[d] for d in job.depends_on() if d in todo_set]
        # Dependencies are passed as extra arguments so that Dask orders the jobs; the job itself
        # reads its inputs from disk.
        futures[job] = client.submit(_run_after, str(context_path), job, *deps, key=f"brainlike-{job.key}",
                                     retries=retries, pure=False)
    bar = _progress(len(futures), progress, "jobs")
    try:
        for fut in as_completed(list(futures.values())):
            fut.result()  # raises the job's error here, with its traceback
            if bar is not None:
                bar.update()
    except BaseException:
        for fut in futures.values():
            fut.cancel()
        raise
    finally:
        with contextlib.suppress(Exception):  # workers of an external cluster live on after the run
            client.run(release_voxel_cache)
        if bar is not None:
            bar.close()


def _run_after(context_path: str, job: Job, *deps) -> str:
    return run_job(context_path, job)
