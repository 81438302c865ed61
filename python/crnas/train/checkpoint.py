"""What a training checkpoint holds, how it is written, and the checks before it is resumed.

``last.pt`` holds the :class:`TrainState` (model, optimizer, scheduler, GradScaler, the callbacks'
states, the progress), the RNG states and the :class:`RunConfig` it was written under; a run resumes
it only with the same :class:`RunConfig`. It is written atomically by rank 0 alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from crnas import distributed
from crnas.data.seeding import TRAIN, derive_seed

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "RunConfig", "TrainResult", "TrainState", "isolated_rng"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
_FORMAT = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything a checkpoint must agree with to be resumed bit-identically."""

    total_iterations: int
    batch_size: int
    dataset_size: int
    seed: int
    lr: float
    momentum: float
    weight_decay: float
    warmup_iters: int
    warmup_factor: float
    milestones: tuple[int, ...]
    gamma: float
    amp: bool
    world_size: int = 1


@dataclass
class TrainResult:
    """What :func:`train_detector` did.

    Attributes:
        iteration: iterations completed (over all runs of a resumed schedule).
        total_iterations: length of the schedule.
        loss_history: total loss of every completed step, from step 0.
        lr_history: learning rate of every completed step, from step 0.
        checkpoint: the checkpoint file, or ``None`` without ``checkpoint_dir``.
        stopped_early: the run ended before the schedule did (``StopTraining`` or ``max_steps_this_run``).
    """

    iteration: int
    total_iterations: int
    loss_history: list[float] = field(default_factory=list)
    lr_history: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped_early: bool = False


@dataclass
class TrainState:
    """What the steps change and a checkpoint holds (besides the RNG states)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    callbacks: Sequence[Any]
    result: TrainResult

    def stateful_callbacks(self) -> list[Any]:
        """The callbacks whose state is checkpointed (those with ``state_dict``), in order."""
        return [cb for cb in self.callbacks if hasattr(cb, "state_dict")]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple), "the global RandomState is an MT19937: its legacy state is a tuple"
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": random.getstate(),
        "numpy": (np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))


@contextlib.contextmanager
def isolated_rng(seed: int, rank: int = 0) -> Iterator[None]:
    """Seed torch/python/numpy from ``seed`` (and the process's rank) for the run and give the caller
    its RNG states back after."""
    saved = _rng_state()
    run_seed = derive_seed(seed, TRAIN, rank) if rank else derive_seed(seed, TRAIN)
    torch.manual_seed(run_seed)
    random.seed(run_seed)
    np.random.seed(run_seed % 2**32)
    try:
        yield
    finally:
        _set_rng_state(saved)


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write ``path`` so that it is always either the old file or the complete new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


class Checkpoint:
    """``directory/last.pt`` of a run with ``config`` (the directory is created); with ``directory``
    ``None`` there is none, and :meth:`save` does nothing."""

    def __init__(self, directory: str | PathLike[str] | None, config: RunConfig) -> None:
        self.config = config
        self.path = None if directory is None else Path(directory) / CHECKPOINT_NAME
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def save(self, state: TrainState) -> None:
        """Write ``state`` and the RNG states; rank 0 writes, the other ranks wait until it has."""
        if self.path is None:
            return
        if distributed.rank() != 0:
            distributed.barrier()
            return
        result = state.result
        _save_atomic({
            "format": _FORMAT,
            "config": asdict(self.config),
            "iteration": result.iteration,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(),
            "rng": _rng_state(),
            "callbacks": [cb.state_dict() for cb in state.stateful_callbacks()],
            "loss_history": result.loss_history,
            "lr_history": result.lr_history,
        }, self.path)
        logger.debug("checkpoint at iteration %d: %s", result.iteration, self.path)
        distributed.barrier()

    def resume(self, state: TrainState, enabled: bool = True) -> None:
        """Continue from the checkpoint, if there is one: load it into ``state`` and the RNGs; with
        ``enabled`` false, only warn that it will be overwritten."""
        if self.path is None or not self.path.is_file():
            return
        if not enabled:
            logger.warning("resume=False: starting over; %s will be overwritten", self.path)
            return
        self._restore(self.path, state)
        logger.info("resuming from %s at iteration %d of %d", self.path, state.result.iteration, self.config.total_iterations)

    def _restore(self, path: Path, state: TrainState) -> None:
        """Load ``path`` into ``state`` and the RNGs, after checking it fits this run."""
        try:
            saved_state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: cannot load the checkpoint ({type(e).__name__}: {e})") from e
        if saved_state.get("format") != _FORMAT:
            raise ValueError(f"{path}: expected checkpoint format {_FORMAT}, got {saved_state.get('format')!r}")
        saved = saved_state["config"]
        saved["milestones"] = tuple(saved["milestones"])
        diff = [f"{k}={saved[k]!r} (now {v!r})" for k, v in asdict(self.config).items() if saved.get(k) != v]
        if diff:
            raise ValueError(
                f"{path}: the checkpoint was written with {', '.join(diff)}; resume with the same settings, "
                "or pass resume=False or another checkpoint_dir to start over"
            )
        stateful = state.stateful_callbacks()
        if len(saved_state["callbacks"]) != len(stateful):
            raise ValueError(
                f"{path}: the checkpoint has {len(saved_state['callbacks'])} callback states, got {len(stateful)} callbacks "
                "with state_dict(); pass the same stateful callbacks, in the same order"
            )
        state.model.load_state_dict(saved_state["model"])
        state.optimizer.load_state_dict(saved_state["optimizer"])
        state.scheduler.load_state_dict(saved_state["scheduler"])
        state.scaler.load_state_dict(saved_state["scaler"])
        for cb, cb_state in zip(stateful, saved_state["callbacks"]):
            cb.load_state_dict(cb_state)
        state.result.iteration = saved_state["iteration"]
        state.result.loss_history = list(saved_state["loss_history"])
        state.result.lr_history = list(saved_state["lr_history"])
        _set_rng_state(saved_state["rng"])
