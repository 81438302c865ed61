"""Benchmark RoIAlign on the CPU: torchvision's kernel vs crnas's sparse product (run by hand, not a test).

1. The R-CNN box pooler alone (``MultiScaleRoIAlign``, 7x7, sampling ratio 2) over an FPN pyramid:
   forward + backward (training) and forward only (evaluation), median of ``--repeats``.
2. Stand-alone training of the ``quality`` preset's detector (the baseline ResNet50 at its width, its
   resolution, heads and batch; GroupNorm): ``--steps`` iterations of ``crnas.train.train_detector``
   with each pooler, alternated ``--rounds`` times so background load hits both alike.

    python benches/bench_roi_align.py [--threads 1] [--steps 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import OrderedDict

import crnas
import torch
import torchvision
from crnas import Architecture
from crnas.data import SyntheticDetection
from crnas.nn import MultiScaleRoIAlign
from crnas.search import preset
from crnas.search.audit import standalone_detector
from crnas.train import train_detector


def pyramid(batch: int, size: tuple[int, int], channels: int, rois_per_image: int) -> tuple[OrderedDict[str, torch.Tensor], list[torch.Tensor]]:
    """FPN levels of ``batch`` images at strides 4..32 and boxes with log-uniform sides (8 px to the image),
    so the level mapper spreads them over every level as a detector's proposals are."""
    gen = torch.Generator().manual_seed(0)
    feats = OrderedDict(
        (str(i), torch.randn(batch, channels, size[0] // s, size[1] // s, generator=gen, requires_grad=True)) for i, s in enumerate((4, 8, 16, 32))
    )
    boxes = []
    for _ in range(batch):
        side = torch.exp(torch.empty(rois_per_image, 2).uniform_(2.0, float(torch.log(torch.tensor(min(size)))), generator=gen))
        corner = torch.rand(rois_per_image, 2, generator=gen) * (torch.tensor([size[1], size[0]]) - side).clamp(min=1)
        boxes.append(torch.cat([corner, corner + side], 1))
    return feats, boxes


def time_pooler(pooler: torch.nn.Module, feats, boxes, shape, backward: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        if backward:
            out = pooler(feats, boxes, [shape] * len(boxes))
            out.backward(torch.ones_like(out))
        else:
            with torch.no_grad():
                pooler(feats, boxes, [shape] * len(boxes))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"crnas {crnas.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads")

    # 1. the pooler alone: the quality preset's training batch (4 images, 256 px, 64 FPN channels,
    # 128 sampled RoIs per image) and evaluation batch (8 images, 150 proposals), and torchvision's
    # defaults (2 images 800x1088, 256 channels, 512 RoIs per image)
    for what, batch, size, channels, rois, backward in [
        ("training, quality preset", 4, (256, 256), 64, 128, True),
        ("evaluation, quality preset", 8, (256, 256), 64, 150, False),
        ("training, torchvision defaults", 2, (800, 1088), 256, 512, True),
    ]:
        feats, boxes = pyramid(batch, size, channels, rois)
        names = ["0", "1", "2", "3"]
        theirs = time_pooler(torchvision.ops.MultiScaleRoIAlign(names, 7, 2), feats, boxes, size, backward, args.repeats)
        ours = time_pooler(MultiScaleRoIAlign(names, 7, 2), feats, boxes, size, backward, args.repeats)
        print(f"pooler, {what} ({batch} x {size[0]}x{size[1]}, {channels} ch, {batch * rois} RoIs, "
              f"{'forward + backward' if backward else 'forward'}): torchvision {1e3 * theirs:.1f} ms, crnas {1e3 * ours:.1f} ms "
              f"-> {theirs / ours:.2f}x")

    # 2. stand-alone training steps of the quality preset's detector, each pooler
    config = preset("quality")
    dataset = SyntheticDetection(64, image_size=(config.max_size, config.max_size), seed=0)
    arch = Architecture.baseline(config.family).replace(width=config.width)
    totals: dict[str, list[float]] = {"torchvision": [], "crnas": []}
    for _ in range(args.rounds):
        for name in totals:
            torch.manual_seed(0)
            model = standalone_detector(config, arch.to_dict(), len(dataset.classes) + 1)
            if name == "torchvision":
                model.roi_heads.box_roi_pool = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
            t0 = time.perf_counter()
            train_detector(model, dataset, iterations=args.steps, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
                           warmup_iters=config.lr_warmup, seed=0, progress=False)
            totals[name].append((time.perf_counter() - t0) / args.steps)
    tv, cr = (statistics.median(totals[n]) for n in ("torchvision", "crnas"))
    print(f"training step, quality preset's detector ({config.batch_size} images, {config.min_size}..{config.max_size} px, norm {config.norm}; "
          f"{args.steps} steps x {args.rounds} rounds): torchvision pooler {1e3 * tv:.0f} ms, crnas pooler {1e3 * cr:.0f} ms "
          f"-> {tv / cr:.2f}x ({100 * (1 - cr / tv):.0f}% less time)")


if __name__ == "__main__":
    main()
