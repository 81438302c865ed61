"""Scoring sub-networks of a supernet detector on archval (docs/design.md#scoring).

Every score is COCO AP of the detections collected on archval, after recalibrating the backbone's
BatchNorm statistics on a fixed set of archtrain batches with the sub-network being scored.

Dilation candidates of one greedy step (docs/design.md#greedy-dilation-search) can be scored *jointly*: each archval image is repeated once
per candidate and every block's path holds one dilation index per repeated image, so one forward
pass runs all candidates (each block grouping the batch by dilation) (their BatchNorm statistics are then recalibrated
together, on the same repetition of the archtrain batches), or *one by one*, each with its own
recalibration. Unselected blocks are completed by uniform random dilations drawn per archval
mini-batch; with ``common_random`` every candidate of a step gets the same completion on a
mini-batch (common random numbers), otherwise each draws its own.

Distributed (:mod:`crnas.distributed`): every process recalibrates on the same archtrain batches (so
the statistics agree), scores its share of the archval mini-batches, and the detections are gathered,
so every process computes the same AP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from crnas import distributed
from crnas.data.base import DetectionDataset
from crnas.data.seeding import derive_seed
from crnas.detection import detections_per_image
from crnas.eval import collect_detections, score_detections
from crnas.eval.detections import Record, detection_record
from crnas.search.supernet import Path, SuperNet, supernet_of

__all__ = ["Scorer", "recalibrate_bn", "choices_to_paths"]

# stream keys of derive_seed for the search's random choices
RECAL, COMPLETE = 11, 12


def choices_to_paths(choices: Tensor) -> list[Path]:
    """Per-image dilation indices ``LongTensor[N, B]`` -> one path per block: a plain index when
    every image agrees (an ordinary convolution), else the block's indices ``LongTensor[N]`` (the
    batch grouped by dilation, one ordinary convolution per group)."""
    paths: list[Path] = []
    for column in choices.t():
        first = int(column[0])
        paths.append(first if bool((column == first).all()) else column.contiguous())
    return paths


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Sequence[list[Tensor]],
    before_batch: Callable[[int, list[Tensor]], list[Tensor] | None] | None = None,
) -> None:
    """Reset and re-estimate every BatchNorm of ``model.backbone`` from ``batches`` of images (none: nothing runs).

    Statistics are cumulative averages over the batches (``momentum=None``), computed in train mode
    through the detector's own (eval-mode, deterministic) resize and normalisation.
    ``before_batch(b, images)`` may switch the sub-network and return a replacement image list.
    """
    backbone, transform = model.backbone, model.transform
    assert isinstance(backbone, nn.Module) and isinstance(transform, nn.Module), "a torchvision detector has a backbone and a transform"
    norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:  # GroupNorm (docs/design.md#norm): nothing to re-estimate
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training, transform_training = model.training, transform.training
    model.train()
    transform.eval()
    try:
        for b, images in enumerate(batches):
            if before_batch is not None:
                images = before_batch(b, images) or images
            tensors, _ = transform(images)
            backbone(tensors.tensors)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
        transform.train(transform_training)


@dataclass
class Scorer:
    """Scores sub-networks of a supernet detector.

    Args:
        model: a detector from :func:`crnas.search.supernet.build_supernet_detector`, on ``device``.
        archtrain: images for BatchNorm recalibration.
        archval: the images and ground truth the AP is computed on.
        batch_size: archval mini-batch size (each mini-batch gets its own random completion).
        recal_batches: archtrain batches (of ``batch_size``) used to recalibrate BatchNorm.
        seed: seeds the recalibration batches and the random completions.
        device: where the model runs.

    Each image's detections are scored up to the model's own cap (``max_detections``, read from it).
    """

    model: nn.Module
    archtrain: DetectionDataset
    archval: DetectionDataset
    batch_size: int = 2
    recal_batches: int = 4
    seed: int = 0
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        self.supernet: SuperNet = supernet_of(self.model)
        self.max_detections = detections_per_image(self.model)
        n = len(self.archtrain)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(self.seed, RECAL))).tolist()
        take = order[: min(n, self.recal_batches * self.batch_size)]
        #: Fixed recalibration batches: every candidate is recalibrated on the same images.
        self.recal_images = [
            [self.archtrain.load_image(i).to(self.device) for i in take[s : s + self.batch_size]]
            for s in range(0, len(take), self.batch_size)
        ]
        self.num_val_batches = -(-len(self.archval) // self.batch_size)
        #: This process's archval mini-batches (all of them unless distributed).
        self.val_batches = distributed.shard(range(self.num_val_batches))

    def _batch_indices(self, b: int) -> list[int]:
        return list(range(b * self.batch_size, min(len(self.archval), (b + 1) * self.batch_size)))

    def _collect(self, before_batch: Callable[[int], None] | None = None) -> list[Record]:
        """Detections on this process's archval mini-batches, gathered from every process;
        ``before_batch(b)`` gets the global mini-batch index."""
        indices = [i for b in self.val_batches for i in self._batch_indices(b)]
        records = collect_detections(
            self.model, self.archval, batch_size=self.batch_size, device=self.device, indices=indices,
            before_batch=None if before_batch is None else lambda b, images, targets: before_batch(self.val_batches[b]),
        )
        return distributed.all_gather_lists(records)

    # -- stage level ---------------------------------------------------------------------------------

    def evaluate_allocation(self, blocks: Sequence[int]) -> tuple[dict[str, float], list[Record]]:
        """COCO metrics and archval detections of the allocation ``blocks`` (all dilations 1) with
        recalibrated BatchNorm."""
        self.supernet.set_allocation(blocks)
        recalibrate_bn(self.model, self.recal_images)
        records = self._collect()
        return score_detections(records, self.archval, max_detections=self.max_detections), records

    def score_allocation(self, blocks: Sequence[int]) -> dict[str, float]:
        """AP of the allocation ``blocks`` (:meth:`evaluate_allocation` without the detections)."""
        return self.evaluate_allocation(blocks)[0]

    # -- operation level -----------------------------------------------------------------------------

    def _completion(self, step: int, batch: tuple[int, int], candidate: int, common_random: bool, count: int) -> Tensor:
        """Uniform random dilation indices for the ``count`` unselected blocks of mini-batch
        ``batch = (phase, index)`` (phase 0: archval, 1: recalibration)."""
        keys = (self.seed, COMPLETE, step, *batch) if common_random else (self.seed, COMPLETE, step, *batch, candidate + 1)
        generator = torch.Generator().manual_seed(derive_seed(*keys))
        return torch.randint(len(self.supernet.dilations), (count,), generator=generator)

    def _choices(
        self, prefixes: Sequence[Sequence[int]], step: int, batch: tuple[int, int], common_random: bool, first: int = 0
    ) -> Tensor:
        """Dilation indices ``[len(prefixes), B]``: each prefix, completed at random (``prefixes`` are
        the candidates numbered from ``first``)."""
        num_blocks = len(self.supernet.active_convs)
        index = {d: i for i, d in enumerate(self.supernet.dilations)}
        rows = []
        for c, prefix in enumerate(prefixes, start=first):
            rest = self._completion(step, batch, c, common_random, num_blocks - len(prefix))
            rows.append(torch.cat([torch.tensor([index[d] for d in prefix], dtype=torch.long), rest]))
        return torch.stack(rows)

    def evaluate_candidates(
        self, prefixes: Sequence[Sequence[int]], step: int, *, joint: bool = True, common_random: bool = True
    ) -> list[tuple[dict[str, float], list[Record]]]:
        """COCO metrics (one AP over all archval mini-batches) and archval detections of each partial
        dilation assignment in ``prefixes`` (dilation values of the first blocks), the other blocks
        completed at random per archval mini-batch."""
        if not prefixes:
            return []
        if joint:
            detections = self._detect_jointly(prefixes, step, common_random)
        else:
            detections = [self._detect_one(prefixes, c, step, common_random) for c in range(len(prefixes))]
        return [(score_detections(d, self.archval, max_detections=self.max_detections), d) for d in detections]

    def score_candidates(
        self, prefixes: Sequence[Sequence[int]], step: int, *, joint: bool = True, common_random: bool = True
    ) -> list[dict[str, float]]:
        """AP of each partial dilation assignment in ``prefixes`` (:meth:`evaluate_candidates` without
        the detections)."""
        return [m for m, _ in self.evaluate_candidates(prefixes, step, joint=joint, common_random=common_random)]

    def _detect_one(self, prefixes: Sequence[Sequence[int]], c: int, step: int, common_random: bool) -> list[Record]:
        def paths(batch: tuple[int, int]) -> list[Path]:
            return choices_to_paths(self._choices(prefixes[c : c + 1], step, batch, common_random, first=c))

        recalibrate_bn(self.model, self.recal_images, lambda b, images: self.supernet.set_paths(paths((1, b))))
        return self._collect(lambda b: self.supernet.set_paths(paths((0, b))))

    def _detect_jointly(self, prefixes: Sequence[Sequence[int]], step: int, common_random: bool) -> list[list[Record]]:
        k = len(prefixes)

        def replicate(batch: tuple[int, int], n: int) -> None:
            # image i of candidate c sits at row c * n + i
            choices = self._choices(prefixes, step, batch, common_random).repeat_interleave(n, dim=0)
            self.supernet.set_paths(choices_to_paths(choices))

        def recal_batch(b: int, images: list[Tensor]) -> list[Tensor]:
            replicate((1, b), len(images))
            return images * k

        recalibrate_bn(self.model, self.recal_images, recal_batch)
        records: list[list[Record]] = [[] for _ in range(k)]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for b in self.val_batches:
                    indices = self._batch_indices(b)
                    images = [self.archval.load_image(i).to(self.device) for i in indices]
                    image_ids = [self.archval.target(i)["image_id"] for i in indices]
                    replicate((0, b), len(images))
                    outputs = self.model(images * k)
                    for j, out in enumerate(outputs):
                        c, i = divmod(j, len(images))
                        records[c].append(detection_record(indices[i], image_ids[i], out))
        finally:
            self.model.train(was_training)
        return [distributed.all_gather_lists(r) for r in records]
