"""``brainlike encode``: an encoding study (fwRF, GNet8j, GNet8r, ridge) from a YAML config."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "encode",
        help="fit image-computable encoding models (fwRF, GNet8j, GNet8r, ridge) and compare them; transfer "
        "matrix and tuning (St-Yves et al. 2022)",
        description="Run brainlike.encoding.run_encoding_study(CONFIG, OUT): every model per (subject, fold) on "
        "the same images and voxels, resumable; per-voxel accuracy, comparison, transfer matrix, tuning.",
    )
    p.add_argument("config", help="YAML file (keys: docs/encoding.md, 'Encoding studies')")
    p.add_argument("--out", required=True, help="output folder (jobs/, features/, results/)")
    p.add_argument("--check", action="store_true", help="validate the config and stop")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import logging

    from brainlike.encoding.study import load_encoding_config, run_encoding_study

    study = load_encoding_config(args.config)
    if args.check:
        print(f"config OK: models {study.models} on subjects {study.subjects}, ROIs {study.rois}")
        return 0
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_encoding_study(study, args.out, progress=not args.quiet)
    print(result.summary())
    print(f"tables and figures: {result.out / 'results'}")
    return 0
