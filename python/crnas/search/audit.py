"""The ground truth for a finished search: does its supernet rank architectures the way training does?

:func:`run_audit` picks allocations from the stage table (stratified over the supernet's ranking; always
the winner, the baseline and the worst), trains each **stand-alone** from scratch with one schedule and
the search's own detector settings on the search's archtrain images, evaluates them on images the search
never scored, and compares: Kendall τ and Spearman ρ between supernet AP and stand-alone AP, each with
a paired bootstrap confidence interval over the allocations (``scipy.stats``), how many of the
supernet's top 3 are training's top 3, and the regret of the search's pick (best stand-alone AP minus the
pick's). The same for the dilation search: the final beam's assignments and all-dilation-1, re-scored
with the operation supernet and trained stand-alone on the found allocation.

Stand-alone runs are the expensive part and do not depend on the supernet, so they live in a cache
(:class:`StandaloneCache`) keyed by everything that determines them — the training and evaluation
data's fingerprints, the schedule, the detector settings, the architecture and the seed — and audits
of several searches on the same data train each architecture once. Every run is a resumable
:func:`crnas.train.train_detector` run: kill the audit, rerun it, and it continues to the identical
``audit.json`` (:class:`AuditRecord`; see docs/audit.md).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.stats
import torch
from numpy.typing import NDArray

from crnas.data import split
from crnas.data.base import DetectionDataset
from crnas.data.seeding import derive_seed
from crnas.data.spec import load_dataset
from crnas.eval import collect_detections
from crnas.eval.bootstrap import ImageEvaluation, bootstrap_weights
from crnas.jsonfile import read_record, write_json
from crnas.search.config import SearchConfig
from crnas.search.depth import DepthFit, DepthModel, depth_fit, loo_depth_predictions
from crnas.search.driver import OP_SUPERNET, run_final_check, trained_supernet
from crnas.search.result import FinalCheck, SearchResult
from crnas.search.scoring import Scorer
from crnas.search.standalone import (
    Entry,
    StandaloneCache,
    StandaloneJob,
    Trainer,
    data_fingerprint,
    default_cache_dir,
    job_factory,
    run_jobs,
    standalone_detector,
    standalone_trainer,
)
from crnas.train import CHECKPOINT_NAME, train_detector

__all__ = [
    "AuditConfig", "AuditPlan", "AuditRecord", "RankingAudit", "Pair", "Estimate", "StandaloneJob", "StandaloneCache",
    "pick_allocations", "rank_correlation", "tau_difference", "run_audit", "audit_plan", "default_cache_dir", "job_factory", "standalone_detector",
    "standalone_trainer",
    "run_jobs", "SeedNoise", "variance_components", "EvalSampling", "eval_sampling", "sampling_variance", "ranking_audit", "final_check_of",
    "DepthModel", "DepthFit", "DepthResponse", "depth_fit", "depth_response", "DepthBaseline", "depth_baseline", "loo_depth_predictions",
]

logger = logging.getLogger(__name__)

EVAL_DATA = 41  # derive_seed stream of the audit's fresh synthetic evaluation images
HOLDOUT = 42  # derive_seed stream of the held-out split of archtrain (real data)
CORRELATION = 43  # derive_seed stream of the rank-correlation bootstrap

AUDIT_VERSION = 1
#: The ceiling τ that ``seeds_for_target`` asks for: a ranking this good is worth trusting (docs/audit.md#tau-ceiling).
TARGET_TAU = 0.6
MAX_TARGET_TAU = 0.99


@dataclass
class AuditConfig:
    """How an audit trains and compares (saved in ``audit.json``)."""

    #: Allocations taken from the stage table (the winner, the baseline and the worst among them).
    allocations: int = 12
    #: Stand-alone training iterations (default: the search's stage-supernet iterations).
    iterations: int | None = None
    #: Training seeds per architecture; stand-alone AP is their mean.
    seeds: list[int] = field(default_factory=lambda: [0])
    #: Fresh synthetic evaluation images (synthetic searches) ...
    eval_images: int = 150
    #: ... or the fraction of archtrain held out for evaluation (real data without ``eval_data``).
    holdout_fraction: float = 0.2
    #: An explicit evaluation set for real data (a data spec: ``{"kind": "coco", ...}``).
    eval_data: dict[str, Any] | None = None
    #: Bootstrap resamples behind the τ / ρ intervals.
    resamples: int = 2000
    level: float = 0.95
    #: Also audit the dilation search.
    dilation: bool = True

    def validate(self) -> None:
        if self.allocations < 3:
            raise ValueError(f"allocations: expected an int >= 3 (the winner, the baseline and the worst), got {self.allocations}")
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"iterations: expected an int >= 1, got {self.iterations}")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: expected one or more non-negative ints, got {self.seeds}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction: expected a float in (0, 1), got {self.holdout_fraction}")
        if self.eval_images < 1 or self.resamples < 1:
            raise ValueError(f"eval_images, resamples: expected ints >= 1, got {self.eval_images}, {self.resamples}")


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap confidence interval (``None`` where undefined, e.g. < 3 pairs)."""

    value: float | None
    ci: tuple[float, float] | None


