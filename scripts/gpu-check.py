r"""Check crnas's native ops on a GPU, measure them there and price a paper-scale search; one report.

On the GPU machine (Python 3.12, torch 2.11 + CUDA, no network, no Rust toolchain), with this working
tree and the wheels carried in .whl/ (the crnas wheel from `scripts/build-for-torch.sh 2.11.0 --python
3.12` and a cp312 pycocotools wheel; docs/benchmarks.md, "CUDA", says how to fetch them):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 scripts/gpu-check.py --out "$OUT"

writes ``$OUT/gpu-check.json`` (everything) and ``$OUT/gpu-check.md`` (the tables for
docs/benchmarks.md). Checks (each recorded as passed / failed with details; a failure never stops it):
  1. environment: device, driver, torch, CUDA, cuDNN, crnas and the torch its core was built for;
  2. the fused op against the pure-PyTorch reference on the device, for softmax and one-hot mixes:
     float32/float64, groups, stride, shared and per-sample mix, channels_last, batch 0 (values and
     the gradients of input, weight, mix and bias); float64 gradcheck; torch.library.opcheck;
     float16 and bfloat16 under autocast (forward and backward against a float32 reference);
  3. the grouped one-hot path (crnas.ops.per_sample_dilation_conv2d) against the reference the same
     way, with the index on the CPU and on the device, gradcheck, and bitwise-equal repeats under
     torch.use_deterministic_algorithms;
  4. the path sampler on the device;
  5. a Faster R-CNN training step with CRResNet50, and one per-image-path supernet step;
  6. the op benchmark: fused vs naive (three convolutions) vs one cuDNN convolution, and the grouped
     one-hot path, fwd+bwd time and peak memory, softmax and one-hot mixes, at batch 8 on the four
     ResNet50 stages at 200x272-scale maps (C2 200x272 ... C5 25x34), against the goals of issue 16;
  7. the search's cost: 20 timed training iterations of the `paper` preset's stage supernet and op
     supernet (ResNet50, 800x1088, the paper's 2 images per GPU, AMP as in training), one archval
     scoring pass (BatchNorm recalibration + detection + COCO evaluation; one allocation, and three
     dilation candidates jointly), and from them the projected GPU-hours of every phase of a COCO
     search (paper schedule) on 8 GPUs and on 1 GPU;
  8. inference latency of CR-ResNet50, SCR-ResNet50 and ResNet50 backbones (1 and 8 images at
     800x1088, float32 and float16, cuDNN heuristics and cudnn.benchmark).
``--device cpu --quick`` runs the same checks on the CPU with tiny shapes (the test suite does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

#: COCO train2017, the paper's search data (archtrain + archval).
COCO_TRAIN_IMAGES = 118_287
#: ResNet50's bottleneck 3x3 convolutions at 800x1088: (channels, height, width) of C2 .. C5.
STAGES = [(64, 200, 272), (128, 100, 136), (256, 50, 68), (512, 25, 34)]
#: Goals of issue 16 on the GPU.
GOALS = {
    "one-hot: grouped / conv <= 1.2": lambda r: r["mix"] != "onehot" or r["grouped/conv"] <= 1.2,
    "softmax: naive / fused >= 2": lambda r: r["mix"] != "softmax" or r["naive/fused"] >= 2,
    "softmax: fused / conv <= 1.5": lambda r: r["mix"] != "softmax" or r["fused/conv"] <= 1.5,
    "memory: fused / naive <= 0.6 (softmax), grouped / naive <= 0.6 (one-hot)": lambda r: (
        r["mem fused/naive"] if r["mix"] == "softmax" else r["mem grouped/naive"]) <= 0.6,
}


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            details = fn()
            self.checks.append({"name": name, "passed": True, "seconds": round(time.perf_counter() - t0, 2), "details": details})
            print(f"PASS {name} ({time.perf_counter() - t0:.1f} s)", flush=True)
            return details
        except Exception as err:  # record and go on: one report with every failure
            self.checks.append({"name": name, "passed": False, "seconds": round(time.perf_counter() - t0, 2),
                                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
            print(f"FAIL {name}: {type(err).__name__}: {err}", flush=True)
            return None

    def details(self, name: str) -> Any:
        return next((c["details"] for c in self.checks if c["name"] == name and c["passed"]), None)


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benches" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device) -> dict[str, Any]:
    import crnas
    import torchvision
    from crnas._native import built_for_torch, core

    env = {
        "torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
        "crnas": crnas.__version__, "core_built_for_torch": core().__torch_version__,
        "metadata_built_for_torch": built_for_torch(), "python": platform.python_version(),
        "machine": platform.machine(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["device"] = torch.cuda.get_device_name(device)
        env["capability"] = list(torch.cuda.get_device_capability(device))
        env["memory_gib"] = round(props.total_memory / 2**30, 1)
        env["multiprocessors"] = props.multi_processor_count
        env["cudnn"] = torch.backends.cudnn.version()
        env["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            env["driver"] = f"unknown ({err})"
    else:
        env["device"] = platform.processor() or platform.machine()
    return env


# --- correctness ----------------------------------------------------------------------------------


def op_cases(quick: bool) -> list[tuple[int, int, int, int, int, int, int, tuple[int, ...], bool]]:
    """(n, c, o, h, w, stride, groups, dilations, per-sample mix)."""
    cases = [
        (2, 8, 6, 13, 11, 1, 1, (1, 2, 3), True), (3, 8, 8, 9, 12, 2, 2, (1, 2, 3), False), (1, 4, 4, 7, 7, 1, 4, (1, 3), True),
        (0, 4, 4, 5, 5, 1, 1, (1, 2, 3), True), (2, 3, 5, 1, 2, 2, 1, (2,), False), (6, 8, 8, 10, 9, 1, 2, (1, 2, 3), True),
    ]
    if not quick:
        cases += [
            (4, 64, 64, 50, 68, 1, 1, (1, 2, 3), True),
            (4, 128, 128, 25, 34, 2, 1, (1, 2, 3), False),
            (2, 96, 96, 30, 30, 1, 96, (1, 2, 3), True),
            (8, 64, 64, 40, 56, 1, 1, (1, 2, 3), True),
        ]
    return cases


def make(case, device, dtype, mix_kind="softmax", seed=0):
    """Leaf tensors (x, w, mix, bias), the dilation indices of a one-hot mix (else None), and the op's keywords."""
    n, c, o, h, w, s, g, dil, per_sample = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype).to(device).requires_grad_()
    wt = torch.randn(o, c // g, 3, 3, generator=gen, dtype=dtype).to(device).requires_grad_()
    index = None
    if mix_kind == "onehot":  # per image, every dilation used once the batch allows
        index = torch.randperm(n, generator=gen) % len(dil)
        mix = F.one_hot(index, len(dil)).to(device, dtype).requires_grad_()
    else:
        mix = torch.softmax(torch.randn((n, len(dil)) if per_sample else (len(dil),), generator=gen, dtype=dtype), -1)
        mix = mix.to(device).requires_grad_()
    b = torch.randn(o, generator=gen, dtype=dtype).to(device).requires_grad_()
    return (x, wt, mix, b), index, dict(dilations=dil, stride=s, groups=g)


def _errors(out, ref, got, want) -> list[float]:
    errs = [float((out - ref).detach().abs().max()) if out.numel() else 0.0]
    return errs + [float((a - e).abs().max()) if a.numel() else 0.0 for a, e in zip(got, want)]


def compare_with_reference(device: torch.device, quick: bool) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d, reference

    worst: dict[str, float] = {}
    count = 0
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-3)):
        for case in op_cases(quick):
            for mix_kind in ("softmax", "onehot"):
                for memory_format in (torch.contiguous_format, torch.channels_last):
                    args, _, kw = make(case, device, dtype, mix_kind)
                    x = args[0].detach().to(memory_format=memory_format).requires_grad_()
                    args = (x, *args[1:])
                    out = multi_dilation_conv2d(*args, **kw)
                    ref = reference.multi_dilation_conv2d(*args, **kw)
                    gy = torch.randn_like(ref)
                    got = torch.autograd.grad(out, args, gy, allow_unused=True)
                    want = torch.autograd.grad(ref, args, gy, allow_unused=True)
                    scale = max(1.0, float(ref.detach().abs().max()) if ref.numel() else 1.0)
                    errs = _errors(out, ref, got, want)
                    key = f"{str(dtype).replace('torch.', '')} {mix_kind}"
                    worst[key] = max(worst.get(key, 0.0), max(errs) / scale)
                    count += 1
                    if max(errs) / scale > tol:
                        raise AssertionError(f"{case} {dtype} {mix_kind} {memory_format}: relative errors {errs} exceed {tol}")
    return {"worst_relative_error": worst, "cases": count}


