"""MACs and parameters of an architecture, alone or inside a detector (docs/flops.md).

Examples:
  crnas flops cr_resnet50 --input 800x1088 --detector faster_rcnn_fpn
  crnas flops runs/search/result.json --input 224 --layers
"""

from __future__ import annotations

import argparse
import json

from crnas.arch import DETECTORS
from crnas.cli.common import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="a name (resnet50, cr_resnet50, ...), architecture JSON, or a JSON / result.json path")
    parser.add_argument("--input", type=parse_size, default=(224, 224), metavar="HxW", help="input size (default 224x224)")
    parser.add_argument("--detector", choices=DETECTORS, help="count the whole detector (default: backbone + classifier)")
    parser.add_argument("--width", type=float, help="override the width multiplier")
    parser.add_argument("--rois", type=int, help="RoIs through the box head (default 2000)")
    parser.add_argument("--num-classes", type=int, help="detector classes incl. background (default 81)")
    parser.add_argument("--no-classifier", action="store_true", help="backbone only: leave out the classifier")
    parser.add_argument("--layers", action="store_true", help="one row per layer")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from crnas import flops
    from crnas.arch import get_architecture

    arch = get_architecture(args.arch, width=args.width)
    report = flops.count(
        arch,
        args.input,
        args.detector,
        rois=args.rois,
        num_classes=args.num_classes,
        classifier=False if args.no_classifier else None,
    )
    if args.json:
        print(json.dumps({
            "architecture": arch.to_dict(),
            "input_size": list(report.input_size),
            "detector": report.detector,
            "convention": report.convention,
            "macs": report.macs,
            "params": report.params,
            "by_stage": report.by_stage,
            "layers": report.layers,
        }, indent=2))
    else:
        print(repr(arch))
        print(report.table(layers=args.layers), end="")
    return 0