@dataclass
class Pair:
    """One audited architecture: its supernet AP and its stand-alone AP (mean over seeds), fractions."""

    blocks: list[int]
    dilations: list[int]
    supernet_AP: float
    standalone_AP: float
    standalone_runs: list[dict[str, float]]
    supernet_rank: int


@dataclass
class SeedNoise:
    """:func:`variance_components` of stand-alone AP: does the architectures' spread exceed seed noise,
    and how high can a ranking's τ go against their means (docs/audit.md#tau-ceiling)."""

    F: float
    p: float
    sd_within: float
    sd_between: float
    sd_of_means: float
    range_of_means: float
    reliability: float
    tau_ceiling: float
    #: Seeds per architecture measured (each mean's count).
    seeds: int
    #: Seeds per architecture whose mean would have a ceiling of ``target_tau`` at these variances; ``None``
    #: when the between variance is estimated at 0 (F <= 1): then no count can be estimated.
    seeds_for_target: int | None
    target_tau: float
    #: The seed-to-seed sd that evaluation-image sampling alone gives (:func:`eval_sampling`); ``None``
    #: where not measured (no checkpoints in the cache). Only this part shrinks with more evaluation images.
    sd_within_eval: float | None = None

    def eval_advice(self) -> str | None:
        """One clause on the evaluation-image part of the seed noise, if measured."""
        if self.sd_within_eval is None:
            return None
        share = f"{100 * self.sd_within_eval**2 / self.sd_within**2:.0f}% of the seed variance" if self.sd_within > 0 else "no seed variance"
        return f"evaluation-image sampling alone gives a seed sd of {100 * self.sd_within_eval:.2f} AP ({share})"

    def seeds_advice(self) -> str:
        """One clause on the seeds a ceiling of ``target_tau`` takes."""
        target = f"a ceiling of {self.target_tau:.2f}"
        if self.seeds_for_target is None:
            return (f"the between-architecture variance is estimated at 0 (F <= 1), so no seed count for {target} can be estimated: "
                    "more seeds, or a setting in which the architectures differ, would tell")
        if self.seeds_for_target <= self.seeds:
            return f"the {self.seeds} seeds measured already give {target} ({self.seeds_for_target} would)"
        return f"{target} takes {self.seeds_for_target} seeds per architecture at these variances ({self.seeds} measured)"






@dataclass
class DepthResponse:
    """A stage audit's :func:`depth_fit` of the stand-alone means and of the supernet's APs over the same
    allocations: where the supernet values a stage's depth unlike training on its own."""

    standalone: DepthFit
    supernet: DepthFit


@dataclass
class DepthBaseline:
    """What the stage depths alone say (docs/audit.md#depth-baseline): each audited allocation's
    stand-alone AP predicted by the linear depth model (:class:`DepthFit`'s) fitted on the *other*
    allocations' stand-alone means (leave-one-out, :func:`loo_depth_predictions`); Kendall τ of those
    predictions against the stand-alone means, and the supernet's τ minus it over the same allocations
    (paired bootstrap, :func:`tau_difference`). Below zero: the supernet ranks worse than a line through
    the stand-alone runs the audit trained anyway."""

    kendall_tau: Estimate
    supernet_minus_baseline: Estimate


