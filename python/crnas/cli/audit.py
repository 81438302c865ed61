"""Audit a finished search: train its candidates stand-alone and measure how well the supernet ranked them.

Picks --allocations allocations from the stage table (the winner, the baseline and the worst always
among them), trains each from scratch with the search's detector settings on its archtrain images,
evaluates on images the search never scored, and reports Kendall tau and Spearman rho (with bootstrap
CIs) between supernet AP and stand-alone AP, the top-3 overlap and the regret of the search's pick; the
same for the dilation search's final beam and all-dilation-1. Writes DIR/audit/audit.json (see
docs/audit.md). Stand-alone runs are cached (--cache) and resumable: rerun the command to continue.

Examples:
  crnas audit runs/demo --dry-run
  crnas audit runs/demo --allocations 12 --iterations 600 --seeds 0
  crnas audit runs/coco --eval-coco val.json val_images/ --seeds 0 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from crnas.cli.common import CLIUsageError

if TYPE_CHECKING:
    from crnas.search.audit import AuditConfig, AuditRecord, DepthBaseline, DepthResponse, StandaloneCache


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("search", type=Path, help="a search directory (holding result.json)")
    parser.add_argument("--allocations", type=int, default=12, help="allocations from the stage table (default 12)")
    parser.add_argument("--iterations", type=int, help="stand-alone training iterations (default: the search's stage-supernet iterations)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds per architecture (default 0)")
    parser.add_argument("--eval-images", type=int, default=150, help="fresh evaluation images of a synthetic search (default 150)")
    held = parser.add_mutually_exclusive_group()
    held.add_argument("--eval-coco", nargs=2, metavar=("ANN", "IMAGES"), help="evaluate on this COCO set (default: hold out 20%% of archtrain)")
    held.add_argument("--eval-voc", metavar="ROOT", help="evaluate on this VOC folder")
    parser.add_argument("--no-dilation", action="store_true", help="audit the stage search only")
    parser.add_argument("--out", type=Path, help="where audit.json goes (default: SEARCH/audit)")
    parser.add_argument("--cache", type=Path, help="stand-alone run cache (default: $CRNAS_CACHE/standalone or ~/.cache/crnas/standalone)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be trained and an estimated time, train nothing")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from crnas.search.audit import AuditConfig, StandaloneCache, default_cache_dir, run_audit

    if not (args.search / "result.json").is_file():
        raise CLIUsageError(f"search: expected a search directory holding result.json, got {str(args.search)!r}")
    eval_data = None
    if args.eval_coco:
        eval_data = {"kind": "coco", "ann_file": args.eval_coco[0], "image_root": args.eval_coco[1]}
    elif args.eval_voc:
        eval_data = {"kind": "voc", "root": args.eval_voc, "image_set": None}
    config = AuditConfig(
        allocations=args.allocations, iterations=args.iterations, seeds=list(args.seeds), eval_images=args.eval_images,
        eval_data=eval_data, dilation=not args.no_dilation,
    )
    cache = StandaloneCache(args.cache or default_cache_dir())
    if args.dry_run:
        return _dry_run(args, config, cache)
    record = run_audit(args.search, config, out_dir=args.out, cache=cache, progress=not args.no_progress)
    print(format_audit(record))
    print(f"audit: {(args.out or args.search / 'audit') / 'audit.json'}")
    return 0


def _dry_run(args: argparse.Namespace, config: AuditConfig, cache: StandaloneCache) -> int:
    from crnas.search.audit import audit_plan, estimate_run_seconds

    plan = audit_plan(args.search, config)
    jobs = plan.unique_jobs()
    pending = [j for j in jobs if cache.get(j) is None]
    print(f"stand-alone runs: {len(jobs)} ({len(jobs) - len(pending)} cached), {plan.iterations} iterations each, "
          f"{len(plan.train_set)} training / {len(plan.eval_set)} evaluation images, seeds {config.seeds}")
    for blocks, _, ap, rank in plan.stage:
        print(f"  stage    rank {rank:4d}  {blocks}  supernet AP {100 * ap:.2f}")
    for blocks, dilations, ap, _ in plan.dilation:
        print(f"  dilation {blocks} {' '.join(map(str, dilations))}  supernet AP {100 * ap:.2f}")
    if pending:
        t0 = time.time()
        per_run = estimate_run_seconds(plan)
        print(f"estimated: {per_run:.0f} s per run, {len(pending) * per_run / 60:.0f} min for {len(pending)} runs "
              f"(timed in {time.time() - t0:.0f} s on {plan.config.device})")
    return 0


def format_audit(record: AuditRecord) -> str:
    """The audit as a printed table and a summary per ranking."""
    lines = []
    for name, audit in (("stage search", record.stage), ("dilation search", record.dilation)):
        if audit is None:
            continue
        lines.append(f"{name}: {len(audit.pairs)} architectures")
        lines.append("  rank  architecture                          supernet AP  stand-alone AP")
        for p in sorted(audit.pairs, key=lambda p: p.supernet_rank):
            arch = str(p.blocks) if name == "stage search" else " ".join(map(str, p.dilations))
            mark = " <- pick" if (p.blocks if name == "stage search" else p.dilations) == audit.pick else ""
            lines.append(f"  {p.supernet_rank:4d}  {arch[:36]:36s}  {100 * p.supernet_AP:11.2f}  {100 * p.standalone_AP:14.2f}{mark}")
        for label, est in (("Kendall tau", audit.kendall_tau), ("Spearman rho", audit.spearman_rho)):
            if est.value is None or est.ci is None:
                why = "fewer than 3 architectures" if len(audit.pairs) < 3 else "one side's APs are all equal"
                lines.append(f"  {label}: n/a ({why})")
            else:
                lines.append(f"  {label}: {est.value:+.3f} (95% CI {est.ci[0]:+.3f} .. {est.ci[1]:+.3f})")
        lines.append(f"  top-3 overlap: {audit.top3_overlap}/3; regret of the pick: {100 * audit.regret:.2f} AP")
        if audit.seed_noise is not None:
            n = audit.seed_noise
            verdict = "the architectures differ beyond seed noise" if n.p < 0.05 else "WITHIN seed noise: no ranking can be checked here"
            lines.append(
                f"  stand-alone spread: between architectures {100 * n.sd_between:.2f} AP, seed to seed {100 * n.sd_within:.2f} AP "
                f"(F = {n.F:.2f}, p = {n.p:.3g}): {verdict}; a perfect ranking would reach tau {n.tau_ceiling:.2f} "
                f"against these means; {n.seeds_advice()}" + ("" if n.eval_advice() is None else f"; {n.eval_advice()}")
            )
        if audit.depth_response is not None:
            lines.append(_depth_line(audit.depth_response))
        if audit.depth_baseline is not None:
            lines.append(_baseline_line(audit.depth_baseline, len(audit.pairs)))
    return "\n".join(lines)


def _baseline_line(baseline: DepthBaseline, m: int) -> str:
    """The depth baseline in one line, with what the paired difference says about the supernet."""
    tau, diff = baseline.kendall_tau, baseline.supernet_minus_baseline
    if tau.value is None or tau.ci is None or diff.value is None or diff.ci is None:
        return "  depth baseline (docs/audit.md#depth-baseline): n/a (the stand-alone APs are all equal)"
    if diff.ci[1] < 0:
        verdict = f"the supernet ranks WORSE than the stage depths fitted on the other {m - 1} stand-alone results"
    elif diff.ci[0] > 0:
        verdict = "the supernet ranks better than the stage depths alone"
    else:
        verdict = "the supernet cannot be told apart from the stage depths alone"
    return (
        f"  depth baseline (docs/audit.md#depth-baseline): a linear fit on the stage depths, leaving each allocation out, ranks the "
        f"stand-alone APs at tau {tau.value:+.3f} (95% CI {tau.ci[0]:+.3f} .. {tau.ci[1]:+.3f}); supernet minus it "
        f"{diff.value:+.3f} ({diff.ci[0]:+.3f} .. {diff.ci[1]:+.3f}): {verdict}"
    )


def _depth_line(response: DepthResponse) -> str:
    """The depth response in one line: per-block AP of both sides and which model fits each better."""
    fits = {"stand-alone": response.standalone, "supernet": response.supernet}
    stages = ["C2", "C3", "C4", "C5"][: len(response.standalone.linear.coefficients)]
    what = "AP per block moved from C5 into " if response.standalone.last_stage_is_reference else "AP per block of "
    sides = "; ".join(
        f"{name} {'/'.join(f'{c:+.2f}' for c in fit.linear.coefficients)} (R2 linear {fit.linear.r2:.2f}, log {fit.log.r2:.2f}: {fit.shape})"
        for name, fit in fits.items()
    )
    return f"  depth response (docs/audit.md#depth-response): {what}{'/'.join(stages)}: {sides}"
