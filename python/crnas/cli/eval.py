"""Evaluate trained runs (from `crnas train`) on their held-out split or on other data; several runs
are compared side by side.

Examples:
  crnas eval runs/r50 runs/cr50
  crnas eval runs/cr50 --coco val.json val_images/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crnas.cli.common import CLIUsageError, add_data_arguments, data_spec, load_dataset, percent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `crnas train`")
    add_data_arguments(parser, required=False)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-dets", type=int, dest="max_detections",
                        help="detections kept per image and scored (default: each run's, COCO's 100 unless trained with --max-dets)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args: argparse.Namespace) -> int:

    from crnas import flops
    from crnas.arch import MACS_INPUT_SIZE, get_architecture
    from crnas.cli.errors import check_device
    from crnas.data import split
    from crnas.detection import detections_per_image
    from crnas.eval import METRICS, coco_eval
    from crnas.runs import RUN_FILE, RunRecord, load_detector

    check_device(args.device)
    explicit = args.synthetic is not None or args.coco or args.voc
    rows: list[dict[str, Any]] = []
    for run_dir in args.runs:
        if not (run_dir / RUN_FILE).is_file():
            raise CLIUsageError(f"{run_dir}: expected a run directory of `crnas train` (no {RUN_FILE})")
        info = RunRecord.load(run_dir)
        if explicit:
            dataset = load_dataset(data_spec(args, resize=(info.model.min_size, info.model.max_size)))
        else:
            full = load_dataset(info.data)
            _, dataset = split(full, info.split["val_fraction"], info.split["seed"])
        if list(dataset.classes) != info.classes:
            raise ValueError(f"data: expected the classes the run was trained on {info.classes}, got {list(dataset.classes)}")
        model = load_detector(run_dir, max_detections=args.max_detections)
        metrics = coco_eval(
            model.to(args.device), dataset, batch_size=args.batch_size, device=args.device, max_detections=detections_per_image(model)
        )
        arch = get_architecture(info.architecture)
        macs = flops.count(arch, MACS_INPUT_SIZE, info.model.detector, fpn_channels=info.model.fpn_channels,
                           representation_size=info.model.representation_size).macs
        rows.append({"run": str(run_dir), "blocks": arch.blocks, "gmacs_800x1088": round(macs / 1e9, 2), **metrics})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    keys = METRICS
    width = max(len(r["run"]) for r in rows)
    print(f"{'run':<{width}}  {'blocks':<16} {'GMACs':>7} " + " ".join(f"{k:>6}" for k in keys))
    for r in rows:
        print(f"{r['run']:<{width}}  {str(r['blocks']):<16} {r['gmacs_800x1088']:>7.2f} " + " ".join(f"{percent(r[k]):>6}" for k in keys))
    return 0