@dataclass
class RankingAudit:
    """How well one ranking (stage or dilation search) agrees with stand-alone training."""

    kendall_tau: Estimate
    spearman_rho: Estimate
    top3_overlap: int
    regret: float
    pick: list[int]
    pairs: list[Pair]
    #: With two or more seeds: :func:`variance_components` of the stand-alone AP — whether the audited
    #: architectures differ by more than seed noise at all (if not, no ranking can be checked here).
    seed_noise: SeedNoise | None = None
    #: Stage audits: :func:`depth_response` (``None`` for too few or too alike allocations, and for dilations).
    depth_response: DepthResponse | None = None
    #: Stage audits: :func:`depth_baseline` (``None`` for too few allocations to fit it leaving one out, and for dilations).
    depth_baseline: DepthBaseline | None = None


@dataclass
class AuditRecord:
    """``audit.json``: the stage and dilation audits and what produced them."""

    stage: RankingAudit
    dilation: RankingAudit | None
    config: dict[str, Any]
    search: dict[str, Any]
    version: int = AUDIT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditRecord:
        def noise(r: dict[str, Any]) -> SeedNoise | None:
            if not r.get("seed_noise"):
                return None
            stored = dict(r["seed_noise"])
            if "seeds_for_target" not in stored:  # an audit.json from before seeds_for_target: derived from its stored variances
                seeds = len(r["pairs"][0]["standalone_runs"])
                stored.update(seeds=seeds, target_tau=TARGET_TAU, seeds_for_target=_seeds_for_target(
                    TARGET_TAU, stored["sd_between"] ** 2, stored["sd_within"] ** 2))
            return SeedNoise(**stored)

        def ranking(r: dict[str, Any] | None) -> RankingAudit | None:
            if r is None:
                return None
            est = lambda e: Estimate(e["value"], None if e["ci"] is None else tuple(e["ci"]))  # noqa: E731
            fit = lambda f: DepthFit(DepthModel(**f["linear"]), DepthModel(**f["log"]), f["last_stage_is_reference"])  # noqa: E731
            depths = r.get("depth_response")  # absent from an audit.json written before it existed
            baseline = r.get("depth_baseline")  # likewise
            return RankingAudit(
                kendall_tau=est(r["kendall_tau"]), spearman_rho=est(r["spearman_rho"]), top3_overlap=r["top3_overlap"],
                regret=r["regret"], pick=r["pick"], pairs=[Pair(**p) for p in r["pairs"]], seed_noise=noise(r),
                depth_response=None if not depths else DepthResponse(fit(depths["standalone"]), fit(depths["supernet"])),
                depth_baseline=None if not baseline else DepthBaseline(est(baseline["kendall_tau"]), est(baseline["supernet_minus_baseline"])),
            )

        stage = ranking(d["stage"])
        assert stage is not None
        return cls(stage=stage, dilation=ranking(d.get("dilation")), config=d["config"], search=d["search"], version=d.get("version", AUDIT_VERSION))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuditRecord:
        path = Path(path)
        if path.is_dir():
            path = path / "audit" / "audit.json" if (path / "audit" / "audit.json").is_file() else path / "audit.json"
        if not path.is_file():
            raise FileNotFoundError(f"audit: expected an audit.json or a search directory holding audit/audit.json, got {str(path)!r}")
        return read_record(path, "an audit record", cls.from_dict)


# -- statistics ----------------------------------------------------------------------------------------


def _association(fn: Callable[..., Any]) -> Callable[[np.ndarray, np.ndarray], float]:
    """``fn``'s statistic (scipy's Kendall τ or Spearman ρ) as a float; 0 where a sample has one distinct value."""

    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        value = fn(a, b).statistic
        return 0.0 if math.isnan(value) else float(value)  # a resample with one distinct value: no association

    return statistic


