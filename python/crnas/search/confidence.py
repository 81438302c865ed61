"""How sure a search can be of its winner, from the detections it already collected (no training).

Every scored candidate's archval detections are kept (:class:`DetectionStore`). A paired bootstrap over
the archval images (:mod:`crnas.eval.bootstrap`: each image matched once, every resample only
re-accumulated) gives, for the stage search, the winner's AP lead over the baseline allocation and,
for each greedy dilation step, over the runner-up, each with a percentile confidence interval; and how
many candidates the winner cannot be told apart from (their lead's interval holds zero). All
candidates are compared on the same resamples. Intervals are per comparison, not adjusted for the
number of comparisons. AP values are fractions, as in ``result.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import scipy.stats
import torch
from numpy.typing import NDArray

from crnas import distributed
from crnas.data.base import DetectionDataset
from crnas.eval.bootstrap import ImageEvaluation, bootstrap_weights, percentile_interval
from crnas.eval.coco import MAX_DETECTIONS
from crnas.eval.detections import Record

__all__ = [
    "Lead", "Confidence", "DetectionStore", "compare_to_winner", "stage_confidence", "step_confidence", "allocation_key", "step_key",
    "NOISE_ADVICE", "SplitHalf", "split_half", "random_halves", "stage_evaluations", "compare_evaluations",
]

logger = logging.getLogger(__name__)

#: What the log says when the ranking cannot tell the winner from its reference.
NOISE_ADVICE = "the ranking is within noise: train the supernet longer or enlarge archval"


@dataclass(frozen=True)
class Lead:
    """An AP difference (winner − other) with its bootstrap confidence interval."""

    value: float
    ci: tuple[float, float]

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero on the winner's side."""
        return self.ci[0] > 0

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "ci": list(self.ci)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Lead:
        lo, hi = d["ci"]
        return cls(float(d["value"]), (float(lo), float(hi)))


