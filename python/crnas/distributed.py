"""Multi-process runs with ``torch.distributed`` (launched by ``torchrun``; gloo on CPU, NCCL on GPUs).

Training shards every global batch across the ranks (:func:`crnas.train.train_detector` wraps the
model in DistributedDataParallel); scoring shards archval mini-batches and gathers the detections
so every rank computes the same AP (:class:`crnas.search.scoring.Scorer`). Rank 0 alone writes files.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "rank", "world_size", "is_main", "barrier", "all_gather_lists", "shard"]

T = TypeVar("T")


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1);
    ``False`` (and nothing done) for a single process."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return True


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's items: ``items[rank::world_size]``."""
    return list(items[rank() :: world_size()])


def all_gather_lists(items: list[Any]) -> list[Any]:
    """The concatenation, in rank order, of every rank's ``items`` (picklable objects)."""
    if not dist.is_initialized():
        return items
    gathered: list[list[Any]] = [[] for _ in range(world_size())]
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]
