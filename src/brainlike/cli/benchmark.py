"""``brainlike benchmark NAME``: the real-data validation suite (data from the registry / mirror)."""

from __future__ import annotations

import sys


# Kept here (not imported from brainlike.validation) so that building the parser stays light;
# tests check that it equals brainlike.validation.BENCHMARKS.
BENCHMARK_NAMES = ("v4-cowley2023", "v4-decodability", "rsa-92images")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="real-data validation: " + ", ".join(BENCHMARK_NAMES),
        description="Run one real-data benchmark; print its table and the expected figures next to the obtained "
        "ones; save the table and figures in --out.",
    )
    p.add_argument("name", choices=list(BENCHMARK_NAMES), help="benchmark name")
    p.add_argument("--n-images", type=int, default=None, help="random subset of images (fast checks)")
    p.add_argument("--session", default=None, help="Cowley V4 session (default 190923 / 201025 for decodability)")
    p.add_argument("--ceiling-session", default=None,
                   help="v4-cowley2023: session with raw repeats for the noise ceiling (default 210325; 'none' skips)")
    p.add_argument("--weights", nargs="+", default=["pretrained", "random"], choices=["pretrained", "random"])
    p.add_argument("--blocks", nargs="+", default=None, help="v4-cowley2023: only these blocks (e.g. block0 block1)")
    p.add_argument("--n-units", type=int, default=500, help="v4-decodability: units drawn per block")
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--inner-cv", type=int, default=5, help="v4-cowley2023: inner folds choosing each neuron's alpha")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default=None, help="feature store folder (reused between runs)")
    p.add_argument("--out", default=None, help="output folder (default benchmark-output/<name>)")
    p.add_argument("--strict", action="store_true", help="exit 1 when an obtained figure differs from the expected")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from brainlike.validation import run_benchmark

    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(args.out) if args.out else Path("benchmark-output") / args.name
    opts = dict(n_images=args.n_images, weights=tuple(args.weights), seed=args.seed, out_dir=out,
                store=args.store, progress=say)
    if args.name == "v4-cowley2023":
        opts.update(cv=args.cv, inner_cv=args.inner_cv, blocks=args.blocks)
        if args.session:
            opts["session"] = args.session
        if args.ceiling_session:
            opts["ceiling_session"] = None if args.ceiling_session.lower() == "none" else args.ceiling_session
    elif args.name == "v4-decodability":
        opts.update(cv=args.cv, n_units=args.n_units)
        if args.session:
            opts["session"] = args.session
    elif args.session or args.ceiling_session:
        raise ValueError(f"--session applies to the V4 benchmarks only, not to {args.name!r}")
    result = run_benchmark(args.name, **opts)
    print(result.text())
    return 1 if (args.strict and not result.passed) else 0
