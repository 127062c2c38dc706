"""``brainlike extract``: DNN features of an image folder/zip into a resumable, checksummed store."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help="extract DNN layer activations of images into a resumable zarr store",
        description="Run the model once per batch with hooks on all requested layers and stream the "
        "activations into OUT (a zarr store keyed by model weights, preprocessing, layers and images; every "
        "chunk file recorded with its checksum). Running it again resumes an interrupted extraction and "
        "recomputes any batch whose files are missing, truncated or corrupt. --verify only checks the store.",
    )
    p.add_argument("--model", help="e.g. efficientnet_lite0, torchvision:alexnet, timm:resnet50")
    p.add_argument("--images", help="folder or .zip of images")
    p.add_argument("--layers", nargs="+", help="layer names or aliases (e.g. block3 block7, conv1 fc7)")
    p.add_argument("--out", required=True, help="store folder (created; reused when the request is the same)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--random-weights", action="store_true", help="same architecture, random weights (control)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random weights with --random-weights (default 0: the same weights every run)")
    p.add_argument("--export-bhscore", metavar="DIR", default=None,
                   help="also write BHscore's DIR/<image set>/pytorch/<model>/<layer>/<id>.mat layout")
    p.add_argument("--verify", action="store_true",
                   help="only check every chunk file of the store in --out against its recorded checksum; "
                        "names each damaged file; exit code 2 when the store is damaged or unfinished")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def verify_store(out) -> int:
    from ..features import verify

    state = verify(out)
    for p in state.problems:
        print(f"damaged: {p}")
    if state.unfinished:
        print(f"unfinished: {len(state.unfinished)} batch(es) without a completion record "
              f"(first: {state.unfinished[:5]})")
    if not state.ok:
        print(f"brainlike extract: error: feature store {out} is {'damaged' if state.problems else 'unfinished'}: "
              f"{len(state.damaged)} damaged and {len(state.unfinished)} unfinished batch(es); run extract again "
              "with the same request to recompute them", file=sys.stderr)
        return 2
    print(f"{out}: {state.n_files} chunk files, {state.n_bytes:,} bytes, every checksum verified")
    return 0


def run(args) -> int:
    from ..features import export_bhscore, extract
    from ..models import load
    from ..stimuli import ImageSet

    if args.verify:
        return verify_store(args.out)
    missing = [f"--{n}" for n in ("model", "images", "layers") if not getattr(args, n)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (all but --out may be left out only with --verify)")
    src = Path(args.images)
    if src.is_dir():
        images = ImageSet.from_folder(src)
    elif src.is_file() and src.suffix.lower() == ".zip":
        images = ImageSet.from_zip(src)
    else:
        raise FileNotFoundError(f"--images must be a folder or a .zip file of images; got {args.images!r}")
    try:
        model = load(args.model, pretrained=not args.random_weights, seed=args.seed)
        fs = extract(model, images, args.layers, store=args.out, batch_size=args.batch_size, device=args.device,
                     progress=not args.no_progress)
    except (ImportError, RuntimeError, OSError) as err:
        print(f"brainlike extract: error: {err}", file=sys.stderr)
        return 2
    for p in fs.repaired:
        print(f"recomputed damaged: {p}")
    done = "read back, nothing computed" if not fs.computed else f"computed {len(fs.computed)} of {fs.n_batches} batches"
    print(f"{len(fs.ids)} images of {images.name!r} through {model.name} -> {fs.path} ({done})")
    for name, lf in fs.items():
        print(f"  {name:12s} {lf.module:24s} units {lf.n_units:>9d}  shape {lf.unit_shape}")
    if args.export_bhscore:
        net = model.name.replace(":", "_").replace("/", "_")
        out = export_bhscore(fs, args.export_bhscore, images.name, "pytorch", net)
        print(f"BHscore layout written to {out}")
    return 0

