"""Search a computation reallocation: stage supernet, stage search, dilation search (docs/design.md#search-phases).

Writes DIR/result.json (the found architecture, its MACs against the baseline, every scored
candidate, configuration, seeds, versions, data fingerprint), DIR/search.log and checkpoints;
`--resume` continues an interrupted search in DIR to the same result.

Examples:
  crnas search --synthetic --family resnet50 --preset tiny --out runs/tiny
  torchrun --nproc_per_node 2 -m crnas search --synthetic --preset tiny --out runs/ddp   # distributed
  crnas search --coco ann.json images/ --family resnet50 --budget 16 --preset paper --out runs/coco
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from crnas.arch import DETECTORS, FAMILIES, SAMPLINGS
from crnas.cli.common import CLIUsageError, add_data_arguments, data_spec, load_dataset
from crnas.cli.errors import check_device
from crnas.detection import NORMS
from crnas.search.confidence import NOISE_ADVICE, Confidence
from crnas.search.config import PRESETS, STAGE_RANKERS, preset
from crnas.search.result import SearchResult

#: The searched stages, in the order of an allocation's block counts.
STAGE_NAMES = ("C2", "C3", "C4", "C5")

logger = logging.getLogger(__name__)


def preset_defaults(field: str) -> str:
    """``field``'s value in each preset, for --help: e.g. ``1000 (tiny, demo, quality), 90000 (paper)``."""
    names: dict[Any, list[str]] = {}
    for name in PRESETS:
        names.setdefault(getattr(preset(name), field), []).append(name)
    return ", ".join(f"{value} ({', '.join(group)})" for value, group in names.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--family", choices=FAMILIES, default="resnet50")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=int, help="total number of blocks (default: the baseline's)")
    budget.add_argument("--flops-tol", type=float, dest="flops_tolerance", help="MACs within this fraction of the baseline's")
    parser.add_argument("--method", choices=("greedy", "differentiable"), default="greedy")
    parser.add_argument("--detector", choices=DETECTORS, default="faster_rcnn_fpn")
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default="demo",
        help="the search's scale: tiny (tests), demo (make demo), quality (the recipe measured on CPUs, depth-fit stage ranking), "
        "paper (the paper's detector, GPUs); docs/design.md#presets (default demo)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue the search in --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=float, help="override the preset's width multiplier")
    parser.add_argument("--stage-iterations", type=int, help="override the stage supernet's iterations")
    parser.add_argument("--op-iterations", type=int, help="override the operation supernet's iterations")
    parser.add_argument("--beam", type=int, help="top-K of the greedy search (default 3)")
    parser.add_argument("--val-fraction", type=float, help="fraction of the images held out as archval (default: the preset's)")
    parser.add_argument("--max-dets", type=int, dest="max_detections",
                        help="detections kept per image and scored by COCO AP (default: the preset's; 100, COCO's, for paper; 50 for tiny/demo)")
    scoring = parser.add_mutually_exclusive_group()
    scoring.add_argument("--joint", action="store_true", help="score a greedy step's candidates together in one pass (per-image paths)")
    scoring.add_argument("--one-by-one", action="store_true", help="score greedy candidates one by one (own BN recalibration each)")
    parser.add_argument("--independent-completions", action="store_true", help="draw random completions per candidate")
    parser.add_argument("--per-batch-paths", action="store_true", help="one path per batch (SPOS) instead of per image")
    parser.add_argument(
        "--finetune-check", type=int, metavar="N",
        help="fine-tune the dilation pick and all-dilation-1 N iterations each before the final check compares them "
        "(default: the preset's; 0 compares the supernet's own scores; docs/design.md#fallback)",
    )
    parser.add_argument(
        "--no-dilation-fallback", action="store_true",
        help="skip the final check against all-dilation-1 and take the dilation search's pick (docs/design.md#fallback)",
    )
    parser.add_argument(
        "--stage-fallback", action="store_true",
        help="keep the baseline allocation unless the stage search's winner beats it significantly on archval (docs/design.md#fallback)",
    )
    parser.add_argument(
        "--weights-backbone", metavar="WEIGHTS",
        help="start the supernet from backbone weights: 'torchvision' (ImageNet) or a state-dict file of the family's network "
        "(docs/design.md#supernet-init)",
    )
    parser.add_argument(
        "--norm", choices=NORMS,
        help="normalisation of the supernet and of the stand-alone runs: BatchNorm (default) or GroupNorm, "
        "independent of the batch size (docs/design.md#norm)",
    )
    parser.add_argument(
        "--stage-sampling", choices=SAMPLINGS,
        help="stage supernet: allocations drawn uniformly (default), balanced per stage depth, or each stage's depth uniform "
        "and independent of the others, outside the budget while training (docs/design.md#stage-sampling)",
    )
    parser.add_argument(
        "--stage-sandwich", action="store_true",
        help="stage supernet: every step also trains the deepest and the shallowest sub-networks on its batch, the sandwich "
        "rule (about 3x the step's cost; docs/design.md#sandwich)",
    )
    parser.add_argument(
        "--stage-distill", type=float, metavar="W",
        help="with --stage-sandwich: in-place distillation, W times the squared difference between a sub-network's FPN "
        "features and the deepest's (relative to the deepest's square) added to its loss (docs/design.md#sandwich)",
    )
    parser.add_argument(
        "--normalize-outputs", action="store_true",
        help="stage supernet: divide every stage's output on its way to the FPN by its running root mean square at that "
        "stage's depth (folded into the FPN of the final model; docs/design.md#normalized-outputs)",
    )
    parser.add_argument(
        "--stage-ranker", choices=STAGE_RANKERS,
        help="how the stage search ranks the allocations: a stage supernet (the paper's) or depth-fit, a line through "
        "the stage depths of --probes allocations each trained on its own (docs/design.md#depth-fit); default: the preset's, "
        f"{preset_defaults('stage_ranker')}",
    )
    parser.add_argument(
        "--probes", type=int, metavar="N", help=f"depth-fit: allocations trained on their own (default: the preset's, {preset_defaults('probes')})",
    )
    parser.add_argument(
        "--probe-iterations", type=int, metavar="N",
        help=f"depth-fit: training iterations of each probe (default: the preset's, {preset_defaults('probe_iterations')})",
    )
    parser.add_argument(
        "--split-stage", choices=STAGE_NAMES,
        help="few-shot splitting: after the shared stage supernet, train one copy per depth range of this stage and score "
        "each allocation with its copy (docs/design.md#few-shot)",
    )
    parser.add_argument("--split-groups", type=int, metavar="K", help="number of copies (depth ranges) of --split-stage (default 3)")
    parser.add_argument("--split-iterations", type=int, metavar="N",
                        help="iterations each copy trains after the split (default: the stage supernet's)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the preset's)")
    parser.add_argument("--workers", type=int, dest="num_workers", help="DataLoader workers")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the space, the phases and their estimated wall time from a few timed iterations; search nothing")


def _confidences(result: SearchResult) -> list[tuple[str, Confidence]]:
    """The stage search's and the last greedy step's confidence records, where the result has them."""
    out = []
    if result.stage_search.confidence is not None:
        out.append(("stage search", result.stage_search.confidence))
    steps = result.dilation_search.steps
    if steps and steps[-1].confidence is not None:
        out.append(("dilation search (last step)", steps[-1].confidence))
    return out


def _fallbacks(result: SearchResult) -> list[str]:
    """What the search kept instead of its winners (docs/design.md#fallback)."""
    out = []
    if result.stage_search.fallback:
        out.append(f"kept the baseline allocation {result.baseline.blocks}: the stage search's winner "
                   f"{result.stage_search.allocations[0].blocks} is not significantly better on archval")
    final = result.dilation_search.final
    if final is not None and final.fallback:
        out.append(f"kept all-dilation-1: the dilation search's pick {final.confidence.winner} is not significantly better on archval")
    return out


def _split(args: argparse.Namespace) -> dict[str, Any]:
    """The few-shot split settings of the command line (docs/design.md#few-shot)."""
    if args.split_stage is None:
        if args.split_groups is not None or args.split_iterations is not None:
            raise CLIUsageError("--split-groups, --split-iterations: expected them with --split-stage, got no --split-stage")
        return {}
    out: dict[str, Any] = {"split_stage": STAGE_NAMES.index(args.split_stage), "split_groups": args.split_groups}
    shared = args.stage_iterations or PRESETS[args.preset]["stage_iterations"]
    out["split_iterations"] = args.split_iterations if args.split_iterations is not None else shared
    return out


def run(args: argparse.Namespace) -> int:
    from crnas import distributed
    from crnas.search import driver

    if not args.dry_run and args.out.exists() and (args.out / "config.json").exists() and not args.resume:
        raise CLIUsageError(f"{args.out} already holds a search: add --resume to continue it, or choose another --out")
    defaults = PRESETS[args.preset].get("data", {})
    spec = data_spec(args, defaults)  # preset() sets the synthetic size mix's reference from its resize
    config = preset(
        args.preset,
        family=args.family, budget=args.budget, flops_tolerance=args.flops_tolerance, method=args.method, detector=args.detector,
        seed=args.seed, width=args.width, stage_iterations=args.stage_iterations, op_iterations=args.op_iterations,
        beam=args.beam, val_fraction=args.val_fraction, max_detections=args.max_detections, device=args.device, num_workers=args.num_workers,
        joint=True if args.joint else False if args.one_by_one else None, common_random=False if args.independent_completions else None,
        per_sample_paths=False if args.per_batch_paths else None, stage_sampling=args.stage_sampling, norm=args.norm,
        stage_sandwich=True if args.stage_sandwich else None, stage_distill=args.stage_distill,
        normalize_outputs=True if args.normalize_outputs else None, stage_ranker=args.stage_ranker, probes=args.probes,
        probe_iterations=args.probe_iterations,
        weights_backbone=args.weights_backbone, dilation_fallback=False if args.no_dilation_fallback else None,
        stage_fallback=True if args.stage_fallback else None, finetune_check=args.finetune_check, data=spec,
        **_split(args),
    )
    check_device(config.device)
    dataset = load_dataset(config.data)  # the spec as the search records it (completed by the preset)
    estimate: list[str] = []
    if args.dry_run or (not args.resume and int(os.environ.get("WORLD_SIZE", "1")) == 1):  # not under torchrun
        from crnas.search.estimate import estimate_search

        estimate = estimate_search(config, dataset).lines()
        if args.dry_run:
            print("\n".join(estimate))
            return 0
    distributed.init_from_env(config.device)
    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / "search.log") if distributed.is_main() else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    for line in estimate:
        logger.info("estimate: %s", line.strip())
    try:
        result = driver.run_search(config, dataset, args.out, resume=args.resume, progress=not args.no_progress)
    finally:
        logging.getLogger().removeHandler(handler)
    if not distributed.is_main():
        return 0
    arch = result.architecture
    found, base = result.macs.found, result.macs.baseline
    print(f"found allocation {arch.blocks} (baseline {result.baseline.blocks})")
    print("dilations " + " | ".join(" ".join(map(str, s)) for s in arch.stage_dilations))
    print(f"MACs ({config.detector} at {config.macs_input[0]}x{config.macs_input[1]}): {found / 1e9:.2f} G vs baseline "
          f"{base / 1e9:.2f} G ({100 * (found / base - 1):+.2f}%)")
    allocations = result.stage_search.allocations
    probes = result.stage_search.probes
    if probes is None:
        print(f"stage search: {len(allocations)} allocations scored; best AP {allocations[0].metrics['AP']:.4f}")
    else:
        print(f"stage search: {len(allocations)} allocations scored by the depth fit of {len(probes.allocations)} probes "
              f"(R2 {probes.fit.linear.r2:.2f}); best predicted AP {allocations[0].metrics['AP']:.4f}")
    for what, confidence in _confidences(result):
        print(confidence.summary(what))
        if not confidence.lead.significant:
            print(f"  warning: {NOISE_ADVICE}")
    if result.stage_search.archval is not None:
        print(result.stage_search.archval.summary("stage search"))
    final = result.dilation_search.final
    if final is not None:
        how = "supernet scores" if final.finetuned is None else f"after {result.config.finetune_check} fine-tuning iterations each"
        print(final.confidence.summary(f"final check ({how})"))
    for line in _fallbacks(result):
        print(f"fallback: {line} (docs/design.md#fallback)")
    print(f"result: {args.out / 'result.json'}")
    return 0
