"""``brainlike encode``: an encoding study (fwRF, GNet8j, GNet8r, ridge) from a YAML config."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "encode",
        help="fit image-computable encoding models (fwRF, GNet8j, GNet8r, ridge) and compare them; transfer "
        "matrix and tuning (St-Yves et al. 2022)",
        description="Run brainlike.encoding.run_encoding_study(CONFIG, OUT): every model on the same images and "
        "voxels, as jobs per (model, subject, ROI, fold) (GNets per fold) of the pipeline's executor, resumable; "
        "per-voxel accuracy, comparison, transfer matrix, tuning, published as one results generation.",
    )
    p.add_argument("config", help="YAML file (keys: docs/encoding.md, 'Encoding studies')")
    p.add_argument("--out", required=True, help="output folder (jobs/, features/, results/, report/)")
    p.add_argument("--scheduler", default="synchronous",
                   help="'synchronous' (in this process, default), 'local' (a Dask LocalCluster), or a Dask "
                   "scheduler address such as tcp://10.0.0.5:8786")
    p.add_argument("--n-workers", type=int, default=None, help="worker processes of the LocalCluster")
    p.add_argument("--check", action="store_true", help="validate the config and stop")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    return run_study(args.config, args.out, scheduler=args.scheduler, n_workers=args.n_workers, check=args.check,
                     quiet=args.quiet)


def run_study(config, out, *, scheduler="synchronous", n_workers=None, check=False, quiet=False) -> int:
    """What ``brainlike encode`` and ``brainlike run`` on an encoding-study config do."""
    import logging

    from brainlike.encoding.study import load_encoding_config, run_encoding_study

    from . import out_folder

    study = load_encoding_config(config)
    if check:
        print(f"config OK: models {study.models} on subjects {study.subjects}, ROIs {study.rois}")
        return 0
    out_folder(out, "--out")
    if n_workers is not None and n_workers < 1:
        raise ValueError(f"--n-workers: must be >= 1; got {n_workers}")
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_encoding_study(study, out, progress=not quiet, scheduler=scheduler, n_workers=n_workers)
    print(result.summary())
    print(f"tables and figures: {result.out / 'results'}")
    s = result.jobs
    print(f"{s['n_run']} of {s['n_jobs']} jobs run ({s['n_done_before']} already done)", file=sys.stderr)
    return 0
