"""The searches over a trained supernet (docs/design.md#search-phases).

- :func:`stage_search`: every feasible allocation scored on archval (Eq. 1), the whole table kept.
- :func:`greedy_dilation_search`: Algorithm 1, top-K beam search over per-block dilations.
- :func:`final_check`: the dilation search's pick against all-dilation-1, kept only on evidence
  (docs/design.md#fallback).

The differentiable dilation search runs inside supernet training instead
(:class:`crnas.search.callbacks.DifferentiableSearch`).

Each search appends one JSON line per scored allocation / step to its log (:mod:`crnas.search.searchlog`)
and, given the same log, skips what is already there: killing a search and running it again continues
where it stopped and ends with the same result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crnas import distributed
from crnas.arch import StageSpace
from crnas.eval.detections import Record
from crnas.search.confidence import DetectionStore, allocation_key, compare_to_winner, step_key
from crnas.search.result import Candidate, DilationSearch, FinalCheck, GreedyStep, ScoredAllocation
from crnas.search.scoring import Scorer
from crnas.search.searchlog import append_log, read_log, truncate_torn_line

__all__ = ["stage_search", "greedy_dilation_search", "final_check", "FINAL_KEY", "FINETUNED_KEY"]

#: The :class:`DetectionStore` keys of the final check's detections (supernet scores; fine-tuned scores).
FINAL_KEY = "final"
FINETUNED_KEY = "final-finetuned"

logger = logging.getLogger(__name__)


def stage_search(
    scorer: Scorer,
    space: StageSpace,
    log: str | os.PathLike[str],
    *,
    macs: Sequence[int] | np.ndarray | None = None,
    progress: bool = True,
    store: DetectionStore[list[Record]] | None = None,
) -> list[ScoredAllocation]:
    """Score every feasible allocation of ``space`` (Eq. 1); returns the table, best AP first.

    Each row: ``blocks``, ``metrics`` (COCO AP, AP50, …), ``macs`` (when given, per allocation); one
    log line per row holds the three. With ``store``, each allocation's archval detections are kept
    (for :mod:`crnas.search.confidence`).
    """
    log = Path(log)
    truncate_torn_line(log)
    allocations = space.allocations()
    done = read_stage_log(log)
    bar = tqdm(allocations, desc="stage search", unit="alloc", disable=not progress or not distributed.is_main())
    for i, blocks in enumerate(bar):
        if tuple(blocks) in done:
            continue
        metrics, detections = scorer.evaluate_allocation(blocks)
        if store is not None:
            store.save(allocation_key(blocks), detections)
        row = ScoredAllocation(blocks, int(macs[i]) if macs is not None else None, metrics)
        append_log(log, {"blocks": row.blocks, "metrics": row.metrics, "macs": row.macs})
        done[tuple(blocks)] = row
        logger.info("allocation %s: AP %.4f", blocks, metrics["AP"])
    return rank_allocations([done[tuple(b)] for b in allocations])


def read_stage_log(log: str | os.PathLike[str]) -> dict[tuple[int, ...], ScoredAllocation]:
    """The allocations a stage search's log (``stage_search.jsonl``) has scored so far, by blocks."""
    return {tuple(r["blocks"]): ScoredAllocation(list(r["blocks"]), r["macs"], r["metrics"]) for r in read_log(log)}


def rank_allocations(table: Sequence[ScoredAllocation]) -> list[ScoredAllocation]:
    """A stage table as the search orders it: by AP, best first, ties broken by the allocation."""
    return sorted(table, key=lambda r: (-r.metrics["AP"], r.blocks))


