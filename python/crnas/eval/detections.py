"""Running a detector over a dataset, and pairing its detections with the ground truth.

The architecture search evaluates the mini-batches of archval with different sub-networks and scores the
union (docs/design.md#scoring), so collecting and scoring are separate: :func:`collect_detections`
returns one record per image, records from several calls can be concatenated, and the scoring functions
only look at the images that have a record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from crnas.data.base import DetectionDataset, check_dataset, check_indices
from crnas.data.loader import collate_fn

__all__ = ["collect_detections", "detection_record", "ground_truth"]

Record = dict[str, Any]


def detection_record(index: int, image_id: int, output: dict[str, Tensor]) -> Record:
    """The record of one image's detections (dataset ``index``, its ``image_id``, and the model's
    ``output`` on the CPU as float32 boxes/scores and int64 labels)."""
    return {
        "index": index,
        "image_id": image_id,
        "boxes": output["boxes"].detach().to("cpu", torch.float32),
        "scores": output["scores"].detach().to("cpu", torch.float32),
        "labels": output["labels"].detach().to("cpu", torch.int64),
    }
BeforeBatch = Callable[[int, tuple[Tensor, ...], tuple[dict[str, Any], ...]], None]


class _Unaugmented(Dataset):
    """Sample ``indices[i]`` of ``dataset`` as loaded, without its transforms."""

    def __init__(self, dataset: DetectionDataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Any]]:
        index = self.indices[i]
        return self.dataset.load_image(index), self.dataset.target(index)


def collect_detections(
    model: nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    before_batch: BeforeBatch | None = None,
    indices: Sequence[int] | None = None,
    num_workers: int = 0,
) -> list[Record]:
    """Run ``model`` (a torchvision-style detector, already on ``device``) on ``dataset``.

    Images are fed as loaded, without the dataset's ``transforms`` (torchvision detectors resize
    internally), so boxes come back in the frame of the annotations. The model runs in eval mode under
    :func:`torch.inference_mode`; its previous training mode is restored afterwards, even on error.

    Args:
        model: ``model(list of Tensor[3, H, W]) -> list of {"boxes", "scores", "labels"}`` in eval mode.
        dataset: the images and the ground truth scoring will use.
        batch_size: images per forward pass.
        device: where the images go.
        before_batch: ``before_batch(batch_index, images, targets)`` is called before each mini-batch
            (inside inference mode, with the model in eval mode), e.g. to switch the sub-network.
        indices: dataset indices to run, in this order (all by default); batches are consecutive runs
            of ``batch_size`` of them.
        num_workers: DataLoader worker processes.

    Returns:
        One record per image: ``index`` and ``image_id`` of the image, ``boxes`` ``Tensor[N, 4]``
        (xyxy, float32, CPU), ``scores`` ``Tensor[N]``, ``labels`` ``Tensor[N]`` int64.
    """
    dataset = check_dataset(dataset)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    order = list(range(len(dataset))) if indices is None else check_indices(indices, len(dataset))
    loader = DataLoader(
        _Unaugmented(dataset, order),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG out of worker seeding
    )
    was_training = model.training
    model.eval()
    records: list[Record] = []
    try:
        with torch.inference_mode():
            for b, (images, targets) in enumerate(loader):
                if before_batch is not None:
                    before_batch(b, images, targets)
                outputs = model([image.to(device) for image in images])
                batch_indices = order[b * batch_size : b * batch_size + len(images)]
                records.extend(
                    detection_record(index, target["image_id"], out) for index, target, out in zip(batch_indices, targets, outputs)
                )
    finally:
        model.train(was_training)
    return records


def ground_truth(detections: Sequence[Record], dataset: DetectionDataset) -> list[tuple[Record, dict[str, Any]]]:
    """``(record, target)`` pairs sorted by dataset index, checked for duplicates and foreign records."""
    dataset = check_dataset(dataset)
    num_classes = len(dataset.classes)
    pairs = []
    seen: set[int] = set()
    for record in sorted(detections, key=lambda r: r["index"]):
        index = record["index"]
        if index in seen:
            raise ValueError(f"detections: image index {index} has more than one record")
        seen.add(index)
        target = dataset.target(index)
        if record["image_id"] != target["image_id"]:
            raise ValueError(
                f"detections: the record of index {index} has image_id {record['image_id']}, but the dataset's "
                f"image {index} has image_id {target['image_id']}; score with the dataset they were collected on"
            )
        labels = record["labels"]
        if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) > num_classes):
            raise ValueError(
                f"detections: image index {index} has labels {sorted(set(labels.tolist()))}, but the dataset's "
                f"labels are 1..{num_classes} ({num_classes} classes)"
            )
        pairs.append((record, target))
    return pairs
