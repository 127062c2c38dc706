"""``brainlike demo``: the embedded demo (simulated cortex from EfficientNet-Lite0), no download."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on a simulated cortex (no download) and write the report",
        description="Generate images, simulate five ROIs whose voxels read out successively deeper layers "
        "of the pretrained EfficientNet-Lite0, then decode/encode, score (BH score with CIs and permutation "
        "p, beside a layer-shuffled control) and write the report. A few minutes on 2 cores.",
    )
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--scheduler", default="local", help="'local' (Dask LocalCluster), 'synchronous' or an address")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)")
    p.add_argument("--images", type=int, default=300, help="number of generated images (default 300)")
    p.add_argument("--units-per-layer", type=int, default=400, help="units decoded per layer (default 400)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (smoke test)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo
    from . import out_folder

    out_folder(args.out, "--out")
    for option, value, low in (("--workers", args.workers, 1), ("--images", args.images, 20),
                               ("--units-per-layer", args.units_per_layer, 2)):
        if value < low:
            raise ValueError(f"{option}: expected an integer >= {low}; got {value}")
    kw = dict(n_images=args.images, units_per_layer=args.units_per_layer)
    if args.quick:
        kw = dict(n_images=120, image_size=64, input_size=64, units_per_layer=100, n_voxels=60, n_subjects=1,
                  n_boot=50, n_perm=50)
    res = run_demo(args.out, scheduler=args.scheduler, n_workers=args.workers, progress=not args.no_progress,
                   report=not args.no_report, **kw)
    print("BH scores (95% bootstrap CI, permutation p):")
    print(res.scores[["dnn", "kind", "score", "ci_low", "ci_high", "p_perm"]].to_string(index=False,
                                                                                      float_format="%.3f"))
    print(f"results: {res.results_dir}")
    if res.report is not None:
        print(f"report: {res.report}")
    print(f"done in {res.timings.get('demo_total_s', 0):.0f} s")
    return 0