def greedy_dilation_search(
    scorer: Scorer,
    log: str | os.PathLike[str],
    *,
    k: int = 3,
    joint: bool = True,
    common_random: bool = True,
    progress: bool = True,
    store: DetectionStore[list[list[Record]]] | None = None,
) -> DilationSearch:
    """Algorithm 1: the top-``k`` beam over the current allocation's blocks, one block per step.

    At step ``i`` every beam entry is extended by each dilation of block ``i`` and scored with the
    remaining blocks completed at random per archval mini-batch (:meth:`Scorer.evaluate_candidates`);
    the ``k`` best extensions form the next beam. Returns the best full assignment and the steps
    (without their confidence, which the driver adds); one log line per step. With ``store``, each
    step's archval detections (all candidates) are kept.
    """
    if k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k}")
    log = Path(log)
    truncate_torn_line(log)
    supernet = scorer.supernet
    num_blocks = len(supernet.active_convs)
    steps = [GreedyStep.from_dict(r) for r in read_log(log)]
    beam: list[list[int]] = steps[-1].beam if steps else [[]]
    with tqdm(
        total=num_blocks, initial=len(steps), desc="dilation search", unit="block", disable=not progress or not distributed.is_main()
    ) as bar:
        for step in range(len(steps), num_blocks):
            candidates = [prefix + [d] for prefix in beam for d in supernet.dilations]
            scored = scorer.evaluate_candidates(candidates, step, joint=joint, common_random=common_random)
            metrics, detections = [m for m, _ in scored], [d for _, d in scored]
            if store is not None:
                store.save(step_key(step), detections)
            ranked = sorted(zip(candidates, metrics), key=lambda cm: (-cm[1]["AP"], cm[0]))
            beam = [c for c, _ in ranked[:k]]
            record = {"step": step, "candidates": [{"dilations": c, "metrics": m} for c, m in zip(candidates, metrics)], "beam": beam}
            append_log(log, record)
            steps.append(GreedyStep.from_dict(record))
            bar.update(1)
            logger.info("block %d/%d: best %s (AP %.4f)", step + 1, num_blocks, beam[0], ranked[0][1]["AP"])
    best = beam[0]
    final = next(c.metrics for c in steps[-1].candidates if c.dilations == best)
    return DilationSearch("greedy", best, final, steps=steps, k=k, joint=joint, common_random=common_random)


def final_check(
    scorer: Scorer,
    finalists: Sequence[Sequence[int]],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    store: DetectionStore[list[list[Record]]] | None = None,
    finetune: Callable[[list[int]], Scorer] | None = None,
) -> FinalCheck:
    """Score the dilation search's ``finalists`` (its pick first, e.g. the final beam) and all-dilation-1,
    each with its own dilation in every block, and compare the pick with all-dilation-1 by the paired
    archval bootstrap (:func:`~crnas.search.confidence.compare_to_winner`). With ``finetune`` (dilations
    -> a scorer of the supernet fine-tuned on that path), the comparison is made between the pick and
    all-dilation-1 as their fine-tuned scorers score them (not when the pick is all-dilation-1).
    ``fallback`` is set, and all-dilation-1 is the one to keep, when the pick's lead over it is not
    significant."""
    if not finalists:
        raise ValueError("finalists: expected at least the dilation search's pick, got none")
    candidates = [list(f) for f in finalists]
    ones = [1] * len(candidates[0])
    if ones not in candidates:
        candidates.append(ones)
    last = len(ones) - 1
    scored = scorer.evaluate_candidates(candidates, last, joint=False)
    tuned = finetune is not None and candidates[0] != ones  # a pick of all-dilation-1 has nothing to be compared with
    compared, outcome = candidates, scored
    if finetune is not None and tuned:
        compared = [candidates[0], ones]
        outcome = [finetune(c).evaluate_candidates([c], last, joint=False)[0] for c in compared]
    detections = [d for _, d in outcome]
    if store is not None:
        store.save(FINAL_KEY, [d for _, d in scored])
        if tuned:
            store.save(FINETUNED_KEY, detections)
    confidence = compare_to_winner(
        detections, compared, 0, compared.index(ones), scorer.archval, resamples=resamples, level=level, seed=seed,
        max_detections=scorer.max_detections,
    )
    fallback = confidence.keeps_reference
    finetuned = [Candidate(c, m) for c, (m, _) in zip(compared, outcome)] if tuned else None
    return FinalCheck([Candidate(c, m) for c, (m, _) in zip(candidates, scored)], confidence, fallback, finetuned)
