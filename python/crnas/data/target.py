"""The detection target dict shared by every dataset, and the objects training must not see.

A target follows torchvision's detection contract, plus two flags torchvision models do not read:

* ``boxes``: ``Tensor[K, 4]`` float32, ``x1, y1, x2, y2`` in pixels (pixel edges: a box covering
  columns 3..5 is ``x1=3, x2=6``)
* ``labels``: ``Tensor[K]`` int64, contiguous ``1..num_classes`` (0 is the background)
* ``image_id``: int
* ``area``: ``Tensor[K]`` float32 (the annotation's area, as COCO's scale ranges use it)
* ``iscrowd``: ``Tensor[K]`` int64; crowd regions are kept in the target (COCO evaluation needs them)
* ``difficult``: ``Tensor[K]`` bool, VOC only; kept for the same reason
* ``masks``: ``Tensor[K, H, W]`` uint8, only when the dataset was asked for masks

Crowd and difficult objects are dropped by :func:`filter_ignored` right before a model is trained on a
target (``crnas.train`` does it), never by the datasets: evaluation ignores them instead of counting
them as misses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PER_OBJECT_KEYS", "filter_ignored", "make_target", "training_target"]

PER_OBJECT_KEYS = ("boxes", "labels", "area", "iscrowd", "difficult", "masks")


def make_target(
    image_id: int,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[int],
    area: Sequence[float],
    iscrowd: Sequence[int],
) -> dict[str, Tensor | int]:
    """Build a target with the dtypes and shapes above (``boxes`` may be empty: ``[0, 4]``)."""
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64).reshape(-1),
        "image_id": int(image_id),
        "area": torch.tensor(area, dtype=torch.float32).reshape(-1),
        "iscrowd": torch.tensor(iscrowd, dtype=torch.int64).reshape(-1),
    }


def filter_ignored(target: dict[str, Tensor | int]) -> dict[str, Tensor | int]:
    """A copy of ``target`` without crowd (``iscrowd == 1``) and ``difficult`` objects.

    torchvision detectors treat every box they are given as a positive; crowd regions and VOC difficult
    objects must not be. Per-object keys are filtered together; other keys are kept as they are.
    """
    boxes = target["boxes"]
    assert isinstance(boxes, Tensor), "a target's boxes are a Tensor[K, 4] (make_target)"
    keep = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    for flag in ("iscrowd", "difficult"):
        value = target.get(flag)
        if isinstance(value, Tensor):
            keep &= value == 0
    if bool(keep.all()):
        return dict(target)
    return {k: v[keep] if k in PER_OBJECT_KEYS and isinstance(v, Tensor) else v for k, v in target.items()}


def training_target(target: dict[str, Tensor | int], device: torch.device | str) -> dict[str, Tensor | int]:
    """What a detector trains on: ``target`` without ignored objects (:func:`filter_ignored`), its
    tensors on ``device``."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in filter_ignored(target).items()}