def gradcheck_and_opcheck(device: torch.device) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d

    for mix_kind in ("softmax", "onehot"):
        args, _, kw = make((3, 4, 3, 6, 5, 2, 1, (1, 2, 3), True), device, torch.float64, mix_kind)
        assert torch.autograd.gradcheck(lambda *a, kw=kw: multi_dilation_conv2d(*a, **kw), args)
    args, _, kw = make((2, 4, 4, 6, 6, 1, 2, (1, 3), False), device, torch.float32)
    torch.library.opcheck(torch.ops.crnas.multi_dilation_conv2d.default, (*args, list(kw["dilations"]), kw["stride"], kw["groups"]))
    return {"gradcheck": ["softmax", "onehot"], "opcheck": True}


def grouped_path(device: torch.device, quick: bool) -> dict[str, Any]:
    from crnas.ops import per_sample_dilation_conv2d, reference

    worst: dict[str, float] = {}
    count = 0
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-3)):
        for case in [c for c in op_cases(quick) if c[-1]]:  # per-image cases
            for memory_format in (torch.contiguous_format, torch.channels_last):
                for index_device in sorted({"cpu", device.type}):
                    (x, w, mix, b), index, kw = make(case, device, dtype, "onehot")
                    x = x.detach().to(memory_format=memory_format).requires_grad_()
                    out = per_sample_dilation_conv2d(x, w, index.to(index_device), b, **kw)
                    ref = reference.multi_dilation_conv2d(x, w, mix.detach(), b, **kw)
                    gy = torch.randn_like(ref)
                    got = torch.autograd.grad(out, (x, w, b), gy)
                    want = torch.autograd.grad(ref, (x, w, b), gy)
                    scale = max(1.0, float(ref.detach().abs().max()) if ref.numel() else 1.0)
                    errs = _errors(out, ref, got, want)
                    key = str(dtype).replace("torch.", "")
                    worst[key] = max(worst.get(key, 0.0), max(errs) / scale)
                    count += 1
                    if max(errs) / scale > tol:
                        raise AssertionError(f"{case} {dtype} {memory_format} index on {index_device}: relative errors {errs} exceed {tol}")
    # (a smaller case for the CPU smoke run)
    case = (4, 2, 4, 5, 4, 1, 2, (1, 2, 3), True) if quick else (5, 4, 6, 6, 5, 2, 2, (1, 2, 3), True)
    (x, w, _, b), index, kw = make(case, device, torch.float64, "onehot")
    assert torch.autograd.gradcheck(lambda *a: per_sample_dilation_conv2d(a[0], a[1], index, a[2], **kw), (x, w, b))
    # repeats are bitwise equal under deterministic algorithms (the gathers are permutations)
    (x, w, _, b), index, kw = make((8, 32, 32, 24, 20, 1, 1, (1, 2, 3), True), device, torch.float32, "onehot")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            out = per_sample_dilation_conv2d(x, w, index, b, **kw)
            runs.append([out.detach(), *torch.autograd.grad(out.square().sum(), (x, w, b))])
    finally:
        torch.use_deterministic_algorithms(previous)
    assert all(torch.equal(a, e) for a, e in zip(*runs)), "two deterministic runs differ"
    return {"worst_relative_error": worst, "cases": count, "gradcheck": True, "deterministic_repeats_equal": True}


