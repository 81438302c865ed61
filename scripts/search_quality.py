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

Given such a JSON instead of a search, the models it records are retrained from its search
configuration (``--models`` to pick some): more seeds or another schedule for a search whose directory
is gone, e.g. ``python scripts/search_quality.py docs/results/quality.json --seeds 0 1 2 3 4
--iterations 2000 --models baseline found --out quality-2000.json`` (its audit is carried over unless
--spread / --audit gives one).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any, NamedTuple

import scipy.stats
from allocation_spread import ground_truth_data, train_cached
from crnas import Architecture, flops
from crnas.cli.common import add_data_arguments
from crnas.search.audit import AuditRecord, job_factory
from crnas.search.config import SearchConfig
from crnas.search.result import SearchResult

MODELS = ("baseline", "stage_only", "found", "dilation_pick")


class Retraining(NamedTuple):
    """What to retrain: the search's configuration, its models (in ``MODELS`` order) with their MACs,
    and the search's provenance for the summary."""

    config: SearchConfig
    models: dict[str, Architecture]
    macs: dict[str, int]
    macs_label: str
    search: dict[str, Any]
    audit: dict[str, Any] | None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search", type=Path, help="a search directory (or its result.json), or a JSON summary this script wrote")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=None, help="retrain only these (default: every model the search names)")
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

    plan = from_summary(args) if args.search.is_file() and args.search.name != "result.json" else from_search(args)
    if args.models is not None:
        if "baseline" not in args.models:
            raise SystemExit(f"--models: expected the baseline among them (every gain is over it), got {' '.join(args.models)}")
        absent = [m for m in args.models if m not in plan.models]
        if absent:
            raise SystemExit(f"--models: expected models of {args.search} ({', '.join(plan.models)}), got {', '.join(absent)}")
    models = {name: a for name, a in plan.models.items() if args.models is None or name in args.models}
    config, macs = plan.config, plan.macs
    train_set, eval_set = ground_truth_data(args, config)
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
    summary["audit"] = plan.audit
    summary["search"] = plan.search
    summary["retraining"] = {
        "iterations": args.iterations, "seeds": args.seeds, "train_images": len(train_set), "eval_images": len(eval_set),
        "data": {"train": train_set.report.source, "eval": eval_set.report.source},
        **provenance,
    }
    summary["unit"] = "AP in percent; MACs of the search's convention"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")

    print(f"| model | blocks | dilations | GMACs ({plan.macs_label}) "
          f"| AP per seed | AP mean ± sd | vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        row = summary[name]
        gain = summary.get(f"{name}_vs_baseline")
        versus = (f"{gain['gain']:+.2f} AP{' (spreads apart)' if gain['spreads_apart'] else ''}, "
                  f"{gain['seeds_won']} of {len(row['AP'])} seeds won" if gain else "")
        print(f"| {name} | {row['blocks']} | {' '.join(map(str, row['dilations']))} | {row['macs'] / 1e9:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in row['AP'])} | {mean_sd(row['AP'])} | {versus} |")


def from_search(args: argparse.Namespace) -> Retraining:
    """The baseline, the stage-only model, the found architecture and (when the final check kept
    all-dilation-1) the dilation search's own pick, from a search's result.json."""
    search_dir = args.search.parent if args.search.name == "result.json" else args.search
    result = SearchResult.load(search_dir)
    stage_only = result.architecture.replace(dilations=[1] * result.architecture.num_blocks)
    models = {"baseline": result.baseline, "stage_only": stage_only, "found": result.architecture}
    final = result.dilation_search.final
    if final is not None and final.fallback:  # what the dilation search picked before its final check kept all-dilation-1
        models["dilation_pick"] = result.architecture.replace(dilations=final.confidence.winner)
    convention = result.macs.convention_kwargs()
    macs = {name: flops.count(a, tuple(result.macs.input_size), result.macs.detector, **convention).macs for name, a in models.items()}
    if macs["found"] != result.macs.found or macs["baseline"] != result.macs.baseline:
        raise SystemExit(f"search: expected the MACs its result records ({result.macs.found}, {result.macs.baseline}), counted {macs}")
    timing = search_dir / "timing.json"
    search = {
        "dir": str(search_dir), "config": result.config.to_dict(), "seeds": result.seeds, "data_fingerprint": result.data.fingerprint,
        "wall_time_s": json.loads(timing.read_text()) if timing.is_file() else None,
    }
    label = f"{result.macs.detector}, {result.macs.input_size[0]}x{result.macs.input_size[1]}"
    return Retraining(result.config, models, macs, label, search, audit_summary(args, search_dir))


def from_summary(args: argparse.Namespace) -> Retraining:
    """The models a summary of this script records, rebuilt from its search configuration; their MACs
    recounted as the search counts them (and checked against the summary's)."""
    try:
        summary = json.loads(args.search.read_text())
        config = SearchConfig.from_dict(summary["search"]["config"])
        rows = {name: summary[name] for name in MODELS if name in summary}
    except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"search: expected a search directory, its result.json or a summary of this script, got {args.search} ({e!r})") from None
    space = config.space()
    models = {name: space.architecture(row["blocks"], row["dilations"]) for name, row in rows.items()}
    macs = {name: flops.count(a, config.macs_input, config.detector, **config.macs_convention()).macs for name, a in models.items()}
    recorded = {name: row["macs"] for name, row in rows.items()}
    if macs != recorded:
        raise SystemExit(f"search: expected the MACs {args.search} records ({recorded}), counted {macs}")
    if args.spread is not None or args.audit is not None:
        audit = audit_summary(args, Path(summary["search"]["dir"]))
    else:
        audit = summary.get("audit")
    label = f"{config.detector}, {config.macs_input[0]}x{config.macs_input[1]}"
    return Retraining(config, models, macs, label, {**summary["search"], "via": str(args.search)}, audit)


def compare(ap: list[float], baseline: list[float], macs: int, baseline_macs: int) -> dict[str, Any]:
    """Mean gain over the baseline, whether mean ± sd intervals are apart, Welch's t-test
    (``scipy.stats.ttest_ind``), the paired t-test over seeds (``scipy.stats.ttest_rel``: a seed fixes
    the data order and augmentation whatever the architecture, so each seed's difference is one paired
    observation) with the seeds won, and the relative MACs difference. Tests need two or more seeds and
    values not all equal (else None)."""
    m, b = statistics.mean(ap), statistics.mean(baseline)
    sd, sd_b = (statistics.stdev(x) if len(x) > 1 else 0.0 for x in (ap, baseline))
    enough = min(len(ap), len(baseline)) > 1
    welch_t, welch_p = t_test(scipy.stats.ttest_ind(ap, baseline, equal_var=False) if enough else None)
    paired_t, paired_p = t_test(scipy.stats.ttest_rel(ap, baseline) if enough else None)
    return {
        "gain": m - b, "spreads_apart": m - sd > b + sd_b or m + sd < b - sd_b, "welch_t": welch_t, "welch_p": welch_p,
        "paired_t": paired_t, "paired_p": paired_p, "seeds_won": sum(x > y for x, y in zip(ap, baseline)),
        "macs_rel_diff": macs / baseline_macs - 1,
    }


def t_test(result: Any) -> tuple[float | None, float | None]:
    """(statistic, p-value) of a scipy t-test, or (None, None) when there was none or it is undefined."""
    if result is None or math.isnan(result.statistic):
        return None, None
    return float(result.statistic), float(result.pvalue)


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
