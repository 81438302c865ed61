"""Batching: ``collate_fn`` and ``make_loader``, a DataLoader whose order and augmentation are seeded.

``make_loader(dataset, batch_size, shuffle=True, seed=s, epoch=e)`` visits the samples in an order that
depends only on ``(s, e)``, augments sample ``i`` with the generator of ``(s, e, i)``
(:func:`crnas.data.seeding.augmentation_generator`) and seeds its worker processes from ``(s, e)``,
never from the global RNG. ``start_batch`` skips the first batches of the epoch. So the batches are the
same whatever ``num_workers`` is, and a run resumed at batch ``b`` of epoch ``e`` sees exactly what the
uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from crnas.data.seeding import AUGMENT, ORDER, WORKERS, derive_seed

__all__ = ["EpochBatchSampler", "collate_fn", "make_loader"]


def collate_fn(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[tuple[Tensor, ...], tuple[dict[str, Any], ...]]:
    """``[(image, target), ...]`` → ``((image, ...), (target, ...))``: detection images differ in size."""
    images, targets = zip(*batch)
    return tuple(images), tuple(targets)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, augmentation seed)`` for one epoch, from batch ``start_batch`` on.

    The order is ``torch.randperm`` under the seed of ``(seed, epoch)`` when ``shuffle``, ``0..n-1``
    otherwise; the augmentation seed of sample ``i`` is that of ``(seed, epoch, i)``. With
    ``world_size > 1`` each batch is one rank's share of a global batch of ``batch_size · world_size``
    (the order is padded by wrapping around, so every rank gets ``batch_size`` samples).
    """

    def __init__(
        self, n: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, drop_last: bool, start_batch: int = 0,
        rank: int = 0, world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.epoch, self.drop_last, self.start_batch = seed, epoch, drop_last, start_batch
        self.rank, self.world_size = rank, world_size

    def batches_per_epoch(self) -> int:
        size = self.batch_size * self.world_size
        return self.n // size if self.drop_last else -(-self.n // size)

    def __len__(self) -> int:
        return max(self.batches_per_epoch() - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, ORDER, self.epoch))
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = list(range(self.n))
        size = self.batch_size * self.world_size
        if self.world_size > 1:
            order = (order * -(-self.batches_per_epoch() * size // len(order)))[: self.batches_per_epoch() * size]
        for b in range(self.start_batch, self.batches_per_epoch()):
            start = b * size + self.rank * self.batch_size
            indices = order[start : start + self.batch_size]
            yield [(i, derive_seed(self.seed, AUGMENT, self.epoch, i)) for i in indices]


class _Seeded(Dataset):
    """``view[(index, seed)]`` is ``dataset.get(index, Generator(seed))`` (``dataset[index]`` without ``get``)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        get = getattr(self.dataset, "get", None)
        if get is None:
            return self.dataset[index]
        return get(index, torch.Generator().manual_seed(seed))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader over one epoch of ``dataset`` yielding ``(images, targets)`` tuples.

    Args:
        dataset: a :class:`crnas.data.DetectionDataset` (augmented through ``get(index, generator)``) or
            any map-style dataset of ``(image, target)`` pairs (then augmentation is its own business).
        batch_size: samples per batch.
        shuffle: seeded shuffling from ``(seed, epoch)``; in index order otherwise.
        num_workers: DataLoader worker processes; the batches do not depend on it.
        seed, epoch: the keys of every random choice (non-negative ints).
        drop_last: drop the last, incomplete batch.
        start_batch: skip this many batches (resuming inside an epoch).
        rank, world_size: this process's share of each global batch (distributed training).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers: expected an int >= 0, got {num_workers}")
    if start_batch < 0:
        raise ValueError(f"start_batch: expected an int >= 0, got {start_batch}")
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("dataset: expected at least one sample, got an empty dataset")
    sampler = EpochBatchSampler(
        n, batch_size, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last, start_batch=start_batch,
        rank=rank, world_size=world_size,
    )
    return DataLoader(
        _Seeded(dataset),
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(derive_seed(seed, WORKERS, epoch)),
    )