def _paired_bootstrap(
    data: Sequence[Sequence[float]], statistic: Callable[..., float], resamples: int, level: float, seed: int
) -> tuple[float, float]:
    """The percentile interval of ``statistic`` over paired resamples of ``data`` (:func:`scipy.stats.bootstrap`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        res = scipy.stats.bootstrap(
            tuple(np.asarray(d, dtype=float) for d in data), statistic, paired=True, vectorized=False, n_resamples=resamples,
            confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def rank_correlation(
    x: Sequence[float], y: Sequence[float], kind: str, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Kendall τ (``kind="kendall"``, τ-b) or Spearman ρ (``"spearman"``) of the pairs ``(x, y)`` with a
    paired percentile bootstrap interval from :func:`scipy.stats.bootstrap`; ``None`` below 3 pairs."""
    if kind not in ("kendall", "spearman"):
        raise ValueError(f"kind: expected 'kendall' or 'spearman', got {kind!r}")
    if len(x) != len(y):
        raise ValueError(f"x, y: expected equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 3:
        return Estimate(None, None)
    fn = scipy.stats.kendalltau if kind == "kendall" else scipy.stats.spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        value = fn(np.asarray(x), np.asarray(y)).statistic
    ci = _paired_bootstrap((x, y), _association(fn), resamples, level, seed)
    return Estimate(None if math.isnan(value) else float(value), ci)


def tau_difference(
    a: Sequence[float], b: Sequence[float], truth: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Kendall τ-b of ``a`` against ``truth`` minus that of ``b``, over the same items: does one ranking
    (one supernet recipe's scores) order ``truth`` better than another? With a paired percentile bootstrap
    over the items (both rankings see the same resampled items, :func:`scipy.stats.bootstrap`); ``None``
    below 3 items."""
    if not len(a) == len(b) == len(truth):
        raise ValueError(f"a, b, truth: expected equal lengths, got {len(a)}, {len(b)} and {len(truth)}")
    if len(a) < 3:
        return Estimate(None, None)
    tau = _association(scipy.stats.kendalltau)

    def difference(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> float:
        return tau(x, t) - tau(y, t)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        value = difference(*(np.asarray(v, dtype=float) for v in (a, b, truth)))
    return Estimate(value, _paired_bootstrap((a, b, truth), difference, resamples, level, seed))


def ranking_audit(
    pairs: list[Pair], pick: list[int], *, key: Callable[[Pair], list[int]], resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> RankingAudit:
    """How well the supernet APs of ``pairs`` rank their stand-alone APs: τ and ρ with bootstrap CIs,
    top-3 overlap, the regret of ``pick`` (``key(pair)`` of one of them), and with two or more seeds
    the seed noise (:func:`variance_components`)."""
    sup = [p.supernet_AP for p in pairs]
    alone = [p.standalone_AP for p in pairs]
    tau = rank_correlation(sup, alone, "kendall", resamples=resamples, level=level, seed=seed)
    rho = rank_correlation(sup, alone, "spearman", resamples=resamples, level=level, seed=seed + 1)
    top = lambda values: {tuple(key(p)) for _, p in sorted(zip(values, pairs), key=lambda vp: -vp[0])[:3]}  # noqa: E731
    picked = next(p for p in pairs if key(p) == pick)
    runs = [[r["AP"] for r in p.standalone_runs] for p in pairs]
    noise = variance_components(runs) if len(runs) >= 2 and len(runs[0]) >= 2 else None
    return RankingAudit(
        kendall_tau=tau, spearman_rho=rho, top3_overlap=len(top(sup) & top(alone)), regret=max(alone) - picked.standalone_AP,
        pick=pick, pairs=pairs, seed_noise=noise,
    )








def depth_baseline(pairs: Sequence[Pair], *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> DepthBaseline | None:
    """The :class:`DepthBaseline` of a stage audit's pairs; ``None`` where :func:`loo_depth_predictions` is."""
    alone = [p.standalone_AP for p in pairs]
    predicted = loo_depth_predictions([p.blocks for p in pairs], alone)
    if predicted is None:
        return None
    return DepthBaseline(
        rank_correlation(predicted, alone, "kendall", resamples=resamples, level=level, seed=seed),
        tau_difference([p.supernet_AP for p in pairs], predicted, alone, resamples=resamples, level=level, seed=seed + 1),
    )


def depth_response(pairs: Sequence[Pair]) -> DepthResponse | None:
    """:func:`depth_fit` of a stage audit's stand-alone and supernet APs over its allocations; ``None``
    where either fit is."""
    blocks = [p.blocks for p in pairs]
    standalone = depth_fit(blocks, [100 * p.standalone_AP for p in pairs])
    supernet = depth_fit(blocks, [100 * p.supernet_AP for p in pairs])
    return None if standalone is None or supernet is None else DepthResponse(standalone, supernet)


def variance_components(groups: Sequence[Sequence[float]], target_tau: float = TARGET_TAU) -> SeedNoise:
    """One-way ANOVA of stand-alone AP per architecture (one list of per-seed values each, equal
    lengths): ``F`` and ``p`` (:func:`scipy.stats.f_oneway`), the seed-to-seed standard deviation
    ``sd_within`` (√ of the within mean square), the between-architecture one ``sd_between`` (method of
    moments, √ max(0, (MSB − MSW) / seeds)), the spread of the means (``sd_of_means``, ``range_of_means``),
    the ``reliability`` of a mean over the seeds (between variance over the variance of such a mean) and
    the ``tau_ceiling`` it implies: the Kendall τ that a perfect ranker is expected to reach against these
    means, (2/π)·arcsin(√reliability) for normal effects and noise (docs/audit.md#tau-ceiling); and
    ``seeds_for_target``, the seeds per architecture whose mean would lift that ceiling to ``target_tau``
    with these variances (``None`` when the between variance is estimated at 0: no count can be estimated)."""
    if not 0 < target_tau <= MAX_TARGET_TAU:
        raise ValueError(f"target_tau: expected a Kendall tau in (0, {MAX_TARGET_TAU}], got {target_tau}")
    s = len(groups[0]) if groups else 0
    if len(groups) < 2 or s < 2 or any(len(g) != s for g in groups):
        raise ValueError(f"groups: expected >= 2 groups of >= 2 values, equal counts, got sizes {[len(g) for g in groups]}")
    test = scipy.stats.f_oneway(*groups)
    means = np.array([np.mean(g) for g in groups])
    ms_within = float(np.mean([np.var(g, ddof=1) for g in groups]))
    ms_between = float(s * np.var(means, ddof=1))
    var_between = (ms_between - ms_within) / s
    if var_between <= 1e-12 * max(ms_within, ms_between):  # F <= 1, up to rounding: no between variance estimated
        var_between = 0.0
    reliability = var_between / (var_between + ms_within / s) if var_between > 0 else 0.0
    return SeedNoise(
        F=float(test.statistic), p=float(test.pvalue), sd_within=math.sqrt(ms_within), sd_between=math.sqrt(var_between),
        sd_of_means=float(np.std(means, ddof=1)), range_of_means=float(means.max() - means.min()), reliability=reliability,
        tau_ceiling=2 / math.pi * math.asin(math.sqrt(reliability)),
        seeds=s, seeds_for_target=_seeds_for_target(target_tau, var_between, ms_within), target_tau=target_tau,
    )


def _seeds_for_target(target_tau: float, var_between: float, var_within: float) -> int | None:
    """The fewest seeds S whose mean has a τ ceiling of ``target_tau``: reliability σ²_b / (σ²_b + σ²_w / S)
    of at least sin²(π·τ/2); ``None`` when σ²_b is 0."""
    if var_between <= 0:
        return None
    reliability = math.sin(math.pi * target_tau / 2) ** 2
    return max(1, math.ceil(var_within * reliability / (var_between * (1 - reliability)) - 1e-9))


# -- which architectures -------------------------------------------------------------------------------


def pick_allocations(ranked: Sequence[Sequence[int]], baseline: Sequence[int], m: int) -> list[int]:
    """Indices (ranks, 0 = best) of ``m`` allocations of a table sorted best first: the winner, the
    baseline (when in the table) and the worst, then each further pick the rank farthest from those
    already picked (the lower rank on ties), which spreads the picks evenly over the ranking."""
    n = len(ranked)
    rows = [list(r) for r in ranked]
    chosen = {0, n - 1} | ({rows.index(list(baseline))} if list(baseline) in rows else set())
    while len(chosen) < min(m, n):
        chosen.add(max((i for i in range(n) if i not in chosen), key=lambda i: (min(abs(i - c) for c in chosen), -i)))
    return sorted(chosen)


# -- stand-alone runs ----------------------------------------------------------------------------------












@dataclass
class AuditPlan:
    """What an audit trains and on which images (:func:`audit_plan`): the architectures of each ranking
    with their supernet AP and rank, and one :class:`StandaloneJob` per architecture and seed."""

    config: SearchConfig
    result: SearchResult
    train_set: DetectionDataset
    eval_set: DetectionDataset
    stage: list[Entry]
    dilation: list[Entry]
    stage_jobs: list[list[StandaloneJob]]
    dilation_jobs: list[list[StandaloneJob]]
    iterations: int

    def unique_jobs(self) -> list[StandaloneJob]:
        """The distinct jobs in order (the winner's all-dilation-1 network is both a stage and a dilation pick)."""
        return list({j.key(): j for group in self.stage_jobs + self.dilation_jobs for j in group}.values())


def _eval_set(config: SearchConfig, audit: AuditConfig, archtrain: DetectionDataset) -> tuple[DetectionDataset, DetectionDataset]:
    """(training set, evaluation set): archtrain and images the search never scored."""
    data = config.data
    if audit.eval_data is not None:
        return archtrain, load_dataset(audit.eval_data)
    if data.get("kind") == "synthetic":
        seed = derive_seed(int(data.get("seed", 0)), EVAL_DATA)
        return archtrain, load_dataset({**data, "num_images": audit.eval_images, "seed": seed})
    train, held_out = split(archtrain, audit.holdout_fraction, derive_seed(config.seed, HOLDOUT))
    return train, held_out




class EvalSampling(NamedTuple):
    """:func:`eval_sampling`'s answer (AP as fractions)."""

    sd_within: float
    #: The largest difference between a run's re-evaluated AP and its cached AP (0 up to rounding).
    max_reevaluation_diff: float


def sampling_variance(curves: NDArray[np.floating]) -> float:
    """The seed-to-seed variance that image sampling alone gives one architecture: ``curves`` holds each
    seed's AP under the same bootstrap draws of the evaluation images (seeds x resamples); each seed's
    deviation from the seeds' mean varies over the draws, and S/(S−1) times its mean variance estimates a
    seed variance (for two seeds: half the variance of their difference)."""
    seeds = len(curves)
    if seeds < 2:
        raise ValueError(f"curves: expected >= 2 seeds, got {seeds}")
    deviations = curves - curves.mean(axis=0)
    return seeds / (seeds - 1) * float(deviations.var(axis=1).mean())


def eval_sampling(
    groups: Sequence[Sequence[StandaloneJob]], cache: StandaloneCache, config: SearchConfig, eval_set: DetectionDataset, num_classes: int,
    *, resamples: int = 1000, seed: int = 0, evaluated: dict[str, tuple[float, NDArray[np.floating]]] | None = None,
) -> EvalSampling | None:
    """How much of the seed-to-seed spread of ``groups`` (one architecture's seeds each, all cached) is
    evaluation-image sampling: every run is evaluated again from its cached checkpoint and the deviations
    from each architecture's mean AP are bootstrapped over ``eval_set``, the same draws for every run
    (:func:`sampling_variance`, pooled over the architectures). ``None`` when a run is not cached or has
    no checkpoint. ``evaluated`` (job key -> AP and its bootstrap curve, filled here) lets calls with the
    same ``eval_set``, ``resamples`` and ``seed`` evaluate a run they share once."""
    if any(cache.get(j) is None or not (cache.run_dir(j) / CHECKPOINT_NAME).is_file() for group in groups for j in group):
        return None
    weights = bootstrap_weights(len(eval_set), resamples, seed)
    evaluated = {} if evaluated is None else evaluated
    variances, worst = [], 0.0
    for group in groups:
        for job in group:
            if job.key() not in evaluated:
                model = standalone_detector(config, job.architecture, num_classes)
                model.load_state_dict(torch.load(cache.run_dir(job) / CHECKPOINT_NAME, map_location="cpu", weights_only=True)["model"])
                detections = collect_detections(model.to(config.device), eval_set, batch_size=config.eval_batch_size, device=config.device)
                evaluation = ImageEvaluation.of(detections, eval_set)  # coco_eval's detection cap, as the runs were scored
                evaluated[job.key()] = float(evaluation.ap()[0]), evaluation.ap(weights)
            cached = cache.get(job)
            assert cached is not None  # checked above
            worst = max(worst, abs(evaluated[job.key()][0] - cached["AP"]))
        variances.append(sampling_variance(np.stack([evaluated[job.key()][1] for job in group])))
    if worst > 1e-6:
        logger.warning("evaluation sampling: a run re-evaluated from its checkpoint differs from its cached AP by %.3g", worst)
    return EvalSampling(math.sqrt(float(np.mean(variances))), worst)






def audit_plan(search_dir: str | os.PathLike[str], audit: AuditConfig | None = None) -> AuditPlan:
    """What :func:`run_audit` would train (no training): reads the search, checks its data, picks the
    architectures and scores the dilation candidates with the operation supernet."""
    audit = audit or AuditConfig()
    audit.validate()
    search_dir = Path(search_dir)
    result = SearchResult.load(search_dir)
    config = result.config
    dataset = load_dataset(config.data)
    if data_fingerprint(dataset) != result.data.fingerprint:
        raise ValueError(f"data: the images or annotations differ from those {search_dir} was searched on (fingerprint mismatch)")
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    train_set, eval_set = _eval_set(config, audit, archtrain)
    table = result.stage_search.allocations  # best first
    picks = pick_allocations([r.blocks for r in table], result.baseline.blocks, audit.allocations)
    stage = [(table[i].blocks, [1] * sum(table[i].blocks), table[i].metrics["AP"], i + 1) for i in picks]
    dilation = _dilation_candidates(search_dir, result, archtrain, archval) if audit.dilation else []
    iterations = audit.iterations or config.stage_iterations
    make_jobs = job_factory(config, train_set, eval_set, iterations, audit.seeds)
    return AuditPlan(
        config, result, train_set, eval_set, stage, dilation, [make_jobs(e) for e in stage], [make_jobs(e) for e in dilation], iterations
    )


def _dilation_candidates(search_dir: Path, result: SearchResult, archtrain: DetectionDataset, archval: DetectionDataset) -> list[Entry]:
    """The final beam (or the differentiable pick) and all-dilation-1 on the found allocation, each
    scored with full paths (no random completion) by the trained operation supernet: the search's
    final check (:func:`final_check_of`)."""
    blocks = result.stage_search.best
    final = result.dilation_search.final  # only the supernet's scores are needed: no fine-tuning here
    candidates = (final if final is not None else final_check_of(search_dir, result, archtrain, archval, finetune=0)).candidates
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].metrics["AP"], candidates[i].dilations))
    rank = {i: r + 1 for r, i in enumerate(order)}
    return [(list(blocks), list(c.dilations), c.metrics["AP"], rank[i]) for i, c in enumerate(candidates)]


