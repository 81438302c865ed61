"""Check detection data before a search or training: decode every image, validate every annotation.

Prints the images, boxes kept/clipped/dropped, objects per class, the most objects in one image and
the object-size mix (small/medium/large by COCO's area thresholds 32² and 96²) at the detector's
resize; exits with status 1 and names the files when an image cannot be decoded or disagrees with
its annotations, or when no image has an object.

Examples:
  crnas check-data --coco ann.json images/
  crnas check-data --voc VOCdevkit/VOC2007 --voc-set trainval --preset paper
"""

from __future__ import annotations

import argparse

from crnas.cli.common import add_data_arguments, data_spec, load_dataset
from crnas.search.config import PRESETS, preset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--preset", choices=tuple(PRESETS), default="paper",
                        help="the search preset whose detector resize the size mix refers to (default paper: 800, 1333)")
    parser.add_argument("--min-size", type=int, help="detector resize: shorter side (default: the preset's)")
    parser.add_argument("--max-size", type=int, help="detector resize: longer side cap (default: the preset's)")


def run(args: argparse.Namespace) -> int:
    from crnas.data.check import check_data

    config = preset(args.preset)
    resize = (args.min_size or config.min_size, args.max_size or config.max_size)
    dataset = load_dataset(data_spec(args, config.data, resize=resize))
    result = check_data(dataset, min_size=resize[0], max_size=resize[1])
    print("\n".join(result.lines()))
    if result.errors:
        for error in result.errors[:10]:
            print(f"  {error}")
        more = f" (first: {result.errors[0]})" if result.errors else ""
        raise ValueError(f"{len(result.errors)} of {result.images} images cannot be used{more}")
    if not sum(result.classes.values()):
        raise ValueError(f"{result.source}: no image has an annotated object")
    return 0