def autocast(device: torch.device) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d, reference

    dtypes = [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]
    out: dict[str, Any] = {}
    for dtype in dtypes:
        args, _, kw = make((4, 32, 32, 20, 24, 1, 1, (1, 2, 3), True), device, torch.float32)
        with torch.autocast(device.type, dtype=dtype):
            y = multi_dilation_conv2d(*args, **kw)
        assert y.dtype == dtype, f"output dtype {y.dtype} under {dtype} autocast"
        ref = reference.multi_dilation_conv2d(*args, **kw)
        rel = float((y.float() - ref).abs().max() / ref.abs().max())
        assert rel < 3e-2, f"{dtype}: relative error {rel}"
        grads = torch.autograd.grad(y.float().sum(), args)
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        out[str(dtype).replace("torch.", "")] = {"relative_error": rel}
    return out


def sampler(device: torch.device) -> dict[str, Any]:
    from crnas import sample_paths

    paths = sample_paths(16, 8, seed=3, device=device)
    assert paths.device.type == device.type and paths.shape == (16, 8, 3)
    assert torch.equal(paths.sum(-1), torch.ones(16, 8, device=device))
    assert torch.equal(paths.cpu(), sample_paths(16, 8, seed=3))  # the same paths on every device
    logits = torch.tensor([[0.0, 0.0, 30.0]], device=device).repeat(16, 1)
    assert bool((sample_paths(16, 8, seed=1, logits=logits, device=device).argmax(-1) == 2).all())
    return {"shape": list(paths.shape), "device": str(paths.device)}


