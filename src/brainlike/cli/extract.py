"""``brainlike extract``: DNN features of an image folder/zip into a resumable store."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help="extract DNN layer activations of images into a resumable zarr store",
        description="Run the model once per batch with hooks on all requested layers and stream the "
        "activations into OUT (a zarr store keyed by model weights, preprocessing, layers and images). "
        "Running it again resumes an interrupted extraction.",
    )
    p.add_argument("--model", required=True, help="e.g. efficientnet_lite0, torchvision:alexnet, timm:resnet50")
    p.add_argument("--images", required=True, help="folder or .zip of images")
    p.add_argument("--layers", nargs="+", required=True, help="layer names or aliases (e.g. block3 block7, conv1 fc7)")
    p.add_argument("--out", required=True, help="store folder (created; reused when the request is the same)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--random-weights", action="store_true", help="same architecture, random weights (control)")
    p.add_argument("--export-bhscore", metavar="DIR", default=None,
                   help="also write BHscore's DIR/<image set>/pytorch/<model>/<layer>/<id>.mat layout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..features import export_bhscore, extract
    from ..models import load
    from ..stimuli import ImageSet

    src = Path(args.images)
    if src.is_dir():
        images = ImageSet.from_folder(src)
    elif src.is_file() and src.suffix.lower() == ".zip":
        images = ImageSet.from_zip(src)
    else:
        raise FileNotFoundError(f"--images must be a folder or a .zip file of images; got {args.images!r}")
    try:
        model = load(args.model, pretrained=not args.random_weights)
        fs = extract(model, images, args.layers, store=args.out, batch_size=args.batch_size, device=args.device,
                     progress=not args.no_progress)
    except (ImportError, RuntimeError, OSError) as err:
        print(f"brainlike extract: error: {err}", file=sys.stderr)
        return 2
    print(f"{len(fs.ids)} images of {images.name!r} through {model.name} -> {fs.path}")
    for name, lf in fs.items():
        print(f"  {name:12s} {lf.module:24s} units {lf.n_units:>9d}  shape {lf.unit_shape}")
    if args.export_bhscore:
        net = model.name.replace(":", "_").replace("/", "_")
        out = export_bhscore(fs, args.export_bhscore, images.name, "pytorch", net)
        print(f"BHscore layout written to {out}")
    return 0
