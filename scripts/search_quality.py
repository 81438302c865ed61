"""Does the search win? Retrain the baseline, the searched stage allocation (all dilations 1) and the
searched architecture (allocation + dilations) from scratch, several seeds each, and compare their AP
at equal MACs — the paper's Table 2 for one search (docs/results.md, "The quality preset"). When the
search's final check kept all-dilation-1 (docs/design.md#fallback), the dilation search's own pick is
retrained too (``dilation_pick``): what the fallback avoided.

    python scripts/search_quality.py runs/quality --seeds 0 1 2 --iterations 1000 \\
        --spread runs/trials/spread.json --out docs/results/quality.json

All three are trained exactly like the ground truth of ``scripts/allocation_spread.py`` — the search's
detector settings and schedule, through the audit's stand-alone cache ($CRNAS_CACHE/standalone, so
runs the ground truth already trained are reused and a killed run resumes), on synthetic data at seeds
the search never saw (the search's data seed + 1000 for training, + 1001 for evaluation) or on
--coco / --voc data split by --holdout. ``--spread`` adds the search's stage-ranking audit (Kendall τ
with its CI) from an allocation_spread JSON that checked this search; ``--audit`` takes it from a
``crnas audit`` record instead.

Writes ``--out`` (JSON: each model's blocks, dilations, MACs and per-seed AP; the gains over the
baseline; the audit's τ; the search's configuration, data seeds and wall time; the retraining's
machine and wall time) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

import scipy.stats
from allocation_spread import ground_truth_data, train_cached
from crnas import flops
from crnas.cli.common import add_data_arguments
from crnas.search.audit import AuditRecord, job_factory
from crnas.search.result import SearchResult


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search", type=Path, help="a search directory (or its result.json)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--train-images", type=int, default=288, help="synthetic training images (default: the demo's archtrain size)")
    ap.add_argument("--eval-images", type=int, default=300, help="synthetic evaluation images")
    ap.add_argument("--holdout", type=float, default=0.2, help="real data: the held-out evaluation fraction")
    ap.add_argument("--cache", type=Path, default=None, help="stand-alone cache (default $CRNAS_CACHE/standalone)")
    audit_source = ap.add_mutually_exclusive_group()
    audit_source.add_argument("--spread", type=Path, help="an allocation_spread.py JSON that checked this search (--searches)")
    audit_source.add_argument("--audit", type=Path, help="a `crnas audit` record (audit.json or its search directory)")
    ap.add_argument("--out", type=Path, required=True, help="JSON summary, e.g. docs/results/quality.json")
    ap.add_argument("--no-progress", action="store_true")
    add_data_arguments(ap, required=False)
    args = ap.parse_args()

    search_dir = args.search.parent if args.search.name == "result.json" else args.search
    result = SearchResult.load(search_dir)
    config = result.config
    train_set, eval_set = ground_truth_data(args, config)
    stage_only = result.architecture.replace(dilations=[1] * result.architecture.num_blocks)
    models = {"baseline": result.baseline, "stage_only": stage_only, "found": result.architecture}
    final = result.dilation_search.final
    if final is not None and final.fallback:  # what the dilation search picked before its final check kept all-dilation-1
        models["dilation_pick"] = result.architecture.replace(dilations=final.confidence.winner)
    convention = result.macs.convention_kwargs()
    macs = {name: flops.count(a, tuple(result.macs.input_size), result.macs.detector, **convention).macs for name, a in models.items()}
    if macs["found"] != result.macs.found or macs["baseline"] != result.macs.baseline:
        raise SystemExit(f"search: expected the MACs its result records ({result.macs.found}, {result.macs.baseline}), counted {macs}")
    make_jobs = job_factory(config, train_set, eval_set, args.iterations, args.seeds)
    jobs = {name: make_jobs((list(a.blocks), list(a.dilations), 0.0, 0)) for name, a in models.items()}
    metrics, provenance = train_cached(jobs, config, train_set, eval_set, args, f"{len(models)} models")
    summary: dict[str, Any] = {
        name: {
            "blocks": list(a.blocks), "dilations": list(a.dilations), "macs": macs[name],
            "AP": [100 * m["AP"] for m in metrics[name]],
            "metrics": metrics[name],
        }
        for name, a in models.items()
    }
    for name in [n for n in models if n != "baseline"]:
        summary[f"{name}_vs_baseline"] = compare(summary[name]["AP"], summary["baseline"]["AP"], macs[name], macs["baseline"])
    summary["audit"] = audit_summary(args, search_dir)
    timing = search_dir / "timing.json"
    summary["search"] = {
        "dir": str(search_dir), "config": config.to_dict(), "seeds": result.seeds, "data_fingerprint": result.data.fingerprint,
        "wall_time_s": json.loads(timing.read_text()) if timing.is_file() else None,
    }
    summary["retraining"] = {
        "iterations": args.iterations, "seeds": args.seeds, "train_images": len(train_set), "eval_images": len(eval_set),
        "data": {"train": train_set.report.source, "eval": eval_set.report.source},
        **provenance,
    }
    summary["unit"] = "AP in percent; MACs of the search's convention"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")

    print(f"| model | blocks | dilations | GMACs ({result.macs.detector}, {result.macs.input_size[0]}x{result.macs.input_size[1]}) "
          f"| AP per seed | AP mean ± sd | vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        row = summary[name]
        gain = summary.get(f"{name}_vs_baseline")
        versus = f"{gain['gain']:+.2f} AP{' (spreads apart)' if gain['spreads_apart'] else ''}" if gain else ""
        print(f"| {name} | {row['blocks']} | {' '.join(map(str, row['dilations']))} | {row['macs'] / 1e9:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in row['AP'])} | {mean_sd(row['AP'])} | {versus} |")


def compare(ap: list[float], baseline: list[float], macs: int, baseline_macs: int) -> dict[str, Any]:
    """Mean gain over the baseline, whether mean ± sd intervals are apart, Welch's t-test (two or more
    seeds each and not all equal; ``scipy.stats.ttest_ind``), and the relative MACs difference."""
    m, b = statistics.mean(ap), statistics.mean(baseline)
    sd, sd_b = (statistics.stdev(x) if len(x) > 1 else 0.0 for x in (ap, baseline))
    welch = scipy.stats.ttest_ind(ap, baseline, equal_var=False) if min(len(ap), len(baseline)) > 1 else None
    t, p = (None, None) if welch is None or math.isnan(welch.statistic) else (float(welch.statistic), float(welch.pvalue))
    return {
        "gain": m - b, "spreads_apart": m - sd > b + sd_b or m + sd < b - sd_b, "welch_t": t, "welch_p": p,
        "macs_rel_diff": macs / baseline_macs - 1,
    }


def audit_summary(args: argparse.Namespace, search_dir: Path) -> dict[str, Any] | None:
    """The search's stage-ranking audit: from an allocation_spread JSON (--spread) or a crnas audit record (--audit)."""
    if args.spread is not None:
        spread = json.loads(args.spread.read_text())
        checks = spread["searches"]
        check = next((c for d, c in checks.items() if Path(d).resolve() == search_dir.resolve()), None)
        if check is None:
            raise SystemExit(f"--spread: expected a check of {search_dir} in {args.spread}, got checks of {', '.join(checks) or 'none'}")
        partial = bool(spread.get("cached_only")) and bool(spread.get("left_out"))
        if partial:
            print(f"--spread: {args.spread} is a partial ground truth (--cached-only; {len(spread['left_out'])} allocations left out)")
        return {"source": str(args.spread), "partial": partial, **{k: check[k] for k in ("kendall_tau", "spearman_rho", "top3_overlap", "regret")}}
    if args.audit is not None:
        stage = AuditRecord.load(args.audit).stage
        tau, rho = stage.kendall_tau, stage.spearman_rho
        return {
            "source": str(args.audit), "partial": False, "kendall_tau": {"value": tau.value, "ci": tau.ci},
            "spearman_rho": {"value": rho.value, "ci": rho.ci},
            "top3_overlap": stage.top3_overlap, "regret": 100 * stage.regret,
        }
    return None


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


if __name__ == "__main__":
    main()