def training_steps(device: torch.device, quick: bool) -> dict[str, Any]:
    from crnas import Architecture, StageSpace, sample_paths
    from crnas.detection import fasterrcnn_cr_resnet50_fpn
    from crnas.search import build_supernet_detector, supernet_of
    from crnas.search.scoring import choices_to_paths

    size = 128 if quick else 512
    width = 0.125 if quick else 1.0
    torch.manual_seed(0)
    images = [torch.rand(3, size, size, device=device) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]], device=device), "labels": torch.tensor([1], device=device)}] * 4
    arch = Architecture.paper("cr_resnet50").replace(width=width)
    model = fasterrcnn_cr_resnet50_fpn(arch=arch, num_classes=5, min_size=size, max_size=size).to(device).train()
    losses = model(images, targets)
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.body.conv1.weight.grad is not None
    space = StageSpace("resnet50", StageSpace.paper("resnet50").choices, budget=16, width=width)
    supernet_model = build_supernet_detector("faster_rcnn_fpn", space, num_classes=5, min_size=size, max_size=size).to(device).train()
    supernet = supernet_of(supernet_model)
    supernet.set_allocation([1, 3, 5, 7])
    onehot = sample_paths(16, len(images), seed=0, device=device)
    paths = choices_to_paths(onehot.argmax(-1).t())
    assert any(isinstance(p, torch.Tensor) for p in paths), "expected some blocks with per-image paths"
    supernet.set_paths(paths)
    supernet_losses = supernet_model(images, targets)
    total = sum(supernet_losses.values())
    total.backward()
    assert torch.isfinite(total)
    return {"cr_resnet50_losses": {k: float(v) for k, v in losses.items()}, "supernet_losses": {k: float(v) for k, v in supernet_losses.items()}}


# --- the op benchmark -----------------------------------------------------------------------------


def benchmark(device: torch.device, quick: bool, reps: int) -> dict[str, Any]:
    bench = load_bench("bench_multi_dilation")
    stages, batch = (STAGES, 8) if not quick else ([(16, 20, 28), (32, 10, 14)], 2)
    rows = bench.run(stages, batch=batch, reps=reps, device=device, dtype=torch.float32)
    bench.print_rows(rows)
    goals = {name: all(goal(r) for r in rows) for name, goal in GOALS.items()}
    return {"batch": batch, "dtype": "float32", "reps": reps, "rows": rows, "goals_met": goals}