def final_check_of(
    search_dir: str | os.PathLike[str], result: SearchResult, archtrain: DetectionDataset, archval: DetectionDataset, *,
    finetune: int | None = None,
) -> FinalCheck:
    """A search's final check (docs/design.md#fallback): the one in its result, or, for a search made
    without it (``--no-dilation-fallback``, an older crnas) or when ``finetune`` asks for other fine-tuning
    iterations than the search's, the same check made now from the operation supernet's checkpoint
    (nothing written into ``search_dir``)."""
    config = result.config
    final = result.dilation_search.final
    if final is not None and finetune in (None, config.finetune_check):
        return final
    model = trained_supernet(config, Path(search_dir), OP_SUPERNET, result.stage_search.best, len(archval.classes) + 1)
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    return run_final_check(config, scorer, result.dilation_search, Path(search_dir), finetune=finetune)




def run_audit(
    search_dir: str | os.PathLike[str],
    audit: AuditConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    cache: StandaloneCache | None = None,
    trainer: Trainer | None = None,
    progress: bool = True,
) -> AuditRecord:
    """Audit the search in ``search_dir``; writes and returns ``audit.json`` (in ``out_dir``, default
    ``search_dir/audit``). ``trainer`` replaces stand-alone training (tests)."""
    audit = audit or AuditConfig()
    search_dir = Path(search_dir)
    out = Path(out_dir) if out_dir is not None else search_dir / "audit"
    out.mkdir(parents=True, exist_ok=True)
    cache = cache or StandaloneCache(default_cache_dir())
    started = time.time()
    setup = audit_plan(search_dir, audit)
    train = trainer or standalone_trainer(setup.config, setup.train_set, setup.eval_set)
    unique = setup.unique_jobs()
    pending = [j for j in unique if cache.get(j) is None]
    logger.info(
        "audit of %s: %d stand-alone runs (%d cached), %d iterations each, %d training / %d evaluation images; cache %s",
        search_dir, len(unique), len(unique) - len(pending), setup.iterations, len(setup.train_set), len(setup.eval_set), cache.root,
    )
    trained = dict(zip((j.key() for j in unique), run_jobs(unique, cache, train, progress=progress)))

    def pairs(entries: list[Entry], jobs: list[list[StandaloneJob]]) -> list[Pair]:
        out_pairs = []
        for (blocks, dilations, sup_ap, rank), group in zip(entries, jobs):
            runs = [trained[j.key()] for j in group]
            out_pairs.append(Pair(blocks, dilations, sup_ap, float(np.mean([r["AP"] for r in runs])), runs, rank))
        return out_pairs

    result = setup.result
    seed = derive_seed(setup.config.seed, CORRELATION)
    stage = ranking_audit(
        pairs(setup.stage, setup.stage_jobs), result.stage_search.best, key=lambda p: p.blocks, seed=seed,
        resamples=audit.resamples, level=audit.level,
    )
    stage.depth_response = depth_response(stage.pairs)
    stage.depth_baseline = depth_baseline(stage.pairs, resamples=audit.resamples, level=audit.level, seed=seed + 6)
    dilation = None
    if setup.dilation:
        dilation = ranking_audit(
            pairs(setup.dilation, setup.dilation_jobs), result.dilation_search.dilations, key=lambda p: p.dilations, seed=seed + 2,
            resamples=audit.resamples, level=audit.level,
        )
    classes = len(setup.train_set.classes) + 1
    evaluated: dict[str, tuple[float, NDArray[np.floating]]] = {}  # the winner's all-dilation-1 runs are in both groups
    for ranking, groups in ((stage, setup.stage_jobs), (dilation, setup.dilation_jobs)):
        if ranking is not None and ranking.seed_noise is not None:
            sampling = eval_sampling(groups, cache, setup.config, setup.eval_set, classes, seed=seed + 4, evaluated=evaluated)
            ranking.seed_noise.sd_within_eval = None if sampling is None else sampling.sd_within
    record = AuditRecord(
        stage=stage, dilation=dilation,
        config={**asdict(audit), "iterations": setup.iterations, "train_images": len(setup.train_set), "eval_images": len(setup.eval_set),
                "cache": str(cache.root)},
        search={"dir": str(search_dir), "fingerprint": result.data.fingerprint, "preset": setup.config.preset},
    )
    record.save(out / "audit.json")
    # not part of the (reproducible) record: this run's wall time, trained runs and machine
    timing = {"wall_time_s": round(time.time() - started, 1), "trained_runs": len(pending), "threads": torch.get_num_threads()}
    write_json(out / "timing.json", timing)
    return record


