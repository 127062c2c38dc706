"""``brainlike report RESULTS_DIR``: HTML page and PNG/SVG figures from a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the HTML report and figures of a results folder",
        description="Read the results tables (decoding/encoding accuracies, BH scores, data quality, provenance) of "
        "the current results generation of a run (brainlike.pipeline.load_results: checked against its manifest) and "
        "write a self-contained index.html plus figures/*.png and *.svg.",
    )
    p.add_argument("results_dir", type=Path, help="a run's output folder (<out> or <out>/results), or a folder of tables")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: report/ beside results/)")
    p.add_argument("--roi", default=None, help="ROI of the decodability figures (default: most decodable ROI)")
    p.add_argument("--dnn", default=None, help="network of the two-subject figures (default: top BH score)")
    p.add_argument("--pval", type=float, default=0.05, help="significance threshold for kept units (0.05)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from brainlike.report import write_report
    from brainlike.report.encoding import is_encoding_results, write_encoding_report

    if is_encoding_results(args.results_dir):  # the output of brainlike encode
        index = write_encoding_report(args.results_dir, args.out)
    else:
        index = write_report(args.results_dir, args.out, pval=args.pval, roi=args.roi, dnn=args.dnn)
    print(f"wrote {index}")
    return 0