# --- the search's cost ----------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def search_cost(device: torch.device, quick: bool, per_gpu_batch: int, iterations: int) -> dict[str, Any]:
    """Time the paper preset's supernet iterations and archval scoring; project a COCO search."""
    from crnas import Architecture
    from crnas.arch import DILATIONS
    from crnas.data import DetectionSubset, SyntheticDetection
    from crnas.data.target import training_target
    from crnas.eval import score_detections
    from crnas.search import PathSampler, Scorer, StageSampler, preset, recalibrate_bn, supernet_of
    from crnas.search.driver import supernet_detector
    from crnas.train.loop import train_step

    overrides: dict[str, Any] = dict(device=str(device))
    height, width = 800, 1088
    eval_batch, val_images, recal_batches, warmup = None, 16, 2, 3
    if quick:
        overrides.update(width=0.125, min_size=96, max_size=128, fpn_channels=32, representation_size=64, eval_batch_size=2)
        height, width, val_images, iterations, warmup = 96, 128, 4, min(iterations, 2), 1
    config = preset("paper", **overrides)
    eval_batch = config.eval_batch_size
    space = config.space()
    num_classes = 81  # COCO: 80 classes + background
    use_amp = device.type == "cuda"
    data = SyntheticDetection(2 * val_images, image_size=(height, width), num_classes=4, seed=0)
    data.classes += [f"coco class {label}" for label in range(len(data.classes) + 1, num_classes)]  # evaluate 80 classes
    archtrain, archval = DetectionSubset(data, range(val_images)), DetectionSubset(data, range(val_images, 2 * val_images))
    images = [data.load_image(i).to(device) for i in range(per_gpu_batch)]
    targets = [training_target(data.target(i), device) for i in range(per_gpu_batch)]
    baseline = Architecture.baseline("resnet50").blocks

    def train_iterations(callback: Any, allocation: list[int] | None) -> dict[str, Any]:
        torch.manual_seed(0)
        model = supernet_detector(config, space, num_classes).train()
        supernet = supernet_of(model)
        if allocation is not None:
            supernet.set_allocation(allocation)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr_per_image * per_gpu_batch, momentum=0.9, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
        times = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for step in range(iterations + warmup):
            callback.on_step_start(step, images, targets, model)
            t = _timed(lambda step=step: train_step(model, images, targets, optimizer, scaler, use_amp, device, step), device)
            if step >= warmup:
                times.append(t)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        return {"median_s": statistics.median(times), "mean_s": statistics.mean(times), "times_s": times, "peak_gib": peak}

    stage = train_iterations(StageSampler(space, config.seed), None)
    op_per_image = train_iterations(PathSampler(config.seed, per_sample=True), baseline)
    op_per_batch = train_iterations(PathSampler(config.seed, per_sample=False), baseline)

    # one archval scoring pass: BatchNorm recalibration, detection, COCO evaluation
    model = supernet_detector(config, space, num_classes)
    scorer = Scorer(model, archtrain, archval, eval_batch, recal_batches, config.seed, config.device)
    scorer.score_allocation(baseline)  # warm-up (cuDNN plans, allocator)
    scorer.supernet.set_allocation(baseline)
    recal = _timed(lambda: recalibrate_bn(model, scorer.recal_images), device)
    records: list[Any] = []
    detect = _timed(lambda: records.extend(scorer._collect()), device)
    coco = _timed(lambda: score_detections(records, archval), device)
    allocation_pass = _timed(lambda: scorer.score_allocation(baseline), device)
    prefixes = [[1], [2], [3]]
    scorer.score_candidates(prefixes, 0, joint=True)  # warm-up
    joint_pass = _timed(lambda: scorer.score_candidates(prefixes, 0, joint=True), device)
    scoring = {
        "archval_images": len(archval), "eval_batch": eval_batch, "recal_batches": len(scorer.recal_images),
        "recal_s_per_batch": recal / len(scorer.recal_images), "detect_s_per_image": detect / len(archval),
        "coco_s_per_image": coco / len(archval), "allocation_pass_s": allocation_pass,
        "joint_pass_3_candidates_s": joint_pass,
    }

    # projection: the paper preset's schedule on COCO train2017 (spec §8; docs/benchmarks.md)
    paper = preset("paper")
    gpus_paper = 8
    n_val = round(COCO_TRAIN_IMAGES * paper.val_fraction)
    n_alloc = len(paper.space())
    blocks = sum(baseline)
    # Algorithm 1 with beam k: D candidates for the first block, then k·D per block
    candidates = len(DILATIONS) + (blocks - 1) * paper.beam * len(DILATIONS)
    # images per iteration over all GPUs: the paper's 2 per GPU on 8 GPUs
    images_per_iteration = gpus_paper * per_gpu_batch
    per_candidate = {  # seconds on one GPU for one scored candidate at paper scale
        "recal": paper.recal_batches * scoring["recal_s_per_batch"] * paper.eval_batch_size / eval_batch,
        "detect": n_val * scoring["detect_s_per_image"],
        "coco": n_val * scoring["coco_s_per_image"],
    }
    joint_factor = joint_pass / (3 * allocation_pass)  # joint scoring per candidate relative to one by one

    def training(iterations: int, seconds: float) -> dict[str, float]:
        # the same images per iteration: 8 GPUs x 2 images, or 1 GPU taking 8 iterations of 2 per iteration
        walls = {gpus: iterations * seconds * images_per_iteration / (gpus * per_gpu_batch) for gpus in (8, 1)}
        return {k: v for gpus, wall in walls.items() for k, v in ((f"{gpus}gpu_wall_h", wall / 3600), (f"{gpus}gpu_gpu_hours", wall * gpus / 3600))}

    def scoring_phase(scored: int, factor: float = 1.0) -> dict[str, float]:
        # every GPU recalibrates on the same batches and scores the gathered detections; detection is sharded
        walls = {gpus: scored * factor * (per_candidate["recal"] + per_candidate["detect"] / gpus + per_candidate["coco"]) for gpus in (8, 1)}
        return {k: v for gpus, wall in walls.items() for k, v in ((f"{gpus}gpu_wall_h", wall / 3600), (f"{gpus}gpu_gpu_hours", wall * gpus / 3600))}

    projection = {
        "assumptions": {
            "coco_train_images": COCO_TRAIN_IMAGES, "archval_images": n_val, "archtrain_images": COCO_TRAIN_IMAGES - n_val,
            "iterations": [paper.stage_iterations, paper.op_iterations], "images_per_iteration": images_per_iteration,
            "allocations": n_alloc, "dilation_candidates": candidates, "blocks": blocks, "beam": paper.beam,
            "recal_images": paper.recal_batches * paper.eval_batch_size,
            "not_included": "DDP gradient all-reduce, data loading and JPEG decoding, checkpoints",
        },
        "stage_supernet": training(paper.stage_iterations, stage["median_s"]),
        "stage_search": scoring_phase(n_alloc),
        "op_supernet": training(paper.op_iterations, op_per_image["median_s"]),
        "dilation_search_joint": scoring_phase(candidates, joint_factor),
    }
    phases = [p for name, p in projection.items() if name != "assumptions"]
    projection["total"] = {k: sum(p[k] for p in phases) for k in phases[0]}
    return {
        "config": {"preset": "paper", "per_gpu_batch": per_gpu_batch, "size": [height, width], "amp": use_amp, "iterations": iterations,
                   "width": config.width, "eval_batch": eval_batch},
        "stage_supernet": stage, "op_supernet_per_image_paths": op_per_image, "op_supernet_per_batch_paths": op_per_batch,
        "scoring": scoring, "projection": projection,
    }


