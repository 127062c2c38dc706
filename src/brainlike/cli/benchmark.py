"""``brainlike benchmark NAME``: score a network on a real-data benchmark (``brainlike.validation``)."""

from __future__ import annotations

import logging

from brainlike.validation._benchmark import BUILTIN  # a table of names: importing it loads no benchmark


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="score a network on a real-data benchmark: " + ", ".join(BUILTIN),
        description="Run one benchmark on a network (default EfficientNet-Lite0 and its 16 blocks); print its "
        "table, its figures beside EfficientNet-Lite0's and each expectation with the exact bound it tests; save "
        "them with figures in --out. Python: brainlike.validation.run_benchmark(name, model, layers, ...).",
    )
    p.add_argument("name", help="benchmark name: " + ", ".join(BUILTIN) + " (or one registered in Python)")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="network for brainlike.models.load (e.g. timm:resnet18, torchvision:alexnet, onnx:net.onnx)")
    p.add_argument("--layers", nargs="+", default=None,
                   help="layers to score (module paths or aliases; default: EfficientNet-Lite0's blocks)")
    p.add_argument("--random-weights", action="store_true", help="the network with random weights only (drawn from --seed)")
    p.add_argument("--weights", nargs="+", default=None, choices=["pretrained", "random"],
                   help="weights to score (default: pretrained and random; --random-weights = random)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and of the image subset")
    p.add_argument("--n-images", type=int, default=None, help="random subset of images (fast checks)")
    p.add_argument("--session", default=None, help="v4-cowley2023 / v4-decodability: Cowley V4 session")
    p.add_argument("--sessions", nargs="+", default=None, help="v4-encoding-models: Cowley V4 sessions")
    p.add_argument("--ceiling-session", default=None,
                   help="v4-cowley2023: session with raw repeats for the noise ceiling (default 210325; 'none' skips)")
    p.add_argument("--n-units", type=int, default=None, help="v4-decodability: units drawn per layer (default 500)")
    p.add_argument("--cv", type=int, default=None, help="folds (default 5)")
    p.add_argument("--inner-cv", type=int, default=None, help="inner folds choosing each neuron's ridge alpha (default 5)")
    p.add_argument("--run", nargs="+", default=None, choices=["fwrf", "gnet", "ridge"],
                   help="v4-encoding-models: the models to fit (default all three)")
    p.add_argument("--gnet-layer", default=None, help="v4-encoding-models: GNet's frozen network ends at this layer")
    p.add_argument("--gnet-epochs", type=int, default=None, help="v4-encoding-models: GNet epochs (default 30)")
    p.add_argument("--store", default=None, help="feature store folder (reused between runs)")
    p.add_argument("--out", default=None, help="output folder (default benchmark-output/<name>)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a judged expectation differs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


# flag -> (benchmarks it applies to, keyword option of the benchmark, conversion)
_FLAGS = {
    "session": (("v4-cowley2023", "v4-decodability"), "session", str),
    "ceiling_session": (("v4-cowley2023",), "ceiling_session", lambda v: None if v.lower() == "none" else v),
    "sessions": (("v4-encoding-models",), "sessions", tuple),
    "n_units": (("v4-decodability",), "n_units", int),
    "cv": (("v4-cowley2023", "v4-decodability", "v4-encoding-models"), None, int),
    "inner_cv": (("v4-cowley2023", "v4-encoding-models"), "inner_cv", int),
    "run": (("v4-encoding-models",), "run", tuple),
    "gnet_layer": (("v4-encoding-models",), "gnet_layer", str),
    "gnet_epochs": (("v4-encoding-models",), "gnet_params", lambda v: {"max_epochs": int(v)}),
}


def options(args) -> dict:
    """The keyword options of the benchmark ``args.name`` from the command line (unset flags: its defaults)."""
    if args.random_weights and args.weights and tuple(args.weights) != ("random",):
        raise ValueError("--random-weights and --weights pretrained contradict each other; give one of them")
    weights = ("random",) if args.random_weights else (tuple(args.weights) if args.weights else None)
    opts = dict(weights=weights, seed=args.seed)
    for key, value in (("n_images", args.n_images), ("store", args.store)):
        if value is not None:
            opts[key] = value
    for flag, (names, key, convert) in _FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if args.name in BUILTIN and args.name not in names:
            raise ValueError(f"--{flag.replace('_', '-')} does not apply to the benchmark {args.name!r} "
                             f"(only to {', '.join(names)})")
        if key is None:  # --cv: the number of folds
            key = "n_folds" if args.name == "v4-encoding-models" else "cv"
        opts[key] = convert(value)
    return opts


def run(args) -> int:
    from pathlib import Path

    from brainlike.validation import run_benchmark

    say = None if args.quiet else logging.getLogger("brainlike").info  # progress lines on the brainlike logger
    out = Path(args.out) if args.out else Path("benchmark-output") / args.name
    result = run_benchmark(args.name, args.model, args.layers, out_dir=out, progress=say, **options(args))
    print(result.text())
    return 1 if (args.strict and not result.passed) else 0
