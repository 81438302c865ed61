"""Does the stage allocation matter on this data, beyond seed noise?

Trains M allocations of a preset's stage space stand-alone (no supernet), S seeds each, with the
preset's detector settings and one schedule, on training images and evaluates each on images that no
training saw; then splits the variance of the stand-alone AP into a between-allocation part and the
seed-to-seed (within-allocation) part with a one-way ANOVA (scipy.stats.f_oneway). If the allocations'
spread is within the seed noise, no search can be told apart from chance on this data at this schedule
(docs/results.md, "Does the allocation matter").

    python scripts/allocation_spread.py --preset demo --allocations 12 --seeds 0 1 --iterations 1000 \\
        --out docs/results/allocation-spread-demo.json

Allocations: the baseline, then farthest-point picks over the space (L1 distance between block
counts), so that the picks cover the space evenly without any supernet.

With ``--searches DIR [DIR ...]`` (searches of the same preset on the same kind of data, e.g. one per
supernet recipe) the stand-alone AP is the ground truth each search's ranking is checked against:
each search's pick is trained too (``--no-picks``: its best among the ground truth's allocations
stands in), and for each search the script reports Kendall τ and Spearman ρ
(bootstrap CIs; ``crnas.search.audit.ranking_audit``, as ``crnas audit``) between its supernet AP and the stand-alone AP over the
allocations, the top-3 overlap, and its pick's stand-alone AP against the baseline's. One ground truth
serves every recipe, so comparing recipes costs one search each; with two or more searches, each pair's
difference in τ over the allocations both scored comes with a paired bootstrap interval
(``crnas.search.audit.tau_difference``). Stand-alone runs go through the
audit's cache ($CRNAS_CACHE/standalone, shared with `crnas audit`): a killed run resumes, and rerunning
the script trains only what is missing; ``--cached-only`` trains nothing and reports over the
allocations whose every seed is already cached (a ground truth still being trained elsewhere).
Data: the preset's synthetic data at fresh data seeds (the search's seed + 1000 for training, + 1001
for evaluation), or --coco / --voc (split by --holdout). The printed spread ends with the seeds per
allocation a τ ceiling of 0.6 takes at the measured variances (docs/audit.md#tau-ceiling).
Each run's final training loss (its checkpoint's loss history) is recorded beside its AP, with how
closely the seed-to-seed AP differences follow it (optimisation noise or not). The ground truth's means
and each search's supernet scores are fitted on the stage depths (linear and log, ``crnas.search.depth.depth_fit``,
docs/audit.md#depth-response): where
a supernet's scores bend away from the stand-alone AP, depth by depth; and each search's τ is set against
the depth baseline (``crnas.search.audit.depth_baseline``, docs/audit.md#depth-baseline): how well a linear
fit on the depths, leaving each allocation out, ranks the same stand-alone AP.
``--eval-noise`` says how much of the seed spread is evaluation-image sampling (more evaluation images
would shrink that part only). ``--compare OTHER.json`` ranks this ground truth's means against another one's (e.g. a shorter
schedule's) over the allocations both hold: does a cheaper ground truth order them alike?
``--archval-noise`` says, for each search, how much of its stage table is archval-image sampling (the
split-half reliability of its scores, ``crnas.search.confidence.split_half``) and how far τ moves when
only the archval images are resampled — what a larger archval could buy (from the detections the search
stored; no training).
``--depth-model OTHER.json`` ranks by the stage depths alone, as fitted on another ground truth this script
wrote (other data seeds; e.g. 12 allocations, one seed): the linear depth fit of OTHER's means scores every
allocation of the space, and the script reports its τ on this ground truth, its τ against each search's
(paired) and its pick, the space's best by that fit (``--also`` trains it here).
``--also D [D ...]`` (repeatable) adds an allocation to the ground truth, such as a predictor's pick.
``--extend EARLIER.json`` grows a ground truth this script wrote before (same preset, norm, schedule,
seeds and data): the runs it records stand in for cached ones, its allocations stay in, and only the
new ones train — so a ground truth survives the loss of its cache (e.g. ``--allocations 27`` over a
12-allocation one trains the farthest-point picks 13 to 27).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import scipy.stats
import torch
from crnas.cli.common import data_spec, load_dataset
from crnas.data import DetectionDataset, split
from crnas.detection import NORMS
from crnas.eval.bootstrap import bootstrap_weights
from crnas.search.algorithms import rank_allocations, read_stage_log
from crnas.search.audit import (
    StandaloneCache,
    StandaloneJob,
    default_cache_dir,
    depth_fit,
    eval_sampling,
    run_jobs,
    standalone_trainer,
)
from crnas.search.config import SearchConfig
from crnas.search.depth import farthest_point
from crnas.search.result import ScoredAllocation
from crnas.train import CHECKPOINT_NAME

K = TypeVar("K", bound=Hashable)


def ground_truth_data(args: argparse.Namespace, config: SearchConfig) -> tuple[DetectionDataset, DetectionDataset]:
    """(training set, evaluation set) of stand-alone runs: ``config``'s synthetic data at fresh data seeds
    (the spec's seed + 1000 and + 1001, which no search with data seed < 1000 trained or scored on), or the
    --coco / --voc data split by --holdout."""
    resize = (config.min_size, config.max_size)
    if args.coco or args.voc:
        return split(load_dataset(data_spec(args, resize=resize)), args.holdout, 0)
    spec = data_spec(args, config.data, resize=resize)
    base = int(spec["seed"]) + 1000
    train_set = load_dataset({**spec, "num_images": args.train_images, "seed": base})
    return train_set, load_dataset({**spec, "num_images": args.eval_images, "seed": base + 1})


def train_cached(
    jobs: dict[K, list[StandaloneJob]], config: SearchConfig, train_set: DetectionDataset, eval_set: DetectionDataset,
    args: argparse.Namespace, what: str, *, cached_only: bool = False,
) -> tuple[dict[K, list[dict[str, float]]], dict[str, Any]]:
    """Train (through the audit's cache, ``args.cache``) every job not cached yet, after one line naming
    ``what`` and how many runs are missing; returns each group's metrics and the run's provenance (wall
    time, runs trained, machine, torch, date, groups left out) for the JSON summary. ``cached_only``
    trains nothing and leaves out every group with a run not in the cache."""
    cache = StandaloneCache(args.cache or default_cache_dir())
    missing = [key for key, group in jobs.items() if any(cache.get(j) is None for j in group)] if cached_only else []
    if cached_only:
        jobs = {key: group for key, group in jobs.items() if key not in missing}
        print(f"--cached-only: {len(missing)} of {len(jobs) + len(missing)} groups left out (not all seeds cached): "
              f"{', '.join(map(str, missing)) or 'none'}; {len(jobs)} reported", flush=True)
    todo = len({j.key() for group in jobs.values() for j in group if cache.get(j) is None})  # a run two groups share counts once
    print(f"{what} x {len(args.seeds)} seeds, {args.iterations} iterations, {len(train_set)} training / {len(eval_set)} "
          f"evaluation images; {todo} runs to train; cache {cache.root}", flush=True)
    started = time.time()
    flat = [j for group in jobs.values() for j in group]
    done = run_jobs(flat, cache, standalone_trainer(config, train_set, eval_set), progress=not args.no_progress)
    trained = dict(zip((j.key() for j in flat), done))
    metrics = {key: [trained[j.key()] for j in group] for key, group in jobs.items()}
    provenance = {
        "wall_time_s_this_run": round(time.time() - started, 1), "runs_trained_this_run": todo,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        **({"left_out": [list(key) if isinstance(key, tuple) else key for key in missing]} if cached_only else {}),
    }
    return metrics, provenance


def final_train_loss(run_dir: Path) -> float | None:
    """Mean training loss over the last tenth of a cached run's schedule (its checkpoint's loss history);
    ``None`` without a checkpoint."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return None
    history = torch.load(path, map_location="cpu", weights_only=True)["loss_history"]
    return float(np.mean(history[-max(1, len(history) // 10):]))


def seed_noise_vs_loss(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Does a seed's AP follow how far its training loss fell? Pearson r (scipy.stats.pearsonr) between
    each run's AP and its final training loss after removing each allocation's mean from both (what is
    left is seed to seed), and over the raw runs; ``None`` when a run has no loss, with fewer than 3 runs,
    or when either side is constant. Strongly negative within allocations: the seed noise is
    optimisation noise of detectors still learning (longer schedules reduce it), not overfitting."""
    if any(loss is None for r in rows for loss in r["train_loss_end"]) or sum(len(r["AP"]) for r in rows) < 3:
        return None
    ap = np.array([a for r in rows for a in r["AP"]])
    loss = np.array([x for r in rows for x in r["train_loss_end"]])
    ap_dev = np.concatenate([np.asarray(r["AP"]) - r["mean"] for r in rows])
    loss_dev = np.concatenate([np.asarray(r["train_loss_end"]) - np.mean(r["train_loss_end"]) for r in rows])
    if np.ptp(ap) == 0 or np.ptp(loss) == 0 or np.ptp(ap_dev) == 0 or np.ptp(loss_dev) == 0:
        return None  # a constant side: no correlation to speak of
    within, raw = scipy.stats.pearsonr(loss_dev, ap_dev), scipy.stats.pearsonr(loss, ap)
    return {"runs": len(ap), "within_allocations_r": float(within.statistic), "raw_r": float(raw.statistic), "raw_p": float(raw.pvalue)}


class Recorded(NamedTuple):
    """An allocation's runs as an earlier summary records them: each seed's metrics (AP, a fraction) and
    final training loss."""

    runs: list[dict[str, float]]
    train_loss_end: list[float | None]


def recorded_runs(path: Path, identity: dict[str, Any]) -> dict[tuple[int, ...], Recorded]:
    """The runs an earlier summary of this script records, by allocation (--extend). ``identity`` is what
    makes two ground truths one (preset, family, norm, iterations, seeds, data); the first key on which
    the summary differs is one clear error."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"--extend: expected a JSON summary of this script, got {path} ({e})") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("allocations"), list):
        raise SystemExit(f"--extend: expected a JSON summary of this script (with its allocations), got {path}")
    for key, value in json.loads(json.dumps(identity)).items():
        if earlier.get(key) != value:
            raise SystemExit(f"--extend: expected a ground truth with {key} {value}, got {earlier.get(key)} in {path}")
    return {
        tuple(r["blocks"]): Recorded([{"AP": ap / 100} for ap in r["AP"]], list(r["train_loss_end"]))
        for r in earlier["allocations"]
    }


def archval_noise(search_dir: Path, ranking: StageRanking, truth: dict[tuple[int, ...], float]) -> dict[str, Any]:
    """How much of ``search_dir``'s stage ranking is archval-image sampling: the split-half reliability
    of its whole table, and Kendall τ against ``truth`` (ground-truth means) over the allocations both
    hold, under the search's ``bootstrap_resamples`` draws of the archval images (mean, sd, 2.5 and 97.5 percentiles)."""
    from crnas.data.seeding import derive_seed
    from crnas.search.confidence import DetectionStore, split_half, stage_evaluations
    from crnas.search.driver import CONFIDENCE

    config = ranking.config
    _, archval = split(load_dataset(dict(config.data)), config.val_fraction, config.seed)
    blocks = [a.blocks for a in ranking.allocations]
    evaluations = stage_evaluations(blocks, DetectionStore(search_dir / "detections" / "stage"), archval, max_detections=config.max_detections)
    if evaluations is None:
        raise SystemExit(f"--archval-noise: expected the archval detections of every allocation in {search_dir / 'detections' / 'stage'}, "
                         "some are missing (a search without them, or only its stage table)")
    seed = derive_seed(config.seed, CONFIDENCE)  # the search's own halving and resamples (its stage_search.archval)
    halves = split_half(evaluations, seed=seed)
    common = [i for i, b in enumerate(blocks) if tuple(b) in truth]
    resamples = config.bootstrap_resamples
    weights = bootstrap_weights(evaluations[0].num_images, resamples, seed)
    resampled = np.stack([evaluations[i].ap(weights) for i in common])  # [allocations, resamples]
    means = [truth[tuple(blocks[i])] for i in common]
    taus = np.array([scipy.stats.kendalltau(resampled[:, s], means).statistic for s in range(resamples)])
    return {
        "split_half": halves.to_dict(),
        "kendall_tau_archval_resampled": {
            "allocations": len(common), "resamples": resamples, "mean": float(taus.mean()), "sd": float(taus.std(ddof=1)),
            "interval": [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))],
        },
    }


def fitted(fit: dict[str, Any] | None) -> str:
    """A :func:`crnas.search.depth.depth_fit` (as this script's JSON holds it) as printed: both R² and both sets of coefficients."""
    if fit is None:
        return "n/a"
    return (f"R2 linear {fit['linear']['r2']:.2f} / log {fit['log']['r2']:.2f}; linear "
            f"{' '.join(f'{c:+.2f}' for c in fit['linear']['coefficients'])}; log {' '.join(f'{b:+.2f}' for b in fit['log']['coefficients'])}")


def fit_of(blocks: Sequence[Sequence[int]], ap: Sequence[float]) -> dict[str, Any] | None:
    """:func:`crnas.search.depth.depth_fit` as a JSON-ready dict."""
    fit = depth_fit(blocks, ap)
    return None if fit is None else asdict(fit)


class StageRanking(NamedTuple):
    """What the ground truth checks of a search: its configuration and its stage table, best first."""

    config: SearchConfig
    allocations: list[ScoredAllocation]

    @property
    def best(self) -> list[int]:
        return list(self.allocations[0].blocks)


def baseline_from_subsets(rows: list[dict[str, Any]], k: int = 12, draws: int = 200, seed: int = 0) -> dict[str, Any] | None:
    """The depth baseline (docs/audit.md#depth-baseline) as an audit of ``k`` allocations would fit it: the
    linear depth model fitted on ``draws`` random ``k``-subsets of the ground truth's means, Kendall τ of
    its predictions on the allocations left out (mean and 5–95% range over the draws; scipy.stats.kendalltau)."""
    d, y = np.array([r["blocks"] for r in rows], dtype=float), np.array([r["mean"] for r in rows])
    if len(y) < k + 4:
        return None
    design = np.column_stack([np.ones(len(d)), d[:, :-1] if np.ptp(d.sum(axis=1)) == 0 else d])
    rng, taus = np.random.default_rng(seed), []
    for _ in range(draws):
        fit = rng.choice(len(y), k, replace=False)
        rest = np.setdiff1d(np.arange(len(y)), fit)
        coefficients = np.linalg.lstsq(design[fit], y[fit], rcond=None)[0]
        taus.append(float(scipy.stats.kendalltau(design[rest] @ coefficients, y[rest]).statistic))
    return {"fitted_on": k, "predicted": len(y) - k, "draws": draws, "seed": seed, "kendall_tau_mean": float(np.mean(taus)),
            "kendall_tau_5_95": [float(np.percentile(taus, 5)), float(np.percentile(taus, 95))]}


def depth_model_check(
    other: Path, space: list[list[int]], truth: dict[tuple[int, ...], float], scores: dict[str, dict[tuple[int, ...], float]]
) -> dict[str, Any]:
    """``--depth-model``: the linear depth fit (:func:`crnas.search.depth.depth_fit`) of ``other``'s means
    scoring every allocation of ``space``; its Kendall τ on ``truth`` (bootstrap CI), minus each search's
    τ over the allocations both scored (paired), and its pick (the space's best by the fit)."""
    from crnas.search.audit import rank_correlation, tau_difference

    if not other.is_file():
        raise SystemExit(f"--depth-model: expected a JSON file this script wrote, got {str(other)!r} (no such file)")
    rows = json.loads(other.read_text())["allocations"]
    fit = depth_fit([r["blocks"] for r in rows], [r["mean"] for r in rows])
    if fit is None:
        raise SystemExit(f"--depth-model: expected a ground truth whose depths separate the stages (at least 7 allocations), got {other}")
    coefficients = np.asarray(fit.linear.coefficients)
    score = {tuple(b): float(np.asarray(b[: len(coefficients)], dtype=float) @ coefficients) for b in space}
    ranked = [b for b in truth if b in score]
    tau = rank_correlation([score[b] for b in ranked], [truth[b] for b in ranked], "kendall")
    minus = {}
    for name, theirs in scores.items():
        common = [b for b in ranked if b in theirs]
        diff = tau_difference([score[b] for b in common], [theirs[b] for b in common], [truth[b] for b in common])
        minus[name] = {"value": diff.value, "ci": diff.ci}
    pick = max(score, key=lambda b: score[b])
    return {"fitted_on": str(other), "allocations": len(rows), "linear": asdict(fit.linear), "ranked": len(ranked),
            "kendall_tau": {"value": tau.value, "ci": tau.ci}, "minus_searches": minus, "pick": list(pick), "pick_AP": truth.get(pick)}


def stage_ranking(search_dir: Path) -> StageRanking:
    """``search_dir``'s stage ranking: from ``result.json``, or — for a search still in its later phases —
    from ``config.json`` and its complete stage table (``stage_search.jsonl``), sorted as the search sorts it."""
    from crnas.search.result import load_result

    if (search_dir / "result.json").is_file() or search_dir.name == "result.json":
        result = load_result(search_dir)
        return StageRanking(result.config, list(result.stage_search.allocations))
    if not (search_dir / "config.json").is_file():
        raise SystemExit(f"searches: expected a search directory (result.json or config.json), got {search_dir}")
    config = SearchConfig.from_dict(json.loads((search_dir / "config.json").read_text()))
    table = list(read_stage_log(search_dir / "stage_search.jsonl").values())
    if len(table) != len(config.space()):
        raise SystemExit(f"searches: {search_dir}'s stage search is not complete ({len(table)} of {len(config.space())} allocations scored)")
    return StageRanking(config, rank_allocations(table))


def shown(estimate: dict[str, Any]) -> str:
    """An estimate's JSON (value, ci) as printed: ``+0.52 [-0.00, +0.87]``."""
    if estimate["value"] is None:
        return "n/a"
    return f"{estimate['value']:+.2f} [{estimate['ci'][0]:+.2f}, {estimate['ci'][1]:+.2f}]"


def main() -> None:
    from crnas.arch import Architecture
    from crnas.cli.common import add_data_arguments
    from crnas.search.audit import Pair, depth_baseline, job_factory, rank_correlation, ranking_audit, tau_difference, variance_components
    from crnas.search.config import PRESETS, preset
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo", choices=list(PRESETS), help="detector settings, schedule and space (default demo)")
    ap.add_argument("--family", default="resnet50")
    ap.add_argument("--allocations", type=int, default=12)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--norm", choices=NORMS, default=None, help="the backbones' normalisation (default: the preset's)")
    ap.add_argument("--train-images", type=int, default=288, help="synthetic training images (default: the demo's archtrain size)")
    ap.add_argument("--eval-images", type=int, default=300, help="synthetic evaluation images")
    ap.add_argument("--holdout", type=float, default=0.2, help="real data: the held-out evaluation fraction")
    ap.add_argument("--cache", type=Path, default=None, help="stand-alone cache (default $CRNAS_CACHE/standalone)")
    ap.add_argument("--out", type=Path, required=True, help="JSON summary")
    ap.add_argument("--searches", type=Path, nargs="*", default=[], help="search directories to check against the ground truth")
    ap.add_argument("--no-picks", action="store_true",
                    help="do not train the searches' picks: each search's pick is its best among the ground truth's allocations")
    ap.add_argument("--compare", type=Path, nargs="*", default=[],
                    help="other ground truths (this script's JSON) whose means are ranked against these (Kendall tau, Spearman rho)")
    ap.add_argument("--eval-noise", action="store_true",
                    help="evaluate every run again from its checkpoint and bootstrap the evaluation images: the part of the seed spread "
                         "that image sampling explains (about 10 s per run at the demo's scale)")
    ap.add_argument("--archval-noise", action="store_true",
                    help="for each search: the split-half reliability of its stage table and tau under archval resampling "
                         "(from its stored detections)")
    ap.add_argument("--extend", type=Path, default=None, metavar="EARLIER.json",
                    help="a ground truth this script wrote with the same settings: its runs stand in for cached ones, its allocations "
                         "stay in, only new allocations train")
    ap.add_argument("--cached-only", action="store_true",
                    help="train nothing: report over the allocations whose every seed is in the cache (listed in the JSON's left_out)")
    ap.add_argument("--depth-model", type=Path, default=None, metavar="OTHER.json",
                    help="rank by the linear depth fit of another ground truth's means (other data seeds) and check it here")
    ap.add_argument("--also", type=int, nargs="+", action="append", default=[], metavar="D",
                    help="train this allocation too, one depth per stage (repeatable)")
    ap.add_argument("--no-progress", action="store_true")
    add_data_arguments(ap, required=False)
    args = ap.parse_args()

    config = preset(args.preset, family=args.family, norm=args.norm)
    train_set, eval_set = ground_truth_data(args, config)
    space = config.space()
    baseline = list(Architecture.baseline(args.family).blocks)
    if baseline not in space:
        raise SystemExit(f"--family: expected a family whose baseline is in the preset's space, got {args.family} ({baseline})")
    allocations = farthest_point(space.allocations(), baseline, args.allocations)
    for blocks in args.also:
        if blocks not in space:
            raise SystemExit(f"--also: expected an allocation of the {args.preset} preset's {args.family} space, got {blocks}")
        if blocks not in allocations:
            allocations.append(blocks)
    data = {"train": train_set.report.source, "eval": eval_set.report.source,
            "spec": data_spec(args, config.data, resize=(config.min_size, config.max_size))}
    identity: dict[str, Any] = {"preset": args.preset, "family": args.family, "norm": config.norm, "iterations": args.iterations, "seeds": args.seeds,
                "train_images": len(train_set), "eval_images": len(eval_set), "data": data}
    recorded = recorded_runs(args.extend, identity) if args.extend else {}
    searches = {str(d): stage_ranking(d) for d in args.searches}
    make_jobs = job_factory(config, train_set, eval_set, args.iterations, args.seeds)
    for name, result in searches.items():  # any supernet recipe, as long as stand-alone runs would train alike
        entry = (baseline, [1] * sum(baseline), 0.0, 0)
        same = [j.key() for j in job_factory(result.config, train_set, eval_set, args.iterations, args.seeds)(entry)]
        if result.config.family != args.family or same != [j.key() for j in make_jobs(entry)]:
            raise SystemExit(f"searches: expected {args.family} searches with the {args.preset} preset's detector settings, schedule "
                             f"and norm {config.norm}, got {name} ({result.config.preset} preset, {result.config.family}, norm {result.config.norm})")
        if not args.no_picks and result.best not in allocations:
            allocations.append(result.best)
    allocations += [list(b) for b in recorded if list(b) not in allocations]  # a ground truth only grows
    jobs = {tuple(b): make_jobs((b, [1] * sum(b), 0.0, 0)) for b in allocations}
    what = f"{len(allocations)} allocations" + (f" ({len(recorded)} recorded in {args.extend}, not trained)" if recorded else "")
    trained, provenance = train_cached({k: g for k, g in jobs.items() if k not in recorded}, config, train_set, eval_set, args, what,
                                       cached_only=args.cached_only)
    metrics = {k: recorded[k].runs if k in recorded else trained[k] for k in jobs if k in recorded or k in trained}
    if args.cached_only and len(metrics) < 3:  # tau needs 3
        raise SystemExit(f"--cached-only: expected >= 3 allocations with every seed cached, got {len(metrics)}")
    cache = StandaloneCache(args.cache or default_cache_dir())
    rows: list[dict[str, Any]] = []
    for blocks, runs in metrics.items():
        aps = [100 * m["AP"] for m in runs]
        rows.append({
            "blocks": list(blocks), "AP": aps, "mean": float(np.mean(aps)), "sd": float(np.std(aps, ddof=1)) if len(aps) > 1 else None,
            "train_loss_end": recorded[blocks].train_loss_end if blocks in recorded else [final_train_loss(cache.run_dir(j)) for j in jobs[blocks]],
        })
    stats = variance_components([r["AP"] for r in rows]) if len(args.seeds) > 1 else None  # one seed: no seed noise to measure
    truth = {tuple(r["blocks"]): r["mean"] for r in rows}
    sampling = None
    if args.eval_noise:
        reported = {key: jobs[key] for key in metrics}
        print(f"--eval-noise: evaluating {sum(map(len, reported.values()))} runs again", flush=True)
        measured = eval_sampling(list(reported.values()), cache, config, eval_set, len(train_set.classes) + 1)
        if measured is None:
            raise SystemExit(f"--eval-noise: expected every run's checkpoint in the cache {cache.root}, some are missing")
        sampling = {
            "runs": sum(map(len, reported.values())), "sd_within_eval": 100 * measured.sd_within,
            "max_reevaluation_diff": 100 * measured.max_reevaluation_diff,
            "share_of_seed_variance": (100 * measured.sd_within) ** 2 / stats.sd_within**2 if stats and stats.sd_within > 0 else None,
        }
    checks: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[tuple[int, ...], float]] = {}  # each search's supernet AP of the ground truth's allocations
    for name, result in searches.items():  # each search's ranking audited against the one ground truth
        ranked = {tuple(a.blocks): (rank + 1, a.metrics["AP"]) for rank, a in enumerate(result.allocations)}
        scores[name] = {b: ranked[b][1] for b in metrics if b in ranked}
        pairs = [
            Pair(list(blocks), [1] * sum(blocks), ranked[blocks][1], float(np.mean([r["AP"] for r in runs])), runs, ranked[blocks][0])
            for blocks, runs in metrics.items()
            if blocks in ranked
        ]
        if not pairs:
            raise SystemExit(f"searches: none of the ground truth's allocations is in {name}'s stage table (another space?)")
        among_truth = args.no_picks or tuple(result.best) not in truth  # --cached-only may leave the pick out
        pick = min(pairs, key=lambda p: p.supernet_rank).blocks if among_truth else result.best
        audit = ranking_audit(pairs, pick, key=lambda p: p.blocks)
        by_depths = depth_baseline(pairs)
        tau, rho = audit.kendall_tau, audit.spearman_rho
        split = result.config.split_stage
        checks[name] = {
            "stage_sampling": result.config.stage_sampling, "stage_iterations": result.config.stage_iterations,
            "split": None if split is None else {
                "stage": split, "groups": result.config.split_groups, "iterations": result.config.split_iterations,
            },
            "kendall_tau": {"value": tau.value, "ci": tau.ci}, "spearman_rho": {"value": rho.value, "ci": rho.ci},
            "top3_overlap": audit.top3_overlap, "regret": 100 * audit.regret, "pick": audit.pick,
            "pick_among": "ground truth allocations" if among_truth else "all allocations",
            "pick_AP": truth[tuple(audit.pick)], "baseline_AP": truth.get(tuple(baseline)),
            "depth_fit": {
                "table": fit_of([a.blocks for a in result.allocations], [100 * a.metrics["AP"] for a in result.allocations]),
                "ground_truth_allocations": fit_of(list(scores[name]), [100 * v for v in scores[name].values()]),
            },
            "depth_baseline": None if by_depths is None else {
                "kendall_tau": asdict(by_depths.kendall_tau), "supernet_minus_baseline": asdict(by_depths.supernet_minus_baseline),
            },
            **({"archval_noise": archval_noise(Path(name), result, truth)} if args.archval_noise else {}),
        }
    differences: dict[str, dict[str, Any]] = {}  # recipe against recipe: the difference of their tau on the allocations both scored, paired
    names = list(scores)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            common = [b for b in scores[first] if b in scores[second]]
            diff = tau_difference([scores[first][b] for b in common], [scores[second][b] for b in common], [truth[b] for b in common])
            differences[f"{first} - {second}"] = {"allocations": len(common), "kendall_tau": {"value": diff.value, "ci": diff.ci}}
    by_model = depth_model_check(args.depth_model, space.allocations(), truth, scores) if args.depth_model else None
    compared: dict[str, dict[str, Any]] = {}
    for other in args.compare:  # another ground truth (e.g. a shorter schedule) over the allocations both hold
        theirs = {tuple(r["blocks"]): r["mean"] for r in json.loads(other.read_text())["allocations"]}
        common = [b for b in truth if b in theirs]
        tau, rho = (rank_correlation([theirs[b] for b in common], [truth[b] for b in common], kind) for kind in ("kendall", "spearman"))
        compared[str(other)] = {
            "allocations": len(common), "kendall_tau": {"value": tau.value, "ci": tau.ci}, "spearman_rho": {"value": rho.value, "ci": rho.ci},
        }
    summary: dict[str, Any] = {
        **identity, "cached_only": args.cached_only,
        "extended_from": None if args.extend is None else {"file": str(args.extend), "allocations": len(recorded)},
        "allocations": rows, "depth_fit": fit_of([r["blocks"] for r in rows], [r["mean"] for r in rows]),
        "anova": None if stats is None else asdict(stats),
        "depth_baseline_from_subsets": baseline_from_subsets(rows),
        "seed_noise_vs_train_loss": seed_noise_vs_loss(rows), "eval_noise": sampling, "searches": checks,
        "tau_differences": differences, "depth_model": by_model,
        "compared": compared, "unit": "AP in percent",
        **provenance,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'blocks':>16}  {'AP per seed':>24}  mean")
    for r in sorted(rows, key=lambda r: -r["mean"]):
        print(f"{str(r['blocks']):>16}  {' '.join(f'{a:5.2f}' for a in r['AP']):>24}  {r['mean']:.2f}")
    if stats is None:
        print("one seed per allocation: no seed-to-seed noise measured (no ANOVA, no tau ceiling)")
    else:
        print(f"between-allocation sd {stats.sd_between:.2f} AP, seed sd {stats.sd_within:.2f} AP, F = {stats.F:.2f}, p = {stats.p:.3g}; "
              f"tau ceiling {stats.tau_ceiling:.2f} (docs/audit.md#tau-ceiling); {stats.seeds_advice()}")
    if (vs_loss := summary["seed_noise_vs_train_loss"]) is not None:
        print(f"AP vs final training loss over {vs_loss['runs']} runs: r = {vs_loss['within_allocations_r']:+.2f} seed to seed "
              f"(within allocations), {vs_loss['raw_r']:+.2f} overall")
    if sampling is not None:
        share = "n/a" if sampling["share_of_seed_variance"] is None else f"{100 * sampling['share_of_seed_variance']:.0f}%"
        print(f"evaluation-image sampling alone: seed sd {sampling['sd_within_eval']:.2f} AP ({share} of the seed variance); "
              f"re-evaluated AP within {sampling['max_reevaluation_diff']:.2g} of the cached")
    print(f"AP on the stage depths (docs/results.md#depth-fit): ground truth {fitted(summary['depth_fit'])}")
    if (subsets := summary["depth_baseline_from_subsets"]) is not None:
        lo, hi = subsets["kendall_tau_5_95"]
        print(f"depth baseline fitted on {subsets['fitted_on']} allocations (an audit's default), {subsets['draws']} random draws: tau on the "
              f"other {subsets['predicted']} {subsets['kendall_tau_mean']:+.2f} on average ({lo:+.2f} .. {hi:+.2f}, 5-95%)")
    for name, c in compared.items():
        print(f"against {name}: tau {shown(c['kendall_tau'])} over {c['allocations']} common allocations")
    for name, c in checks.items():
        base = "n/a" if c["baseline_AP"] is None else f"{c['baseline_AP']:.2f}"
        among = " (its best among the ground truth's)" if c["pick_among"] == "ground truth allocations" else ""
        print(f"{name}: tau {shown(c['kendall_tau'])}, top-3 overlap {c['top3_overlap']}/3, pick{among} {c['pick']} {c['pick_AP']:.2f} AP "
              f"vs baseline {base}")
        print(f"  supernet AP on the stage depths: over the ground truth's allocations {fitted(c['depth_fit']['ground_truth_allocations'])}; "
              f"over its whole table {fitted(c['depth_fit']['table'])}")
        if (base := c["depth_baseline"]) is not None:
            print(f"  depth baseline (docs/audit.md#depth-baseline): leave-one-out linear fit on the depths tau {shown(base['kendall_tau'])}; "
                  f"supernet minus it {shown(base['supernet_minus_baseline'])}")
        if (noise := c.get("archval_noise")) is not None:
            halves, tau = noise["split_half"], noise["kendall_tau_archval_resampled"]
            print(f"  archval: split-half r {halves['r']:.2f}, reliability {halves['reliability']:.2f} ({halves['candidates']} allocations, "
                  f"{halves['images']} images); tau under archval resampling {tau['mean']:+.2f} (sd {tau['sd']:.2f}, "
                  f"{tau['interval'][0]:+.2f} .. {tau['interval'][1]:+.2f})")
    for name, d in differences.items():
        print(f"tau of {name}: {shown(d['kendall_tau'])} over {d['allocations']} allocations (paired bootstrap)")
    if by_model is not None:
        pick = "not in this ground truth (train it with --also)" if by_model["pick_AP"] is None else f"{by_model['pick_AP']:.2f} AP"
        print(f"depth model fitted on {by_model['fitted_on']} ({by_model['allocations']} allocations): tau {shown(by_model['kendall_tau'])} "
              f"over {by_model['ranked']} allocations; pick {by_model['pick']} {pick}")
        for name, d in by_model["minus_searches"].items():
            print(f"  tau of the depth model - {name}: {shown(d)} (paired bootstrap)")


if __name__ == "__main__":
    main()
