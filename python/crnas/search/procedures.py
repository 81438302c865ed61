"""The search procedures of CR-NAS (docs/design.md#search-phases).

- Supernet training with single-path sampling: :class:`StageSampler` (one allocation per step, uniform
  over the feasible ones) and :class:`PathSampler` (one dilation per block per step, or one per block
  per image with ``per_sample``). Both derive each step's choice from ``(seed, step)`` alone, so a
  resumed run samples exactly what the uninterrupted one did.
- :func:`stage_search`: every feasible allocation scored on archval (Eq. 1), the whole table kept.
- :func:`greedy_dilation_search`: Algorithm 1, top-K beam search over per-block dilations.
- :class:`DifferentiableSearch`: softmax weights per block trained with first-order bilevel updates
  through the fused convolution (docs/design.md#differentiable-search), discretised by argmax.

Each procedure appends one JSON line per scored candidate / step to a log and, given the same log,
skips what is already there: killing a search and running it again continues where it stopped and
ends with the same result.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from crnas import distributed
from crnas.arch import StageSpace
from crnas.data.base import DetectionDataset
from crnas.data.loader import collate_fn
from crnas.data.seeding import derive_seed
from crnas.data.target import training_target
from crnas.sampling import sample_paths
from crnas.search.confidence import DetectionStore, allocation_key, step_key
from crnas.search.scoring import Scorer, choices_to_paths
from crnas.search.supernet import supernet_of

__all__ = [
    "StageSampler",
    "PathSampler",
    "DifferentiableSearch",
    "stage_search",
    "greedy_dilation_search",
    "read_log",
    "append_log",
]

logger = logging.getLogger(__name__)

# stream keys of derive_seed
STAGE_SAMPLE, PATH_SAMPLE, ARCH_BATCH = 21, 22, 23


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (a torn last line from a kill is ignored)."""
    path = FilePath(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s: ignoring an incomplete last line", path)
            break
    return records


def append_log(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record durably (flushed and fsynced); rank 0 alone writes when distributed."""
    if not distributed.is_main():
        return
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_torn_line(path: FilePath) -> None:
    """Drop an incomplete last line left by a kill, so new records start on a fresh line."""
    if distributed.is_main() and path.is_file():
        text = path.read_text()
        if text and not text.endswith("\n"):
            path.write_text(text[: text.rfind("\n") + 1])


class StageSampler:
    """Training callback: an allocation of ``space`` drawn at every step (dilations 1), ``sampling``
    ``"uniform"`` or ``"balanced"`` (:meth:`crnas.arch.StageSpace.sample`)."""

    def __init__(self, space: StageSpace, seed: int, sampling: str = "uniform") -> None:
        self.space, self.seed, self.sampling = space, seed, sampling

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        (blocks,) = self.space.sample(1, seed=derive_seed(self.seed, STAGE_SAMPLE, step), sampling=self.sampling)
        supernet_of(model).set_allocation(blocks)


class PathSampler:
    """Training callback: uniformly sampled dilations for the current allocation at every step, one per
    block for the whole batch (SPOS) or, with ``per_sample``, one per block and image (each block groups
    the batch by dilation: :func:`crnas.ops.per_sample_dilation_conv2d`)."""

    def __init__(self, seed: int, per_sample: bool = True) -> None:
        self.seed, self.per_sample = seed, per_sample

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        supernet = supernet_of(model)
        n = len(images) if self.per_sample else 1
        onehot = sample_paths(len(supernet.active_convs), n, len(supernet.dilations), seed=derive_seed(self.seed, PATH_SAMPLE, step))
        supernet.set_paths(choices_to_paths(onehot.argmax(-1).t()))


def stage_search(
    scorer: Scorer,
    space: StageSpace,
    log: str | os.PathLike[str],
    *,
    macs: Sequence[int] | None = None,
    progress: bool = True,
    store: DetectionStore | None = None,
) -> list[dict[str, Any]]:
    """Score every feasible allocation of ``space`` (Eq. 1); returns the table, best AP first.

    Each row: ``blocks``, ``metrics`` (COCO AP, AP50, …), ``macs`` (when given, per allocation).
    With ``store``, each allocation's archval detections are kept (for :mod:`crnas.search.confidence`).
    """
    log = FilePath(log)
    _truncate_torn_line(log)
    allocations = space.allocations()
    done = {tuple(r["blocks"]): r for r in read_log(log)}
    bar = tqdm(allocations, desc="stage search", unit="alloc", disable=not progress or not distributed.is_main())
    for i, blocks in enumerate(bar):
        if tuple(blocks) in done:
            continue
        metrics, detections = scorer.evaluate_allocation(blocks)
        if store is not None:
            store.save(allocation_key(blocks), detections)
        record = {"blocks": blocks, "metrics": metrics, "macs": int(macs[i]) if macs is not None else None}
        append_log(log, record)
        done[tuple(blocks)] = record
        logger.info("allocation %s: AP %.4f", blocks, metrics["AP"])
    table = [done[tuple(b)] for b in allocations]
    return sorted(table, key=lambda r: (-r["metrics"]["AP"], r["blocks"]))


def greedy_dilation_search(
    scorer: Scorer,
    log: str | os.PathLike[str],
    *,
    k: int = 3,
    joint: bool = True,
    common_random: bool = True,
    progress: bool = True,
    store: DetectionStore | None = None,
) -> dict[str, Any]:
    """Algorithm 1: the top-``k`` beam over the current allocation's blocks, one block per step.

    At step ``i`` every beam entry is extended by each dilation of block ``i`` and scored with the
    remaining blocks completed at random per archval mini-batch (:meth:`Scorer.evaluate_candidates`);
    the ``k`` best extensions form the next beam. Returns the best full assignment and the steps.
    With ``store``, each step's archval detections (all candidates) are kept.
    """
    if k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k}")
    log = FilePath(log)
    _truncate_torn_line(log)
    supernet = scorer.supernet
    num_blocks = len(supernet.active_convs)
    steps = read_log(log)
    beam: list[list[int]] = steps[-1]["beam"] if steps else [[]]
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
            steps.append(record)
            bar.update(1)
            logger.info("block %d/%d: best %s (AP %.4f)", step + 1, num_blocks, beam[0], ranked[0][1]["AP"])
    best = beam[0]
    final = next(c["metrics"] for c in steps[-1]["candidates"] if c["dilations"] == best)
    return {"dilations": best, "metrics": final, "steps": steps, "k": k, "joint": joint, "common_random": common_random}


class DifferentiableSearch:
    """Training callback for the differentiable spatial mode (docs/design.md#differentiable-search).

    Holds ``alpha``, one row of logits per block over the dilations. Before every weight step it takes
    one first-order architecture step: the detection loss of an archval batch, computed with
    ``mix = softmax(alpha)`` through the fused convolution, updates ``alpha`` with Adam; the weight
    step then runs with the updated (detached) mix. ``architecture()`` is the argmax.
    """

    def __init__(
        self,
        archval: DetectionDataset,
        num_blocks: int,
        dilations: Sequence[int],
        *,
        batch_size: int = 2,
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.archval, self.batch_size, self.seed, self.device = archval, batch_size, seed, torch.device(device)
        self.dilations = tuple(dilations)
        self.alpha = torch.zeros(num_blocks, len(self.dilations), device=self.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.alpha], lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)

    def _val_batch(self, step: int) -> tuple[list[Tensor], list[dict[str, Any]]]:
        n = len(self.archval)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, ARCH_BATCH, step))
        picks = torch.randperm(n, generator=generator)[: self.batch_size].tolist()
        images, targets = collate_fn([self.archval.load(i) for i in picks])
        return [im.to(self.device) for im in images], [training_target(t, self.device) for t in targets]

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        supernet = supernet_of(model)
        mix = torch.softmax(self.alpha, dim=-1)
        supernet.set_paths(list(mix))
        val_images, val_targets = self._val_batch(step)
        self.optimizer.zero_grad(set_to_none=True)
        losses = model(val_images, val_targets)
        loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"step {step}: the architecture loss is {value}")
        (grad,) = torch.autograd.grad(loss, [self.alpha])
        self.alpha.grad = grad
        self.optimizer.step()
        supernet.set_paths(list(torch.softmax(self.alpha, dim=-1).detach()))

    def probabilities(self) -> Tensor:
        return torch.softmax(self.alpha.detach(), dim=-1).cpu()

    def architecture(self) -> list[int]:
        """The argmax dilation of every block."""
        return [self.dilations[i] for i in self.probabilities().argmax(-1).tolist()]

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].to(self.alpha.device))
        self.optimizer.load_state_dict(state["optimizer"])
