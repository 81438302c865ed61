"""What the subcommands share: the usage error, argument types, the data arguments, metric formatting."""

from __future__ import annotations

import argparse
from typing import Any

from crnas.data.spec import load_dataset
from crnas.data.synthetic import SIZES

__all__ = ["CLIUsageError", "add_data_arguments", "data_spec", "load_dataset", "parse_size", "percent"]


class CLIUsageError(Exception):
    """A command-line mistake: reported with the subcommand's usage, exit status 2."""


def parse_size(text: str) -> tuple[int, int]:
    """``800x1088`` or ``512`` -> (H, W)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 800x1088) or one int, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW with positive ints, got {text!r}")
    return values[0], values[1]


def percent(value: float) -> str:
    """A COCO metric in percent; pycocotools' -1 (no ground truth in that range) as n/a."""
    return "n/a" if value < 0 else f"{100 * value:.1f}"


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--synthetic", nargs="?", type=int, const=-1, metavar="N", help="the built-in synthetic dataset (N images)")
    group.add_argument("--coco", nargs=2, metavar=("ANN", "IMAGES"), help="a COCO json and its image folder")
    group.add_argument("--voc", metavar="ROOT", help="a Pascal VOC folder (or images beside their .xml files)")
    parser.add_argument("--voc-set", help="VOC image set (ImageSets/Main/<set>.txt)")
    parser.add_argument("--image-size", type=int, help="synthetic images are SxS (default: the preset's, or 384)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic images (default 0)")
    parser.add_argument(
        "--synthetic-sizes", choices=SIZES, default="coco",
        help="object sizes of the synthetic images: COCO's small/medium/large mix at the detector's input (default), "
        "or the earlier log-uniform box sides (to reproduce results recorded with them)",
    )


def data_spec(
    args: argparse.Namespace, defaults: dict[str, Any] | None = None, *, resize: tuple[int, int] | None = None
) -> dict[str, Any]:
    """A JSON-able description of the data the arguments select; ``resize`` is the detector's
    ``(min_size, max_size)``, at which the synthetic images' size mix is drawn (without it: the images'
    own size, or what a preset completes, :func:`crnas.search.config.preset`)."""
    defaults = defaults or {}
    if args.coco:
        return {"kind": "coco", "ann_file": args.coco[0], "image_root": args.coco[1]}
    if args.voc:
        return {"kind": "voc", "root": args.voc, "image_set": args.voc_set}
    if args.synthetic is not None or defaults.get("kind") == "synthetic":
        num = args.synthetic if args.synthetic not in (None, -1) else defaults.get("num_images", 512)
        size = args.image_size or defaults.get("image_size", 384)
        spec = {"kind": "synthetic", "num_images": num, "image_size": size, "seed": args.data_seed, "sizes": args.synthetic_sizes}
        if resize:
            spec["size_reference"] = min(resize)  # the short side of a square image after the resize
        return spec
    raise ValueError("data: expected one of --synthetic, --coco ANN IMAGES or --voc ROOT")
