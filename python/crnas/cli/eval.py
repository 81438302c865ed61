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

from crnas.cli import CLIUsageError
from crnas.cli.common import add_data_arguments, data_spec, load_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `crnas train`")
    add_data_arguments(parser, required=False)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from crnas import flops
    from crnas.arch import MACS_INPUT_SIZE, get_architecture
    from crnas.cli.train import detector_from_run, percent
    from crnas.data import split
    from crnas.eval import METRICS, coco_eval

    explicit = args.synthetic is not None or args.coco or args.voc
    explicit_dataset = load_dataset(data_spec(args)) if explicit else None
    rows = []
    for run_dir in args.runs:
        info_path = run_dir / "run.json"
        if not info_path.is_file():
            raise CLIUsageError(f"{run_dir}: expected a run directory of `crnas train` (no run.json)")
        info = json.loads(info_path.read_text())
        if explicit_dataset is not None:
            dataset = explicit_dataset
        else:
            full = load_dataset(info["data"])
            _, dataset = split(full, info["split"]["val_fraction"], info["split"]["seed"])
        if list(dataset.classes) != info["classes"]:
            raise ValueError(f"data: expected the classes the run was trained on {info['classes']}, got {list(dataset.classes)}")
        model = detector_from_run(info)
        state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        metrics = coco_eval(model.to(args.device), dataset, batch_size=args.batch_size, device=args.device)
        arch = get_architecture(info["architecture"])
        macs = flops.count(arch, MACS_INPUT_SIZE, info["model"]["detector"], fpn_channels=info["model"]["fpn_channels"],
                           representation_size=info["model"]["representation_size"]).macs
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
