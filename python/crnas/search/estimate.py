"""What a search will cost, before it runs: its phases, their work, and a wall time extrapolated from a
few timed iterations on the chosen device (``crnas search --dry-run``; logged at the start of a search).

The timings are the search's own code on the search's own models and data: ``steps`` training
iterations of the stage supernet (one sampled allocation per step) and of the operation supernet
(per-image dilation paths), BatchNorm recalibration on one archtrain batch and detection on one archval
mini-batch for each supernet. The first iteration of each is a warm-up and not counted. Each phase's
time is then its number of iterations (or of recalibration and archval batches) times the measured
time of one; the greedy dilation search is costed as scoring its candidates one by one (``--joint``
runs a step's candidates in one pass, whose cost differs). Data loading, checkpointing and pycocotools
are inside the measured steps only as far as one step shows them; treat the figures as an order of
magnitude, not a promise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from crnas.arch import Architecture
from crnas.data import DetectionSubset, split
from crnas.data.base import DetectionDataset
from crnas.data.check import preflight
from crnas.eval import collect_detections
from crnas.search.callbacks import PathSampler
from crnas.search.config import SearchConfig
from crnas.search.driver import stage_sampler, supernet_detector
from crnas.search.scoring import recalibrate_bn
from crnas.search.standalone import standalone_detector
from crnas.search.supernet import supernet_of
from crnas.train import train_detector

__all__ = ["Phase", "SearchEstimate", "estimate_search"]

logger = logging.getLogger(__name__)


@dataclass
class Phase:
    """One phase of the search: its name, the work it does, the images it reads, its estimated seconds."""

    name: str
    work: str
    images: int
    seconds: float


@dataclass
class SearchEstimate:
    """The search space and the phases of a search, with their estimated wall times."""

    space: str
    space_size: int
    budget: str
    device: str
    phases: list[Phase] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def lines(self) -> list[str]:
        out = [f"space: {self.space} — {self.space_size} allocations, budget {self.budget}"]
        out += [f"  {p.name:<20} {p.work:<58} {p.images:>9} images  ~{_duration(p.seconds)}" for p in self.phases]
        out.append(f"estimated total on {self.device}: ~{_duration(self.seconds)} (extrapolated from "
                   + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in self.measured.items()) + ")")
        return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _StepClock:
    """Training callback: the wall time between consecutive steps' ends (the first step excluded)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, step: int, losses: Any) -> None:
        self.ends.append(time.perf_counter())

    def per_step(self) -> float:
        gaps = [b - a for a, b in zip(self.ends, self.ends[1:])]
        return sum(gaps) / len(gaps)


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _time_training(config: SearchConfig, model: torch.nn.Module, data: DetectionDataset, callback: Any | None, steps: int) -> float:

    clock = _StepClock()
    train_detector(
        model, data, iterations=steps + 1, batch_size=config.batch_size, lr_per_image=config.lr_per_image, warmup_iters=1,
        device=config.device, seed=config.seed, num_workers=config.num_workers,
        callbacks=[clock] if callback is None else [callback, clock], progress=False,
    )
    return clock.per_step()


def _time_scoring(
    model: torch.nn.Module, archtrain: DetectionDataset, archval: DetectionDataset, config: SearchConfig, before: Any
) -> tuple[float, float]:
    """Seconds of BatchNorm recalibration on one archtrain batch and of detection on one archval batch."""

    n = config.eval_batch_size
    recal = [[archtrain.load_image(i).to(config.device) for i in range(min(n, len(archtrain)))]]
    indices = list(range(min(n, len(archval))))
    times = []
    for _ in range(2):  # the first is a warm-up
        _sync(config.device)
        t0 = time.perf_counter()
        recalibrate_bn(model, recal, lambda b, images: before())
        _sync(config.device)
        t1 = time.perf_counter()
        collect_detections(model, archval, batch_size=n, device=config.device, indices=indices, before_batch=lambda *a: before())
        _sync(config.device)
        times = [t1 - t0, time.perf_counter() - t1]
    return times[0], times[1]


