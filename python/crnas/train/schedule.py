"""The learning-rate schedule: linear warm-up, then step decay (docs/design.md#training)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["WarmupMultiStep"]


@dataclass(frozen=True)
class WarmupMultiStep:
    """Learning-rate factor of step ``it``: linear warm-up from ``warmup_factor``, ×``gamma`` at each milestone.

    ``factor(it) = gamma ** #{m in milestones : m <= it} · w(it)`` with
    ``w(it) = warmup_factor + (1 - warmup_factor) · it / warmup_iters`` for ``it < warmup_iters``, 1 after
    (the mmdetection/detectron2 rule).
    """

    warmup_iters: int
    warmup_factor: float
    milestones: tuple[int, ...]
    gamma: float

    def __call__(self, it: int) -> float:
        factor = self.gamma ** bisect_right(self.milestones, it)
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            factor *= self.warmup_factor * (1.0 - alpha) + alpha
        return factor
