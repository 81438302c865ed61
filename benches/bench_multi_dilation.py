"""Benchmark the fused multi-dilation convolution (run by hand, not a test).

Forward+backward time and peak memory of
  (a) crnas.ops.multi_dilation_conv2d (fused, native core),
  (b) crnas.ops.reference.multi_dilation_conv2d (naive: one F.conv2d per dilation),
  (c) one plain F.conv2d at dilation 1 (the floor: the fused op does one conv's worth of GEMM),
  (d) for the one-hot mix, crnas.ops.per_sample_dilation_conv2d with the same paths as dilation
      indices (grouped: the batch grouped by dilation, one F.conv2d per group),
on ResNet-stage shapes, for a softmax mix (shared, requires grad) and a one-hot per-sample mix. The
one-hot paths give every dilation at least one image (a batch of one gets dilation 1).

Timings are medians over interleaved repetitions (the variants alternate, so drift on a shared
machine hits all of them alike). Peak memory is the high-water mark of torch's CPU allocator during
one forward+backward, read from the profiler's memory events (the native core allocates its
scratch through torch, so it is included); on CUDA, torch.cuda.max_memory_allocated.

    python benches/bench_multi_dilation.py [--threads 2] [--reps 25] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import crnas
import torch
import torch.nn.functional as F
from crnas.ops import multi_dilation_conv2d, per_sample_dilation_conv2d, reference
from torch.profiler import ProfilerActivity, profile

STAGES = [(64, 64), (128, 32), (256, 16), (512, 8)]  # channels, feature map side (batch 2)
DILATIONS = (1, 2, 3)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_bytes(fn: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated by torch during one call of ``fn`` (above what was live before)."""
    fn()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def time_interleaved(fns: dict[str, Callable[[], None]], reps: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def make_case(batch: int, channels: int, size: tuple[int, int], mix_kind: str, device: torch.device, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, *size, generator=g, dtype=dtype).to(device).requires_grad_()
    w = (torch.randn(channels, channels, 3, 3, generator=g, dtype=dtype) * 0.05).to(device).requires_grad_()
    if mix_kind == "softmax":
        mix = torch.softmax(torch.randn(len(DILATIONS), generator=g), 0).to(device, dtype).requires_grad_()
    else:
        idx = torch.randperm(batch, generator=g) % len(DILATIONS)  # interleaved groups, all dilations used
        mix = F.one_hot(idx, len(DILATIONS)).to(device, dtype)
    grad = torch.randn(batch, channels, *size, generator=g, dtype=dtype).to(device)
    leaves = [t for t in (x, w, mix) if t.requires_grad]

    def run(op: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            for t in leaves:
                t.grad = None
            op().backward(grad)

        return step

    fns = {
        "fused": run(lambda: multi_dilation_conv2d(x, w, mix, dilations=DILATIONS)),
        "naive": run(lambda: reference.multi_dilation_conv2d(x, w, mix, dilations=DILATIONS)),
        "conv": run(lambda: F.conv2d(x, w, padding=1)),
    }
    if mix_kind == "onehot":
        fns["grouped"] = run(lambda: per_sample_dilation_conv2d(x, w, idx, dilations=DILATIONS))
    return fns


def run(
    stages: list[tuple[int, int, int]], *, batch: int, reps: int, device: torch.device, dtype: torch.dtype
) -> list[dict[str, object]]:
    """One row per (stage ``(channels, height, width)``, mix kind): median seconds, peak bytes, ratios."""
    rows = []
    for channels, height, width in stages:
        for mix_kind in ("softmax", "onehot"):
            fns = make_case(batch, channels, (height, width), mix_kind, device, dtype)
            t = time_interleaved(fns, reps, device)
            mem = {k: peak_bytes(fn, device) for k, fn in fns.items()}
            rows.append({
                "shape": [batch, channels, height, width], "mix": mix_kind,
                **{f"{k}_ms": v * 1e3 for k, v in t.items()}, **{f"{k}_mib": v / 2**20 for k, v in mem.items()},
                "naive/fused": t["naive"] / t["fused"], "fused/conv": t["fused"] / t["conv"],
                "mem fused/naive": mem["fused"] / max(mem["naive"], 1),
            })
            if "grouped" in t:
                rows[-1].update({
                    "grouped/conv": t["grouped"] / t["conv"], "fused/grouped": t["fused"] / t["grouped"],
                    "mem grouped/naive": mem["grouped"] / max(mem["naive"], 1),
                })
    return rows


def print_rows(rows: list[dict[str, object]]) -> None:
    header = (f"{'shape (N,C,H,W)':<20}{'mix':<9}{'fused ms':>9}{'naive ms':>9}{'conv ms':>9}"
              f"{'naive/fused':>12}{'fused/conv':>11}{'fusedMiB':>9}{'naiveMiB':>9}{'convMiB':>8}{'mem f/n':>8}"
              f"{'grouped ms':>11}{'grouped/conv':>13}{'fused/grouped':>14}{'groupedMiB':>11}")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        grouped = (f"{r['grouped_ms']:11.2f}{r['grouped/conv']:13.2f}{r['fused/grouped']:14.2f}{r['grouped_mib']:11.1f}"
                   if "grouped_ms" in r else "")
        print(f"{shape:<20}{r['mix']:<9}{r['fused_ms']:9.2f}{r['naive_ms']:9.2f}{r['conv_ms']:9.2f}"
              f"{r['naive/fused']:12.2f}{r['fused/conv']:11.2f}"
              f"{r['fused_mib']:9.1f}{r['naive_mib']:9.1f}{r['conv_mib']:8.1f}{r['mem fused/naive']:8.2f}{grouped}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--scale", type=int, default=1, help="multiply the feature-map side (e.g. 4 for 200x272-like maps)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f"crnas {crnas.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, device {device}, {args.dtype}, batch {args.batch}, median of {args.reps}")
    print_rows(run([(c, s * args.scale, s * args.scale) for c, s in STAGES], batch=args.batch, reps=args.reps, device=device, dtype=dtype))


if __name__ == "__main__":
    main()
