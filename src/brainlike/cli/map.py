"""``brainlike map``: one or every layer of a network to one or every ROI (ridge and PLS)."""

from __future__ import annotations

import sys

import numpy as np
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "map",
        help="map network layers to ROIs with ridge and PLS (per-voxel r/R², ROI average, noise ceiling, figures)",
        description="Fit RidgeCV (per-voxel alpha) and PLS (components by CV) from each layer's features to each "
        "ROI's responses on the same splits; write tables and figures.",
    )
    p.add_argument("--dataset", required=True, help="registered dataset name (e.g. cowley2023_v4, kay2008_vim1)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the dataset's files as downloaded (e.g. CRCNS vim-1: EstimatedResponses.mat, "
                   "Stimuli.mat) instead of the data home")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. session=190923, subject=1)")
    p.add_argument("--stimuli", help="images when the dataset carries none: a folder, a zip, or a registered image "
                   "dataset (e.g. kay2008_vim1_stimuli)")
    p.add_argument("--use-split", nargs="+", default=None, metavar="SPLIT",
                   help="keep only these splits of the responses (e.g. train: vim-1's 1750 training images)")
    p.add_argument("--model", default="efficientnet_lite0", help="network name (default efficientnet_lite0)")
    p.add_argument("--random-weights", action="store_true", help="use randomly initialised weights")
    p.add_argument("--layers", nargs="+", default=["all"], help="layer names or aliases, or 'all' (default)")
    p.add_argument("--rois", nargs="+", default=["all"], help="ROI names, or 'all' (default)")
    p.add_argument("--methods", nargs="+", default=["ridge", "pls"], choices=["ridge", "pls"])
    p.add_argument("--scheme", default="auto", choices=["auto", "kay", "cv"],
                   help="kay: held-out + validation sets; cv: k-fold; auto: kay when a test split or --n-heldout")
    p.add_argument("--n-heldout", type=float, default=None,
                   help="training images held out for testing (count, e.g. 250, or fraction)")
    p.add_argument("--cv", type=int, default=5, help="outer folds of the cv scheme (default 5)")
    p.add_argument("--inner-cv", type=int, default=5, help="inner folds choosing alpha / PLS components (default 5)")
    p.add_argument("--alphas", type=float, nargs="+", default=None, help="ridge alpha grid (default: 13 values from 1e-3 to 1e3 times the mean eigenvalue of the feature Gram)")
    p.add_argument("--pls-components", type=int, nargs="+", default=None,
                   help="PLS component candidates (default 1 2 4 8 16 32, limited to the rank)")
    p.add_argument("--retina-warp", choices=["off", "on", "both"], default="off",
                   help="features from retina-warped images: off (plain), on (warped only), both (compare)")
    p.add_argument("--fovea", type=float, default=0.25, help="retina warp fovea size (fraction of half-width)")
    p.add_argument("--n-images", type=int, default=None, help="use a random subset of this many images")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random choices (images, folds) and of the random weights with --random-weights")
    p.add_argument("--store", default=None, help="feature store folder (reused between runs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="map-output", help="output folder (tables, figures)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def _options(pairs) -> dict:
    out = {}
    for item in pairs:
        if "=" not in item:
            raise ValueError(f"--option must be KEY=VALUE; got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def run(args) -> int:
    from brainlike import datasets, models
    from brainlike.mapping.run import RETINA_WARP, run_study

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    data = datasets.load_brain(args.dataset, data_dir=args.data_dir, **_options(args.option))
    if not hasattr(data, "roi_names"):
        raise ValueError(f"--dataset {args.dataset!r} holds no voxel/neuron responses with ROIs")
    try:
        model = models.load(args.model, pretrained=not args.random_weights, seed=args.seed)
    except models.WeightsUnavailableError as err:
        raise ValueError(f"--model {args.model}: {err} From the command line: --random-weights.") from None
    variants = RETINA_WARP[args.retina_warp]
    result = run_study(
        data, model, layers=args.layers, rois=args.rois, stimuli=args.stimuli, use_split=args.use_split,
        methods=args.methods, scheme=args.scheme, n_heldout=args.n_heldout, cv=args.cv, inner_cv=args.inner_cv,
        alphas="auto" if args.alphas is None else np.asarray(args.alphas), pls_components=args.pls_components,
        retina_warp=args.retina_warp, fovea=args.fovea, n_images=args.n_images, seed=args.seed,
        store=args.store, batch_size=args.batch_size, progress=say,
    )
    result.info.update(dataset=args.dataset, options=_options(args.option), pretrained=not args.random_weights,
                       weights_seed=None if not args.random_weights else args.seed)
    splits = result.splits
    out = Path(args.out)
    result.save(out)
    print(f"{model.name} ({'random' if args.random_weights else 'pretrained'} weights) -> {args.dataset}: "
          f"{splits.describe()}")
    for variant in variants:
        for method in args.methods:
            for split in splits.evaluations:
                t = result.table("r", method=method, split=split, stimuli=variant)
                print(f"\nmean voxel r — {method}, {split}, {variant} stimuli (layer x ROI):")
                print(t.to_string(float_format=lambda v: f"{v:.3f}"))
    ra = result.roi_average
    print("\nROI-averaged response fit (r² = squared Pearson r; r_norm = r / noise ceiling):")
    print(ra.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not args.no_figures:
        from brainlike.mapping.plots import save_figures

        for p in save_figures(result, out / "figures"):
            print(f"figure: {p}")
    print(f"tables: {out}")
    return 0
