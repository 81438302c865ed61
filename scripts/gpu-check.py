"""Check crnas's native ops on a GPU and measure them there; writes one report (JSON + Markdown).

Run on a machine with the crnas build for its torch installed (scripts/build-for-torch.sh) and this
working tree, no network needed:

    python scripts/gpu-check.py --report gpu-check        # -> gpu-check.json, gpu-check.md

Checks (each recorded as passed / failed with details; the script never stops at a failure):
  1. environment: device, driver, torch, CUDA, crnas and the torch its core was built for;
  2. the fused op against the pure-PyTorch reference on the device: float32/float64, groups, stride,
     shared and per-sample mix, channels_last, batch 0; float64 gradcheck; torch.library.opcheck;
     float16 and bfloat16 under autocast (forward and backward against a float32 reference);
  3. the path sampler producing one-hot mixes on the device;
  4. a Faster R-CNN training step with CRResNet50, and one per-sample-path supernet step;
  5. the op benchmark (fused vs naive vs one cuDNN conv, fwd+bwd, peak memory) at batch 8 on the
     four ResNet stages at 200x272-scale feature maps.
``--device cpu --quick`` runs the same checks on the CPU with small shapes (the test suite does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            details = fn()
            self.checks.append({"name": name, "passed": True, "seconds": round(time.perf_counter() - t0, 2), "details": details})
            print(f"PASS {name}")
            return details
        except Exception as err:  # record and go on: one report with every failure
            self.checks.append({"name": name, "passed": False, "seconds": round(time.perf_counter() - t0, 2),
                                "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
            print(f"FAIL {name}: {type(err).__name__}: {err}")
            return None


def environment(device: torch.device) -> dict[str, Any]:
    import crnas
    from crnas._native import built_for_torch, core

    env = {
        "torch": torch.__version__, "cuda": torch.version.cuda, "crnas": crnas.__version__,
        "core_built_for_torch": core().__torch_version__, "metadata_built_for_torch": built_for_torch(),
        "python": platform.python_version(), "machine": platform.machine(), "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["capability"] = list(torch.cuda.get_device_capability(device))
        env["cudnn"] = torch.backends.cudnn.version()
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            env["driver"] = f"unknown ({err})"
    else:
        env["device"] = platform.processor() or platform.machine()
    return env


def op_cases(quick: bool) -> list[tuple[int, int, int, int, int, int, int, tuple[int, ...], bool]]:
    """(n, c, o, h, w, stride, groups, dilations, per-sample mix)."""
    cases = [
        (2, 8, 6, 13, 11, 1, 1, (1, 2, 3), True), (3, 8, 8, 9, 12, 2, 2, (1, 2, 3), False), (1, 4, 4, 7, 7, 1, 4, (1, 3), True),
        (0, 4, 4, 5, 5, 1, 1, (1, 2, 3), True), (2, 3, 5, 1, 2, 2, 1, (2,), False),
    ]
    if not quick:
        cases += [
            (4, 64, 64, 50, 68, 1, 1, (1, 2, 3), True),
            (4, 128, 128, 25, 34, 2, 1, (1, 2, 3), False),
            (2, 96, 96, 30, 30, 1, 96, (1, 2, 3), True),
        ]
    return cases


def make(case, device, dtype, seed=0):
    n, c, o, h, w, s, g, dil, per_sample = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype).to(device).requires_grad_()
    wt = torch.randn(o, c // g, 3, 3, generator=gen, dtype=dtype).to(device).requires_grad_()
    mix = torch.softmax(torch.randn((n, len(dil)) if per_sample else (len(dil),), generator=gen, dtype=dtype), -1).to(device).requires_grad_()
    b = torch.randn(o, generator=gen, dtype=dtype).to(device).requires_grad_()
    return (x, wt, mix, b), dict(dilations=dil, stride=s, groups=g)


def compare_with_reference(device: torch.device, quick: bool) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d, reference

    worst: dict[str, float] = {}
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-3)):
        for case in op_cases(quick):
            for memory_format in (torch.contiguous_format, torch.channels_last):
                args, kw = make(case, device, dtype)
                x = args[0].detach().to(memory_format=memory_format).requires_grad_()
                args = (x, *args[1:])
                out = multi_dilation_conv2d(*args, **kw)
                ref = reference.multi_dilation_conv2d(*args, **kw)
                gy = torch.randn_like(ref)
                got = torch.autograd.grad(out, args, gy, allow_unused=True)
                want = torch.autograd.grad(ref, args, gy, allow_unused=True)
                scale = max(1.0, float(ref.abs().max()) if ref.numel() else 1.0)
                errs = [float((out - ref).abs().max()) if out.numel() else 0.0]
                errs += [float((a - e).abs().max()) if a.numel() else 0.0 for a, e in zip(got, want)]
                key = str(dtype).replace("torch.", "")
                worst[key] = max(worst.get(key, 0.0), max(errs) / scale)
                if max(errs) / scale > tol:
                    raise AssertionError(f"{case} {dtype} {memory_format}: relative errors {errs} exceed {tol}")
    return {"worst_relative_error": worst, "cases": len(op_cases(quick)) * 2}


def gradcheck_and_opcheck(device: torch.device) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d

    args, kw = make((2, 4, 3, 6, 5, 2, 1, (1, 2, 3), True), device, torch.float64)
    assert torch.autograd.gradcheck(lambda *a: multi_dilation_conv2d(*a, **kw), args)
    args, kw = make((2, 4, 4, 6, 6, 1, 2, (1, 3), False), device, torch.float32)
    torch.library.opcheck(torch.ops.crnas.multi_dilation_conv2d.default, (*args, list(kw["dilations"]), kw["stride"], kw["groups"]))
    return {"gradcheck": True, "opcheck": True}


def autocast(device: torch.device) -> dict[str, Any]:
    from crnas.ops import multi_dilation_conv2d, reference

    dtypes = [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]
    out: dict[str, Any] = {}
    for dtype in dtypes:
        args, kw = make((4, 32, 32, 20, 24, 1, 1, (1, 2, 3), True), device, torch.float32)
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
    images = [torch.rand(3, size, size, device=device) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]], device=device), "labels": torch.tensor([1], device=device)}] * 2
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
    supernet.set_paths(choices_to_paths(onehot.argmax(-1).t(), 3))
    supernet_losses = supernet_model(images, targets)
    total = sum(supernet_losses.values())
    total.backward()
    assert torch.isfinite(total)
    return {"cr_resnet50_losses": {k: float(v) for k, v in losses.items()}, "supernet_losses": {k: float(v) for k, v in supernet_losses.items()}}


def benchmark(device: torch.device, quick: bool, reps: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_multi_dilation", ROOT / "benches" / "bench_multi_dilation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    # bottleneck widths of ResNet50's stages at 800x1088 (C2 at 200x272 ... C5 at 25x34)
    stages = [(64, 200, 272), (128, 100, 136), (256, 50, 68), (512, 25, 34)]
    batch = 8
    if quick:
        stages, batch = [(16, 20, 28), (32, 10, 14)], 2
    rows = bench.run(stages, batch=batch, reps=reps, device=device, dtype=torch.float32)
    bench.print_rows(rows)
    goals = {"naive/fused >= 2": all(r["naive/fused"] >= 2 for r in rows), "fused/conv <= 1.3": all(r["fused/conv"] <= 1.3 for r in rows),
             "memory fused/naive <= 0.6": all(r["mem fused/naive"] <= 0.6 for r in rows)}
    return {"batch": batch, "rows": rows, "goals_met": goals}


def markdown(report: Report, env: dict[str, Any] | None) -> str:
    lines = ["# crnas GPU check", ""]
    if env:
        lines += [f"- {k}: {v}" for k, v in env.items()] + [""]
    lines += ["| check | result | seconds |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'pass' if c['passed'] else 'FAIL: ' + c['error']} | {c['seconds']} |" for c in report.checks]
    bench = next((c for c in report.checks if c["name"] == "benchmark" and c["passed"]), None)
    if bench:
        lines += [
            "",
            "| shape (N,C,H,W) | mix | fused ms | naive ms | conv ms | naive/fused | fused/conv | mem fused/naive |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in bench["details"]["rows"]:
            lines.append(f"| {'x'.join(map(str, r['shape']))} | {r['mix']} | {r['fused_ms']:.2f} | {r['naive_ms']:.2f} | {r['conv_ms']:.2f} | "
                         f"{r['naive/fused']:.2f} | {r['fused/conv']:.2f} | {r['mem fused/naive']:.2f} |")
        lines += ["", "Goals: " + ", ".join(f"{k}: {'met' if v else 'missed'}" for k, v in bench["details"]["goals_met"].items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small shapes (CPU smoke test of this script)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--report", default="gpu-check", help="report path without extension (.json and .md are written)")
    args = ap.parse_args()
    device = torch.device(args.device)
    report = Report()
    env = report.check("environment", lambda: environment(device))
    report.check("op vs reference (float32/float64, channels_last, mix shapes, batch 0)", lambda: compare_with_reference(device, args.quick))
    report.check("gradcheck float64 + opcheck", lambda: gradcheck_and_opcheck(device))
    report.check("autocast float16/bfloat16", lambda: autocast(device))
    report.check("path sampler on device", lambda: sampler(device))
    report.check("training steps (CRResNet50 Faster R-CNN, supernet)", lambda: training_steps(device, args.quick))
    report.check("benchmark", lambda: benchmark(device, args.quick, args.reps))
    Path(f"{args.report}.json").write_text(json.dumps({"environment": env, "checks": report.checks}, indent=2, default=str) + "\n")
    Path(f"{args.report}.md").write_text(markdown(report, env))
    failed = [c["name"] for c in report.checks if not c["passed"]]
    print(f"report: {args.report}.json, {args.report}.md; {len(report.checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
