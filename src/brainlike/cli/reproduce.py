"""``brainlike reproduce nonaka2021``: the 29 published BH scores, recomputed beside the paper's."""

from __future__ import annotations

import argparse
from pathlib import Path

PAPERS = ("nonaka2021",)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="recompute a paper's published results and compare",
        description="Recompute published results from the published intermediate data and print them beside "
        "the paper's. nonaka2021: decoding-, encoding-based and averaged BH scores of 29 DNNs from the "
        "figshare accuracy trees (fetched through the dataset registry - offline mirror, data home or a "
        "checksummed download - unless --accuracy-root is given).",
    )
    p.add_argument("paper", choices=PAPERS, help="which paper")
    p.add_argument("--accuracy-root", type=Path, default=None,
                   help="folder holding the unzipped decoding_accuracy/ and encoding_accuracy/ trees "
                        "(default: download from figshare into the data home)")
    p.add_argument("--settings", type=Path, default=None, help="BHscore settings.json (default: mirror/data home/download)")
    p.add_argument("--dnn", action="append", default=None, help="restrict to this network (repeatable)")
    p.add_argument("--kind", action="append", choices=("decoding", "encoding"), default=None,
                   help="only this kind of accuracy (repeatable; default both)")
    p.add_argument("--n-repeat", type=int, default=100, help="random layer selections for the decoding score (100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layer selection (0)")
    p.add_argument("--download-dir", type=Path, default=None,
                   help="where to unpack the fetched archives (default: the data home)")
    p.add_argument("--out", type=Path, default=None, help="also write the comparison table as CSV")
    p.add_argument("--results", type=Path, default=None,
                   help="also write a results folder (accuracy tables, BH scores with bootstrap CIs and permutation "
                        "p-values) for `brainlike report`")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for --results (1000)")
    p.add_argument("--n-perm", type=int, default=1000, help="permutations for --results (1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from brainlike.reproduce import format_comparison, reproduce_nonaka2021

    table = reproduce_nonaka2021(
        accuracy_root=args.accuracy_root, settings=args.settings, dnns=args.dnn, n_repeat=args.n_repeat,
        seed=args.seed, download_dir=args.download_dir, kinds=tuple(args.kind or ("decoding", "encoding")),
        results_dir=args.results, n_boot=args.n_boot, n_perm=args.n_perm,
    )
    print(format_comparison(table))
    if args.out is not None:
        from brainlike._io import atomic_write

        atomic_write(args.out, lambda tmp: table.to_csv(tmp, index=False))
        print(f"wrote {args.out}")
    if args.results is not None:
        print(f"wrote {args.results / 'results'} (draw it with: brainlike report {args.results})")
    return 0