# --- inference latency ----------------------------------------------------------------------------


def inference_latency(device: torch.device, quick: bool, reps: int) -> dict[str, Any]:
    from crnas.models import CRResNet50, ResNet50, SCRResNet50

    bench = load_bench("bench_models")
    size = (800, 1088) if not quick else (128, 160)
    torch.manual_seed(0)
    models = {"ResNet50": ResNet50(num_classes=1000), "SCR-ResNet50": SCRResNet50(num_classes=1000), "CR-ResNet50": CRResNet50(num_classes=1000)}
    for model in models.values():
        model.to(device).eval()
    dtypes = [torch.float32, torch.float16] if device.type == "cuda" else [torch.float32]
    rows = []
    previous = torch.backends.cudnn.benchmark
    try:
        for cudnn_benchmark in ([False, True] if device.type == "cuda" else [False]):
            torch.backends.cudnn.benchmark = cudnn_benchmark
            for batch in (1, 8) if not quick else (1, 2):
                for dtype in dtypes:
                    x = torch.randn(batch, 3, *size, device=device)
                    fns = {}
                    for name, model in models.items():
                        run = bench.body(model)

                        def fn(run=run, x=x, dtype=dtype) -> None:
                            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                                run(x)
                            sync(device)

                        fns[name] = fn
                    with torch.inference_mode():
                        times = bench.interleaved_times(fns, reps, warmup=3)
                    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                    rows.append({
                        "batch": batch, "dtype": str(dtype).replace("torch.", ""), "cudnn_benchmark": cudnn_benchmark,
                        "median_ms": medians, "CR/ResNet50": medians["CR-ResNet50"] / medians["ResNet50"],
                        "SCR/ResNet50": medians["SCR-ResNet50"] / medians["ResNet50"],
                        "CR/SCR": medians["CR-ResNet50"] / medians["SCR-ResNet50"],
                    })
    finally:
        torch.backends.cudnn.benchmark = previous
    return {"input": [3, *size], "what": "backbone conv1..layer4 (bench_models.body), inference_mode", "reps": reps, "rows": rows}


