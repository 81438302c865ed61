"""Train a detector with a CR (or baseline) backbone on your data, then evaluate it on a held-out split.

Writes DIR/last.pt (resumable: run the same command again to continue), DIR/run.json (what was
trained, on what, and its COCO metrics). Compare runs with `crnas eval DIR1 DIR2 ...`.

Examples:
  crnas train --arch resnet50 --synthetic 512 --out runs/r50
  crnas train --arch cr_resnet50 --synthetic 512 --out runs/cr50
  crnas train --arch runs/search/result.json --coco ann.json images/ --weights-backbone torchvision --out runs/found
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from crnas.arch import DETECTORS
from crnas.cli.common import CLIUsageError, add_data_arguments, data_spec, load_dataset, percent
from crnas.detection import NORMS

logger = logging.getLogger(__name__)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", choices=DETECTORS, default="faster_rcnn_fpn")
    parser.add_argument("--width", type=float, help="channel multiplier of the backbone (default: the architecture's)")
    parser.add_argument("--min-size", type=int, default=800, help="detector resize: shorter side (default 800)")
    parser.add_argument("--max-size", type=int, default=1333, help="detector resize: longer side cap (default 1333)")
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--representation-size", type=int, help="R-CNN box head width (default torchvision's 1024)")
    parser.add_argument("--max-dets", type=int, default=100, dest="max_detections",
                        help="detections kept per image and scored by COCO AP (default COCO's 100; raise for dense scenes)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="a name (resnet50, cr_resnet50, ...), architecture JSON or result.json path")
    add_data_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoint, run.json)")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--iterations", type=int)
    schedule.add_argument("--epochs", type=int, help="default 12 (the 1x schedule)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, help="base learning rate (default 0.00125 per image)")
    parser.add_argument("--weights-backbone", help="'torchvision' or a state-dict path: ImageNet initialisation (crnas.weights.inherit)")
    parser.add_argument("--norm", choices=NORMS, default="batch",
                        help="normalisation of a backbone trained from scratch: BatchNorm (default) or GroupNorm (docs/design.md#norm)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="images held out for evaluation (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, dest="num_workers")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--no-progress", action="store_true")




def run(args: argparse.Namespace) -> int:
    import torch

    from crnas.arch import get_architecture
    from crnas.cli.errors import check_device
    from crnas.data import split
    from crnas.data.check import preflight
    from crnas.detection import backbone_training, build_detector, detection_limit
    from crnas.eval import coco_eval
    from crnas.runs import ModelSettings, RunRecord
    from crnas.train import train_detector

    check_device(args.device)
    try:
        layers, norm = backbone_training(args.weights_backbone is not None, args.norm)
    except ValueError as err:
        raise CLIUsageError(f"--{err}") from None
    arch = get_architecture(args.arch, width=args.width)
    spec = data_spec(args, resize=(args.min_size, args.max_size))
    dataset = load_dataset(spec)
    train_set, val_set = split(dataset, args.val_fraction, args.seed)
    preflight([("train", train_set), ("held-out", val_set)])
    settings = ModelSettings(
        detector=args.detector, num_classes=len(dataset.classes) + 1, min_size=args.min_size, max_size=args.max_size,
        fpn_channels=args.fpn_channels, representation_size=args.representation_size, max_detections=args.max_detections,
        pretrained=args.weights_backbone is not None, norm=args.norm,
    )
    record = RunRecord(
        architecture=arch.to_dict(), model=settings, data=spec, classes=list(dataset.classes),
        split={"val_fraction": args.val_fraction, "seed": args.seed, "train": len(train_set), "val": len(val_set)},
        weights_backbone=args.weights_backbone,
    )
    torch.manual_seed(args.seed)
    model = build_detector(
        args.detector, arch, num_classes=settings.num_classes, weights_backbone=args.weights_backbone,
        trainable_layers=layers, norm_layer=norm,
        fpn_channels=args.fpn_channels, representation_size=args.representation_size, min_size=args.min_size, max_size=args.max_size,
        **detection_limit(args.detector, args.max_detections),
    )
    epochs = args.epochs if args.iterations is None and args.epochs is not None else (12 if args.iterations is None else None)
    result = train_detector(
        model, train_set, iterations=args.iterations, epochs=epochs, batch_size=args.batch_size, lr=args.lr, device=args.device,
        seed=args.seed, num_workers=args.num_workers, checkpoint_dir=args.out, checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    metrics = coco_eval(model, val_set, batch_size=args.batch_size, device=args.device, max_detections=args.max_detections)
    record.train = {
        "iterations": result.iteration, "batch_size": args.batch_size, "final_loss": result.loss_history[-1] if result.loss_history else None,
    }
    record.metrics = metrics
    record.save(args.out)
    print(f"{repr(arch)}\ntrained {result.iteration} iterations; held-out COCO metrics ({len(val_set)} images):")
    print("  " + "  ".join(f"{k} {percent(v)}" for k, v in metrics.items()))
    print(f"run: {args.out / 'run.json'}")
    return 0
