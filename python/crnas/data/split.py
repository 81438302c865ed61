"""The archtrain / archval split of the search (docs/design.md#data-splits) and the subset type it returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from crnas.data.base import DetectionDataset, check_dataset, check_indices
from crnas.data.report import DataReport
from crnas.data.seeding import SPLIT, derive_seed
from crnas.data.transforms import Transform

__all__ = ["DetectionSubset", "split"]


class DetectionSubset(DetectionDataset):
    """The samples ``indices`` of ``dataset``, like :class:`torch.utils.data.Subset`.

    Metadata (``classes``, ``label_to_cat_id``, ``report``, ``transforms``) is the underlying dataset's;
    ``load``/``target``/``get`` forward with the index mapped, so evaluation and training treat a subset
    like any dataset. Image ids stay the underlying dataset's.
    """

    def __init__(self, dataset: DetectionDataset, indices: Sequence[int]) -> None:
        self.dataset = check_dataset(dataset)
        self.indices = check_indices(indices, len(dataset))

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        return self.dataset.classes

    @property
    def report(self) -> DataReport:  # type: ignore[override]
        return self.dataset.report

    @property
    def transforms(self) -> Transform | None:  # type: ignore[override]
        return self.dataset.transforms

    @property
    def label_to_cat_id(self) -> dict[int, int]:
        return self.dataset.label_to_cat_id

    def __len__(self) -> int:
        return len(self.indices)

    def load_image(self, index: int) -> Tensor:
        return self.dataset.load_image(self.indices[self._check_index(index)])

    def target(self, index: int) -> dict[str, Any]:
        return self.dataset.target(self.indices[self._check_index(index)])

    def load(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        return self.dataset.load(self.indices[self._check_index(index)])

    def get(self, index: int, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Any]]:
        return self.dataset.get(self.indices[self._check_index(index)], generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dataset!r}, {len(self)} of {len(self.dataset)} samples)"


def split(
    dataset: DetectionDataset, val_fraction: float = 0.05, seed: int = 0
) -> tuple[DetectionSubset, DetectionSubset]:
    """Split ``dataset`` into ``(archtrain, archval)``: seeded, disjoint, covering, neither empty.

    ``archval`` gets ``round(len(dataset) · val_fraction)`` samples, clamped to ``[1, len - 1]``. The
    choice depends only on ``(seed, len(dataset))``; each part lists its indices in increasing order.
    """
    n = len(dataset)
    if n < 2:
        raise ValueError(f"dataset: expected at least 2 samples to split, got {n}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction}")
    n_val = min(max(round(n * val_fraction), 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, SPLIT)))
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return DetectionSubset(dataset, train), DetectionSubset(dataset, val)
