"""CPU inference latency of CR-ResNet50 against torchvision's ResNet50 (run by hand, not a test).

Two settings, in one run: the detection backbone (conv1..layer4, no pooling/classifier) on one
800x1088 image, and the classifier on a batch of 8 at 224x224. Models are timed in interleaved
repetitions (the order rotates every repetition, so drift of a noisy machine hits all of them alike)
and the median (and the minimum, the least disturbed run on a shared machine) is reported, under
``torch.inference_mode`` in eval mode. The load average is printed before and after: on a machine
other jobs share, ratios from a run with a load above the thread count are noise.

CR-NAS moves computation without changing it: CR-ResNet50 has about ResNet50's MACs, but dilated
3x3 convolutions can run slower than their MAC count says. SCR-ResNet50 (the same stage
reallocation, no dilation) separates the two effects: SCR/torchvision is the cost of the reallocation,
CR/SCR the cost of the dilations. crnas's own ResNet50 checks that building through crnas costs nothing.

    python benches/bench_models.py [--threads 2] [--reps 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import crnas
import torch
import torchvision
from crnas import flops
from crnas.models import CRResNet50, ResNet50, SCRResNet50, get_architecture
from torch import Tensor, nn


def body(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The detection backbone of a torchvision-layout ResNet: conv1 .. layer4 (C5)."""

    def run(x: Tensor) -> Tensor:
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        return model.layer4(model.layer3(model.layer2(model.layer1(x))))

    return run


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def interleaved_times(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in rotating interleaved order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    models = {
        "torchvision resnet50": (torchvision.models.resnet50(), "resnet50"),
        "crnas ResNet50": (ResNet50(num_classes=1000), "resnet50"),
        "SCR-ResNet50": (SCRResNet50(num_classes=1000), "scr_resnet50"),
        "CR-ResNet50": (CRResNet50(num_classes=1000), "cr_resnet50"),
    }
    for model, _ in models.values():
        model.eval()

    settings = [
        ("backbone 1x3x800x1088", torch.randn(1, 3, 800, 1088), True, (800, 1088)),
        ("classifier 8x3x224x224", torch.randn(8, 3, 224, 224), False, (224, 224)),
    ]
    print(f"crnas {crnas.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(
        f"{cpu_name()}, {args.threads} threads, {datetime.date.today().isoformat()}, median of {args.reps} interleaved repetitions"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    baseline = "torchvision resnet50"
    for title, x, backbone_only, size in settings:
        fns = {}
        for name, (model, _arch) in models.items():
            fn = body(model) if backbone_only else model
            fns[name] = lambda fn=fn, x=x: fn(x)
        with torch.inference_mode():
            times = interleaved_times(fns, args.reps)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        minima = {name: min(ts) for name, ts in times.items()}
        print(f"\n{title} (load average {os.getloadavg()[0]:.2f})")
        print(f"{'model':<22} {'GMACs/img':>10} {'median ms':>10} {'ratio':>7} {'min ms':>9} {'ratio':>7}")
        for name, (_, arch) in models.items():
            macs = flops.count(get_architecture(arch), size, classifier=not backbone_only).macs / 1e9
            print(
                f"{name:<22} {macs:>10.2f} {medians[name] * 1e3:>10.1f} {medians[name] / medians[baseline]:>6.3f}x"
                f" {minima[name] * 1e3:>9.1f} {minima[name] / minima[baseline]:>6.3f}x"
            )
        print(
            f"dilation cost (CR / SCR): median {medians['CR-ResNet50'] / medians['SCR-ResNet50']:.3f}x, "
            f"min {minima['CR-ResNet50'] / minima['SCR-ResNet50']:.3f}x"
        )


if __name__ == "__main__":
    main()
