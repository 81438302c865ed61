"""Benchmark the FLOPs accountant and the samplers (run by hand, not a test).

1. All 10,000 ResNet-series stage allocations (the full product of the paper's choice sets) at
   800x1088 under the Faster R-CNN + FPN convention with crnas.flops.count_many, against one
   FlopCounterMode count of a built torchvision Faster R-CNN backbone+FPN+RPN (meta tensors, no
   arithmetic), as a ratio per architecture.
2. Sampler throughput: stage allocations, joint architectures, one-hot dilation paths.

    python benches/bench_flops.py [--threads 2] [--reps 20]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import crnas
import torch
from crnas import Architecture, StageSpace, flops
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection import backbone_utils
from torchvision.models.detection.rpn import RPNHead

CHOICES = [range(1, 11), range(1, 11), [2, 3, 5, 6, 9, 11, 14, 17, 20, 23], [2, 3, 4, 6, 7, 9, 11, 13, 15, 17]]


def median_time(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def flop_counter_once() -> float:
    """Seconds for FlopCounterMode on one torchvision R50-FPN backbone + RPN head at 800x1088 (meta device)."""
    t0 = time.perf_counter()
    with torch.device("meta"):
        backbone = backbone_utils.resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5)
        head = RPNHead(256, 3)
        x = torch.randn(1, 3, 800, 1088)
    with torch.inference_mode(), FlopCounterMode(display=False):
        head(list(backbone(x).values()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"crnas {crnas.__version__}, torch {torch.__version__}, {args.threads} threads, median of {args.reps}")

    archs = [Architecture("resnet50", list(b)) for b in itertools.product(*CHOICES)]
    t_many = median_time(lambda: flops.count_many(archs, (800, 1088), "faster_rcnn_fpn"), args.reps)
    t_one = median_time(lambda: flops.count(archs[0], (800, 1088), "faster_rcnn_fpn"), args.reps)
    t_counter = statistics.median(flop_counter_once() for _ in range(3))
    print(f"count_many, {len(archs)} allocations, faster_rcnn_fpn @800x1088: {t_many * 1e3:.2f} ms "
          f"({t_many / len(archs) * 1e6:.2f} us per architecture; goal < 10 ms)")
    print(f"count (full per-layer report), one architecture: {t_one * 1e3:.3f} ms")
    print(f"FlopCounterMode on one built torchvision R50-FPN + RPN (meta tensors): {t_counter * 1e3:.1f} ms "
          f"-> accountant is {t_counter / (t_many / len(archs)):.0f}x faster per architecture")

    space = StageSpace.paper("resnet101")
    t_sample = median_time(lambda: space.sample(100_000, seed=1), args.reps)
    t_joint = median_time(lambda: space.sample_architectures(10_000, seed=1), args.reps)
    t_paths = median_time(lambda: crnas.sample_paths(33, 64, seed=1), args.reps)
    t_enum = median_time(lambda: StageSpace.paper("mobilenet_v2"), args.reps)
    print(f"StageSpace.sample: {100_000 / t_sample / 1e6:.1f} M allocations/s (N=33 space)")
    print(f"StageSpace.sample_architectures: {10_000 / t_joint / 1e3:.0f} k architectures/s")
    print(f"sample_paths [33 blocks, batch 64]: {t_paths * 1e6:.0f} us")
    print(f"StageSpace.paper('mobilenet_v2') (MACs of {10 * 6 * 10 * 7} combinations, rayon): {t_enum * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