def estimate_run_seconds(setup: AuditPlan, steps: int = 4) -> float:
    """Seconds one stand-alone run should take: a few timed training steps of the baseline allocation
    (after one untimed step) extrapolated to the schedule, plus evaluation timed on a few images (twice
    with two or more seeds: :func:`eval_sampling` evaluates every run again)."""
    config = setup.config
    model = standalone_detector(config, setup.result.baseline.to_dict(), len(setup.train_set.classes) + 1)
    kwargs: dict[str, Any] = dict(batch_size=config.batch_size, lr_per_image=config.lr_per_image, device=config.device, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        train_detector(model, setup.train_set, iterations=1 + steps, checkpoint_dir=tmp, max_steps_this_run=1, **kwargs)
        t0 = time.perf_counter()
        train_detector(model, setup.train_set, iterations=1 + steps, checkpoint_dir=tmp, **kwargs)
        per_step = (time.perf_counter() - t0) / steps
    n = min(len(setup.eval_set), 2 * config.eval_batch_size)
    t0 = time.perf_counter()
    collect_detections(model, setup.eval_set, batch_size=config.eval_batch_size, device=config.device, indices=range(n))
    per_image = (time.perf_counter() - t0) / n
    evaluations = 2 if len(setup.stage_jobs[0]) >= 2 else 1
    return per_step * setup.iterations + evaluations * per_image * len(setup.eval_set)
