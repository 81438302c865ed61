"""Oracle detectors for the evaluation tests: they answer from the ground truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Oracle(nn.Module):
    """A detector that answers ``predict(target)`` for each image; ``before_batch`` hands it the targets."""

    def __init__(self, predict: Callable[[dict[str, Any]], dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.predict = predict
        self.pending: list[dict[str, torch.Tensor]] | None = None
        self.batches: list[tuple[int, int]] = []

    def before_batch(self, batch_index: int, images, targets) -> None:
        assert not self.training and torch.is_inference_mode_enabled()
        self.batches.append((batch_index, len(images)))
        self.pending = [self.predict(t) for t in targets]

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        assert not self.training
        assert self.pending is not None and len(self.pending) == len(images)
        out, self.pending = self.pending, None
        return out


def perfect(target: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every object that counts, exactly, with score 1 (crowd and difficult objects left out)."""
    keep = target["iscrowd"] == 0
    if "difficult" in target:
        keep &= ~target["difficult"]
    n = int(keep.sum())
    return {"boxes": target["boxes"][keep], "scores": torch.ones(n), "labels": target["labels"][keep]}


def noisy(target: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Jittered boxes, random scores, a missed object and a false positive, all a function of image_id."""
    g = torch.Generator().manual_seed(1000 + target["image_id"])
    boxes = target["boxes"].clone()
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    boxes += torch.randn(boxes.shape, generator=g) * size * 0.12
    scores = torch.rand(len(boxes), generator=g)
    labels = target["labels"].clone()
    keep = torch.arange(len(boxes)) != 0  # miss the first object
    fp = torch.tensor([[5.0, 5.0, 40.0, 30.0]])
    return {
        "boxes": torch.cat([boxes[keep], fp]),
        "scores": torch.cat([scores[keep], torch.rand(1, generator=g)]),
        "labels": torch.cat([labels[keep], torch.ones(1, dtype=torch.int64)]),
    }