# --- the report -----------------------------------------------------------------------------------


def markdown(report: Report, env: dict[str, Any] | None) -> str:
    lines = ["# crnas GPU check", ""]
    if env:
        lines += [f"- {k}: {v}" for k, v in env.items()] + [""]
    lines += ["| check | result | seconds |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'pass' if c['passed'] else 'FAIL: ' + c['error']} | {c['seconds']} |" for c in report.checks]
    bench = report.details("benchmark")
    if bench:
        lines += [
            "", f"Op, forward + backward, batch {bench['batch']}, {bench['dtype']}, median of {bench['reps']}:", "",
            "| shape (N,C,H,W) | mix | fused ms | naive ms | conv ms | grouped ms | naive / fused | fused / conv | grouped / conv "
            "| peak MiB fused / naive / conv / grouped | mem fused / naive | mem grouped / naive |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bench["rows"]:
            g = "grouped_ms" in r
            cells = [
                "×".join(map(str, r["shape"])), r["mix"], f"{r['fused_ms']:.2f}", f"{r['naive_ms']:.2f}", f"{r['conv_ms']:.2f}",
                f"{r['grouped_ms']:.2f}" if g else "", f"{r['naive/fused']:.2f}", f"{r['fused/conv']:.2f}",
                f"{r['grouped/conv']:.2f}" if g else "",
                f"{r['fused_mib']:.1f} / {r['naive_mib']:.1f} / {r['conv_mib']:.1f}" + (f" / {r['grouped_mib']:.1f}" if g else ""),
                f"{r['mem fused/naive']:.2f}", f"{r['mem grouped/naive']:.2f}" if g else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Goals: " + "; ".join(f"{k}: {'met' if v else 'missed'}" for k, v in bench["goals_met"].items())]
    cost = report.details("search cost (paper preset)")
    if cost:
        c, sc, pr = cost["config"], cost["scoring"], cost["projection"]
        lines += [
            "", f"Search iterations (paper preset, ResNet50, {c['size'][0]}×{c['size'][1]}, {c['per_gpu_batch']} images per GPU, "
            f"AMP {c['amp']}), median of {c['iterations']}:", "",
            "| phase | s / iteration | peak GiB |", "|---|---|---|",
        ]
        for name, key in (("stage supernet", "stage_supernet"), ("op supernet, per-image paths", "op_supernet_per_image_paths"),
                          ("op supernet, per-batch paths", "op_supernet_per_batch_paths")):
            peak = cost[key]["peak_gib"]
            lines.append(f"| {name} | {cost[key]['median_s']:.3f} | {'' if peak is None else f'{peak:.1f}'} |")
        lines += [
            "", f"Archval scoring ({sc['archval_images']} images, batch {sc['eval_batch']}): recalibration {sc['recal_s_per_batch']:.3f} s "
            f"per batch, detection {sc['detect_s_per_image'] * 1e3:.1f} ms per image, COCO evaluation {sc['coco_s_per_image'] * 1e3:.1f} ms "
            f"per image; one allocation {sc['allocation_pass_s']:.2f} s, three dilation candidates jointly {sc['joint_pass_3_candidates_s']:.2f} s.",
            "", "Projected COCO search (paper schedule; " + ", ".join(f"{k} {v}" for k, v in pr["assumptions"].items()) + "):", "",
            "| phase | 8 GPUs: wall h | 8 GPUs: GPU-h | 1 GPU: wall h (= GPU-h) |", "|---|---|---|---|",
        ]
        for name in ("stage_supernet", "stage_search", "op_supernet", "dilation_search_joint", "total"):
            p = pr[name]
            lines.append(f"| {name.replace('_', ' ')} | {p['8gpu_wall_h']:.1f} | {p['8gpu_gpu_hours']:.1f} | {p['1gpu_wall_h']:.1f} |")
    latency = report.details("inference latency")
    if latency:
        lines += ["", f"Backbone inference latency, input {latency['input']}, median ms of {latency['reps']}:", "",
                  "| batch | dtype | cudnn.benchmark | ResNet50 | SCR-ResNet50 | CR-ResNet50 | CR / ResNet50 | CR / SCR |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in latency["rows"]:
            m = r["median_ms"]
            lines.append(f"| {r['batch']} | {r['dtype']} | {r['cudnn_benchmark']} | {m['ResNet50']:.2f} | {m['SCR-ResNet50']:.2f} | "
                         f"{m['CR-ResNet50']:.2f} | {r['CR/ResNet50']:.3f} | {r['CR/SCR']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny shapes and models (CPU smoke test of this script)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions of the op and latency benchmarks")
    ap.add_argument("--iterations", type=int, default=20, help="timed supernet training iterations")
    ap.add_argument("--per-gpu-batch", type=int, default=2, help="images per GPU in supernet training (the paper's 2)")
    ap.add_argument("--out", default="gpu-check", help="directory for gpu-check.json and gpu-check.md")
    args = ap.parse_args()
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    env = report.check("environment", lambda: environment(device))
    report.check("op vs reference (softmax and one-hot mixes, float32/float64, channels_last, batch 0)",
                 lambda: compare_with_reference(device, args.quick))
    report.check("gradcheck float64 + opcheck", lambda: gradcheck_and_opcheck(device))
    report.check("grouped one-hot path vs reference", lambda: grouped_path(device, args.quick))
    report.check("autocast float16/bfloat16", lambda: autocast(device))
    report.check("path sampler on device", lambda: sampler(device))
    report.check("training steps (CRResNet50 Faster R-CNN, supernet)", lambda: training_steps(device, args.quick))
    report.check("benchmark", lambda: benchmark(device, args.quick, args.reps))
    report.check("search cost (paper preset)", lambda: search_cost(device, args.quick, args.per_gpu_batch, args.iterations))
    report.check("inference latency", lambda: inference_latency(device, args.quick, args.reps))
    (out / "gpu-check.json").write_text(json.dumps({"environment": env, "checks": report.checks}, indent=2, default=str) + "\n")
    (out / "gpu-check.md").write_text(markdown(report, env))
    failed = [c["name"] for c in report.checks if not c["passed"]]
    print(f"report: {out / 'gpu-check.json'}, {out / 'gpu-check.md'}; {len(report.checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
