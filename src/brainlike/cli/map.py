"""``brainlike map``: one or every layer of a network to one or every ROI (ridge and PLS)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "map",
        help="map network layers to ROIs with ridge and PLS (per-voxel r/R², ROI average, noise ceiling, figures)",
        description="Fit RidgeCV (per-voxel alpha) and PLS (components by CV) from each layer's features to each "
        "ROI's responses on the same splits; write tables and figures.",
    )
    p.add_argument("--dataset", required=True, help="registered dataset name (e.g. cowley2023_v4, kay2008_vim1)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. session=190923, subject=1)")
    p.add_argument("--stimuli", help="image folder or zip when the dataset carries no images")
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
    p.add_argument("--seed", type=int, default=0)
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


def _resolve_layers(model, requested) -> list[str]:
    from brainlike.mapping import check_names
    from brainlike.models import layers

    all_layers = list(layers(model))
    aliases = list(getattr(model, "aliases", {}) or {})
    if requested in (["all"], None):
        return aliases or all_layers
    return check_names(requested, aliases + all_layers, "layers")


def run(args) -> int:
    import numpy as np

    from brainlike import datasets, models
    from brainlike.features import extract
    from brainlike.mapping import MappingResult, check_names, inner_folds, make_splits, map_layers
    from brainlike.stimuli import ImageSet, retina_warp

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    data = datasets.load(args.dataset, **_options(args.option))
    if not hasattr(data, "roi_names"):
        raise ValueError(f"--dataset {args.dataset!r} holds no voxel/neuron responses with ROIs")
    rois = check_names(args.rois, data.roi_names, "rois")
    model = models.load(args.model, pretrained=not args.random_weights)
    layer_names = _resolve_layers(model, args.layers)

    stimuli = data.stimuli
    if args.stimuli:
        p = Path(args.stimuli)
        stimuli = ImageSet.from_zip(p) if p.suffix == ".zip" else ImageSet.from_folder(p)
    if stimuli is None:
        raise ValueError(f"--dataset {args.dataset!r} carries no images: give them with --stimuli")
    ids = list(dict.fromkeys(str(s) for s in data.stimulus_ids))
    if args.n_images is not None:
        if args.n_images < 2:
            raise ValueError(f"--n-images must be >= 2; got {args.n_images}")
        keep = set(np.random.default_rng(args.seed).choice(ids, size=min(args.n_images, len(ids)), replace=False))
        ids = [s for s in ids if s in keep]
        data = data.select_samples(np.array([s in keep for s in data.stimulus_ids]))
    missing = [s for s in ids if s not in set(stimuli.ids)]
    if missing:
        raise ValueError(f"stimulus ids do not match: {len(missing)} response ids are not images of "
                         f"{getattr(stimuli, 'name', 'the stimuli')!r}, e.g. {missing[:5]}")
    stimuli = stimuli.subset(ids)

    variants = {"off": ["plain"], "on": ["warped"], "both": ["plain", "warped"]}[args.retina_warp]
    n_heldout = args.n_heldout
    if n_heldout is not None and n_heldout >= 1:
        n_heldout = int(n_heldout)
    # check the splits before the (slow) feature extraction
    avg = data.average_repetitions()
    splits = make_splits(avg.n_samples, avg.split, scheme=args.scheme, n_heldout=n_heldout, cv=args.cv,
                         seed=args.seed)
    for f in splits.fits:
        inner_folds(len(f.fit), args.inner_cv, args.seed)
    results = []
    for variant in variants:
        stim = stimuli
        if variant == "warped":
            fovea = args.fovea
            stim = stimuli.map(lambda im: retina_warp(im, fovea=fovea), name=f"{getattr(stimuli, 'name', '')}_warped")
        store = None if args.store is None else Path(args.store) / variant
        say(f"extracting {len(layer_names)} layer(s) of {model.name} for {len(stim)} {variant} images")
        feats = extract(model, stim, layer_names, store=store, batch_size=args.batch_size, progress=not args.quiet)
        results.append(map_layers(
            {name: feats[name] for name in layer_names}, data, rois=rois, methods=args.methods,
            scheme=args.scheme, n_heldout=n_heldout, cv=args.cv, inner_cv=args.inner_cv,
            alphas="auto" if args.alphas is None else np.asarray(args.alphas),
            pls_components=args.pls_components, seed=args.seed, stimuli_label=variant, progress=say,
        ))
    result = results[0] if len(results) == 1 else MappingResult.concat(results)
    result.info.update(dataset=args.dataset, options=_options(args.option), model=model.name,
                       pretrained=not args.random_weights)
    out = Path(args.out)
    result.save(out)
    print(f"{model.name} ({'random' if args.random_weights else 'pretrained'} weights) -> {args.dataset}: "
          f"{results[0].splits.describe()}")
    for variant in variants:
        for method in args.methods:
            for split in results[0].splits.evaluations:
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
