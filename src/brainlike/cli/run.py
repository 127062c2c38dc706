"""``brainlike run``: an experiment config (YAML, or BHscore's settings.json) through the pipeline."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run an experiment (decoding/encoding, BH scores, report) from a config file",
        description="Validate CONFIG (YAML, or BHscore's settings.json as is), then run its jobs over "
        "(DNN, subject, ROI, layer, unit chunk) on a Dask LocalCluster (default), synchronously, or on an "
        "existing Dask cluster. Results are written per job atomically: running the same command again "
        "after an interruption does only the missing jobs. An encoding-study config (a 'network' and 'models' such "
        "as fwrf, gnet8j; docs/encoding.md) runs as 'brainlike encode CONFIG --out DIR' does (--workers: its "
        "LocalCluster; default scheduler: synchronous).",
    )
    p.add_argument("config", help="experiment YAML, or BHscore's settings.json")
    p.add_argument("--out", default=None, help="output folder (overrides the config's 'out')")
    p.add_argument("--scheduler", default=None,
                   help="'local' (Dask LocalCluster, default), 'synchronous', or a scheduler address "
                   "such as tcp://10.0.0.5:8786")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the LocalCluster")
    p.add_argument("--dataset", default=None, help="dataset name (for configs without one, e.g. settings.json)")
    p.add_argument("--features", default=None, metavar="ROOT",
                   help="BHscore feature tree (features/<image set>): each DNN's 'dir' is read below ROOT")
    p.add_argument("--bhscore-data", default=None, metavar="DATA",
                   help="BHscore's data/ folder as its scripts lay it out: fMRI from DATA/fmri, features of each "
                   "DNN 'dir' from DATA/features/ImageNetTraining and DATA/features/ImageNetTest; accuracies are "
                   "also written in BHscore's trees under --out")
    p.add_argument("--bhscore-features", default=None, choices=["features", "features_all"],
                   help="with --bhscore-data: the one feature folder both analyses read, 'features' (BHscore's "
                   "decoding scripts) or 'features_all' (all units, as its encoding scripts); default: as BHscore, "
                   "decoding reads features/ and encoding features_all/ (the one there when only one is)")
    p.add_argument("--analyses", nargs="+", default=None, metavar="ANALYSIS",
                   help="analyses to run instead of the config's (e.g. 'decoding encoding'; a settings.json runs "
                   "decoding only, encoding with BHscore's recipe)")
    p.add_argument("--control", action="append", default=[], choices=["layer_shuffled"],
                   help="add for each network a control copy, e.g. 'layer_shuffled' (its units dealt out to the "
                   "layers at random): a network with no hierarchy, run through the same jobs")
    p.add_argument("--check", action="store_true",
                   help="validate the config and resolve its dataset, subjects, ROIs, stimuli, models, layers and "
                   "scheduler as the run would (brainlike.pipeline.check_experiment); print what would run; "
                   "run nothing")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import check_experiment, load_config, run_experiment
    from . import out_folder

    if _is_study(args.config):  # an encoding study (models: fwrf, gnet8j, ...): what brainlike encode runs
        return _run_study(args)
    if args.out is not None:
        out_folder(args.out, "--out")
    if args.features is not None and not Path(args.features).is_dir():
        raise FileNotFoundError(f"--features {args.features}: feature tree folder not found")
    overrides = {"out": args.out}
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.bhscore_data is not None:
        overrides["bhscore_data"] = args.bhscore_data
        overrides["bhscore_features"] = args.bhscore_features
    if args.analyses:
        overrides["analyses"] = list(args.analyses)
    if args.control:
        overrides["add_controls"] = list(args.control)
    if args.scheduler is not None or args.workers is not None:
        overrides["execution"] = {k: v for k, v in (("scheduler", args.scheduler), ("n_workers", args.workers))
                                  if v is not None}
    if args.check:
        report = check_experiment(args.config, features_root=args.features, **overrides)
        print(report)
        print("config OK")
        return 0
    exp = load_config(args.config, features_root=args.features, **overrides)
    out_folder(exp.out, "config key 'out'")
    res = run_experiment(exp, progress=not args.no_progress, report=False if args.no_report else None)
    if len(res.scores):
        print(res.scores[["dnn", "kind", "score", "ci_low", "ci_high", "p_perm"]].to_string(index=False,
                                                                                          float_format="%.3f"))
    else:
        print("no BH scores (they need >= 2 layers and >= 2 ROIs and a decoding or encoding analysis)")
    print(f"results: {res.results_dir}")
    if "decodability" in exp.analyses:
        print(f"decodability files: {res.out / 'decodability'}")
    if res.report is not None:
        print(f"report: {res.report}")
    s = res.summary
    print(f"{s['n_run']} of {s['n_jobs']} jobs run ({s['n_done_before']} already done) in "
          f"{res.timings.get('total_s', 0):.1f} s", file=sys.stderr)
    return 0


def _is_study(config) -> bool:
    from brainlike.encoding.study import is_encoding_study
    from brainlike.pipeline.config import read_config_file

    path = Path(config)
    return path.is_file() and path.suffix.lower() in (".yaml", ".yml", ".json") and \
        is_encoding_study(read_config_file(path))


def _run_study(args) -> int:
    from .encode import run_study

    for opt, value in (("--dataset", args.dataset), ("--features", args.features),
                       ("--bhscore-data", args.bhscore_data), ("--analyses", args.analyses), ("--control", args.control)):
        if value:
            raise ValueError(f"{opt}: not an option of an encoding study (its config names the dataset and analyses)")
    if args.out is None and not args.check:
        raise ValueError(f"--out: an encoding study ({args.config}) needs an output folder")
    return run_study(args.config, args.out, scheduler=args.scheduler or "synchronous", n_workers=args.workers,
                     check=args.check, quiet=args.no_progress)