def estimate_search(config: SearchConfig, dataset: DetectionDataset, *, steps: int = 3) -> SearchEstimate:
    """Estimate the phases of the search ``config`` on ``dataset`` from ``steps`` timed iterations of each supernet (after one warm-up iteration)."""

    if steps < 1:
        raise ValueError(f"steps: expected an int >= 1, got {steps}")
    config.validate()
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    preflight([("archtrain", archtrain), ("archval", archval)])
    space = config.space()
    if len(space) == 0:
        raise ValueError(f"space: {space!r} has no feasible allocation; loosen the budget")
    budget = space.budget
    budget_text = f"{budget['total']} blocks" if budget["type"] == "blocks" else f"MACs within ±{100 * budget['tolerance']:g}% of the baseline"
    result = SearchEstimate(repr(space), len(space), budget_text, str(config.device))

    model = supernet_detector(config, space, len(dataset.classes) + 1)
    supernet = supernet_of(model)
    sample = DetectionSubset(archtrain, list(range(min(len(archtrain), (steps + 1) * config.batch_size))))

    sampler = stage_sampler(config, space, config.seed)
    allocation = space.allocations()[0]
    val_batches = -(-len(archval) // config.eval_batch_size)
    if config.stage_ranker == "supernet":
        stage_step = _time_training(config, model, sample, sampler, steps)
        result.measured["stage step"] = stage_step
    else:  # the probes: stand-alone runs of the baseline's cost, then the supernet's own timings
        baseline = Architecture.baseline(config.family).replace(width=config.width)
        alone = standalone_detector(config, baseline.to_dict(), len(dataset.classes) + 1)
        probe_step = _time_training(config, alone, sample, None, steps)
        _, probe_val = _time_scoring(alone, archtrain, archval, config, lambda: None)
        result.measured.update({"probe step": probe_step, "probe archval batch": probe_val})
        result.phases.append(Phase(
            "probes", f"{config.probes} allocations x {config.probe_iterations} iterations of {config.batch_size} images, each evaluated "
            f"on archval {len(archval)}", config.probes * (config.probe_iterations * config.batch_size + len(archval)),
            config.probes * (config.probe_iterations * probe_step + val_batches * probe_val),
        ))
    supernet.set_allocation(allocation)
    stage_recal, stage_val = _time_scoring(model, archtrain, archval, config, lambda: None)
    op_step = _time_training(config, model, sample, PathSampler(config.seed, per_sample=config.per_sample_paths), steps)
    supernet.set_allocation(allocation)
    num_dilations = len(supernet.dilations)

    def random_paths() -> None:
        supernet.set_paths(torch.randint(num_dilations, (len(supernet.active_convs),)).tolist())

    op_recal, op_val = _time_scoring(model, archtrain, archval, config, random_paths)
    result.measured.update({"op step": op_step, "archval batch": stage_val, "recal batch": stage_recal})
    recal_batches = min(config.recal_batches, -(-len(archtrain) // config.eval_batch_size)) if config.norm == "batch" else 0  # GroupNorm: none
    per_allocation = recal_batches * stage_recal + val_batches * stage_val
    per_candidate = recal_batches * op_recal + val_batches * op_val
    scored_images = len(archval) + recal_batches * config.eval_batch_size
    blocks = sum(Architecture.baseline(config.family).blocks) if budget["type"] != "blocks" else int(budget["total"])
    if config.stage_ranker == "supernet":
        passes = sampler.passes_per_step  # the sandwich trains several sub-networks on every batch
        sandwich = f" (sandwich: {passes} sub-networks each)" if passes > 1 else ""
        result.phases.append(Phase("stage supernet", f"{config.stage_iterations} iterations of {config.batch_size} images{sandwich}",
                                   passes * config.stage_iterations * config.batch_size, config.stage_iterations * stage_step))
        if config.split_stage is not None:
            iterations = config.split_groups * config.split_iterations
            result.phases.append(Phase(
                "stage supernet parts", f"{config.split_groups} x {config.split_iterations} iterations (few-shot split){sandwich}",
                passes * iterations * config.batch_size, iterations * stage_step,
            ))
        result.phases.append(Phase("stage search", f"{len(space)} allocations x (archval {len(archval)} + recal {recal_batches} batches)",
                                   len(space) * scored_images, len(space) * per_allocation))
    if config.method == "differentiable":
        # every weight step is preceded by an architecture step on an archval batch: about twice the work
        result.phases.append(Phase("op supernet", f"{config.op_iterations} iterations + as many architecture steps",
                                   2 * config.op_iterations * config.batch_size, 2 * config.op_iterations * op_step))
        result.phases.append(Phase("dilation search", "1 architecture scored", scored_images, per_candidate))
    else:
        result.phases.append(Phase("op supernet", f"{config.op_iterations} iterations of {config.batch_size} images",
                                   config.op_iterations * config.batch_size, config.op_iterations * op_step))
        candidates = _greedy_candidates(blocks, num_dilations, config.beam)
        result.phases.append(Phase("dilation search", f"{blocks} blocks, {candidates} candidates (beam {config.beam})",
                                   candidates * scored_images, candidates * per_candidate))
    if config.dilation_fallback:
        finalists = (1 if config.method == "differentiable" else config.beam) + 1  # and all-dilation-1
        work = f"{finalists} finalists scored"
        images, seconds = finalists * scored_images, finalists * per_candidate
        if config.finetune_check:  # the pick and all-dilation-1 fine-tuned (fixed paths: at most an op step each) and scored
            work += f"; 2 x {config.finetune_check} fine-tuning iterations"
            images += 2 * (config.finetune_check * config.batch_size + scored_images)
            seconds += 2 * (config.finetune_check * op_step + per_candidate)
        result.phases.append(Phase("final check", work, images, seconds))
    return result


def _greedy_candidates(blocks: int, dilations: int, beam: int) -> int:
    """Candidates Algorithm 1 scores: every beam entry extended by every dilation, one block per step."""
    total, width = 0, 1
    for _ in range(blocks):
        total += width * dilations
        width = min(beam, width * dilations)
    return total