@dataclass(frozen=True)
class Confidence:
    """The winner of one ranking against a reference candidate and against the whole field.

    ``reference`` is the baseline allocation (stage search), the runner-up (greedy step) or
    all-dilation-1 (final check); ``indistinguishable`` counts the other candidates whose lead interval
    holds zero.
    """

    winner: list[int]
    reference: list[int]
    lead: Lead
    indistinguishable: int
    candidates: int
    images: int
    resamples: int
    level: float

    def to_dict(self) -> dict[str, object]:
        return {
            "winner": self.winner, "reference": self.reference, "lead": self.lead.to_dict(),
            "indistinguishable": self.indistinguishable, "candidates": self.candidates, "images": self.images,
            "resamples": self.resamples, "level": self.level,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Confidence:
        return cls(
            winner=list(d["winner"]), reference=list(d["reference"]), lead=Lead.from_dict(d["lead"]),
            indistinguishable=int(d["indistinguishable"]), candidates=int(d["candidates"]), images=int(d["images"]),
            resamples=int(d["resamples"]), level=float(d["level"]),
        )

    @property
    def keeps_reference(self) -> bool:
        """The fallback rule (docs/design.md#fallback): the winner differs from the reference and does
        not beat it significantly, so the reference is the one to keep."""
        return self.winner != self.reference and not self.lead.significant

    def summary(self, what: str) -> str:
        """One line: the lead in AP points with its interval, and the indistinguishable count."""
        lo, hi = self.lead.ci
        return (
            f"{what}: winner {self.winner} leads {self.reference} by {100 * self.lead.value:+.2f} AP "
            f"({100 * self.level:.0f}% CI {100 * lo:+.2f} .. {100 * hi:+.2f}); {self.indistinguishable} of "
            f"{self.candidates - 1} other candidates indistinguishable from it"
        )


@dataclass(frozen=True)
class SplitHalf:
    """How much of a table's spread in AP is archval-image sampling: ``r`` is the Pearson correlation
    between the candidates' AP on one random half of archval and on the other (the mean over ``splits``
    halvings), ``reliability`` the Spearman–Brown estimate for the whole archval, 2r / (1 + r) — the
    share of the candidates' AP variance that another archval of the same size would reproduce. A
    larger archval raises it (k times the images: kR / (1 + (k − 1)R)). ``splits`` counts the halvings on
    which both halves' AP varied across the candidates (the others carry no correlation)."""

    r: float
    reliability: float
    splits: int
    candidates: int
    images: int

    def to_dict(self) -> dict[str, object]:
        return {"r": self.r, "reliability": self.reliability, "splits": self.splits, "candidates": self.candidates, "images": self.images}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitHalf:
        return cls(float(d["r"]), float(d["reliability"]), int(d["splits"]), int(d["candidates"]), int(d["images"]))

    def with_images(self, factor: float) -> float:
        """Spearman–Brown: the reliability of an archval ``factor`` times as large."""
        return factor * self.reliability / (1 + (factor - 1) * self.reliability)

    def summary(self, what: str) -> str:
        """One line: the reliability, and what 4 times the archval images would give."""
        return (f"{what}: archval reliability {self.reliability:.2f} (split-half r {self.r:.2f} over {self.candidates} candidates, "
                f"{self.images} images; 4x the images: {self.with_images(4):.2f})")


def random_halves(num_images: int, splits: int, seed: int) -> NDArray[np.float64]:
    """``[splits, num_images]`` 0/1 image weights: each row one random half of the images (the first
    ``num_images // 2`` of a permutation); its complement, ``1 - row``, is the other half."""
    rng = np.random.default_rng(seed)
    halves = np.zeros((splits, num_images))
    for row in halves:
        row[rng.permutation(num_images)[: num_images // 2]] = 1.0
    return halves


def split_half(evaluations: Sequence[ImageEvaluation], *, splits: int = 20, seed: int = 0) -> SplitHalf:
    """:class:`SplitHalf` of the candidates ``evaluations`` (their archval matchings, on the same images;
    at least 3 candidates and 4 images)."""
    if len(evaluations) < 3:
        raise ValueError(f"evaluations: expected at least 3 candidates, got {len(evaluations)}")
    ids = evaluations[0].image_ids
    if any(e.image_ids != ids for e in evaluations):
        raise ValueError("evaluations: expected every candidate scored on the same images")
    if len(ids) < 4:
        raise ValueError(f"evaluations: expected at least 4 archval images, got {len(ids)}")
    halves = random_halves(len(ids), splits, seed)
    first = np.stack([e.ap(halves) for e in evaluations])  # [candidates, splits]
    second = np.stack([e.ap(1.0 - halves) for e in evaluations])
    varied = [s for s in range(splits) if np.ptp(first[:, s]) > 0 and np.ptp(second[:, s]) > 0]
    if not varied:
        raise ValueError("evaluations: every candidate scores alike on a half of archval; no reliability to measure")
    r = float(np.mean([scipy.stats.pearsonr(first[:, s], second[:, s]).statistic for s in varied]))
    return SplitHalf(r, 2 * r / (1 + r), len(varied), len(evaluations), len(ids))


def stage_evaluations(
    allocations: Sequence[Sequence[int]], store: DetectionStore[list[Record]], archval: DetectionDataset, *, max_detections: int = MAX_DETECTIONS
) -> list[ImageEvaluation] | None:
    """The stored archval matchings of a stage search's ``allocations``; ``None`` when one's detections
    were not kept."""
    stored = [store.load(allocation_key(b)) for b in allocations]
    if any(d is None for d in stored):
        return None
    return [ImageEvaluation.of(d, archval, max_detections=max_detections) for d in stored if d is not None]


#: What a store keeps per key: one candidate's records (stage search) or every candidate's (greedy step).
Records = TypeVar("Records", list[Record], list[list[Record]])


class DetectionStore(Generic[Records]):
    """The archval detections of every scored candidate, one file per key under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def save(self, key: str, records: Records) -> None:
        """Write atomically (rank 0 alone when distributed)."""
        if not distributed.is_main():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key).with_suffix(".pt.tmp")
        torch.save(records, tmp)
        os.replace(tmp, self.path(key))

    def load(self, key: str) -> Records | None:
        """The records saved under ``key``, or ``None`` when there are none (e.g. an older search)."""
        path = self.path(key)
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def compare_to_winner(
    detections: Sequence[list[Record]],
    names: Sequence[list[int]],
    winner: int,
    reference: int,
    archval: DetectionDataset,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    max_detections: int = MAX_DETECTIONS,
) -> Confidence:
    """Paired bootstrap of candidate ``winner`` against candidate ``reference`` and against every other
    candidate, on the same ``resamples`` draws of the archval images (indices into ``detections``)."""
    evaluations = [ImageEvaluation.of(d, archval, max_detections=max_detections) for d in detections]
    return compare_evaluations(evaluations, names, winner, reference, resamples=resamples, level=level, seed=seed)


def compare_evaluations(
    evaluations: Sequence[ImageEvaluation],
    names: Sequence[list[int]],
    winner: int,
    reference: int,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Confidence:
    """:func:`compare_to_winner` on the candidates' archval matchings."""
    if not evaluations:
        raise ValueError("detections: expected at least one candidate, got none")
    ids = evaluations[0].image_ids
    for name, e in zip(names, evaluations):
        if e.image_ids != ids:
            raise ValueError(f"detections: candidate {name} was scored on other images than candidate {names[0]}")
    weights = bootstrap_weights(len(ids), resamples, seed)
    best, best_ap = evaluations[winner].ap(weights), float(evaluations[winner].ap()[0])
    leads = []
    for i, e in enumerate(evaluations):
        if i == winner:
            continue
        lead = Lead(best_ap - float(e.ap()[0]), percentile_interval(best - e.ap(weights), level))
        leads.append((i, lead))
    if reference == winner:
        ref_lead = Lead(0.0, (0.0, 0.0))
    else:
        ref_lead = next(lead for i, lead in leads if i == reference)
    return Confidence(
        winner=list(names[winner]), reference=list(names[reference]), lead=ref_lead,
        indistinguishable=sum(lead.ci[0] <= 0 <= lead.ci[1] for _, lead in leads), candidates=len(evaluations),
        images=len(ids), resamples=resamples, level=level,
    )


def stage_confidence(
    allocations: Sequence[Sequence[int]],
    evaluations: Sequence[ImageEvaluation] | None,
    baseline: Sequence[int],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Confidence | None:
    """The stage search's winner (``allocations[0]``, the table's blocks best first) against the baseline
    allocation (the runner-up when the baseline is not in the space), from their archval matchings
    (:func:`stage_evaluations`); ``None`` without them (detections not kept: a search written by an
    older crnas) or with a single allocation."""
    names = [list(b) for b in allocations]
    if evaluations is None or len(names) < 2:
        return None
    reference = names.index(list(baseline)) if list(baseline) in names else 1
    return compare_evaluations(evaluations, names, 0, reference, resamples=resamples, level=level, seed=seed)


def step_confidence(
    candidates: Sequence[list[int]],
    ranked: Sequence[list[int]],
    detections: Sequence[list[Record]] | None,
    archval: DetectionDataset,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    max_detections: int = MAX_DETECTIONS,
) -> Confidence | None:
    """A greedy step's best candidate (``ranked[0]``) against the runner-up (``ranked[1]``) and the
    other candidates; ``None`` without detections or with a single candidate."""
    if detections is None or len(candidates) < 2:
        return None
    names = [list(c) for c in candidates]
    winner, reference = names.index(list(ranked[0])), names.index(list(ranked[1]))
    return compare_to_winner(
        detections, names, winner, reference, archval, resamples=resamples, level=level, seed=seed, max_detections=max_detections
    )


def allocation_key(blocks: Sequence[int]) -> str:
    """The :class:`DetectionStore` key of a stage-search allocation."""
    return "-".join(map(str, blocks))


def step_key(step: int) -> str:
    """The :class:`DetectionStore` key of a greedy step (all its candidates' detections)."""
    return f"step-{step:03d}"


