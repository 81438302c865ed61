"""The training entry point, :func:`train_detector`: the run's settings, then the step loop between
a resumed and a final checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from crnas import distributed
from crnas.train.checkpoint import Checkpoint, RunConfig, TrainResult, TrainState, isolated_rng
from crnas.train.loop import batches, run_steps
from crnas.train.schedule import WarmupMultiStep

__all__ = ["train_detector"]

logger = logging.getLogger(__name__)


def train_detector(
    model: nn.Module,
    dataset: Any,
    *,
    iterations: int | None = None,
    epochs: int | None = None,
    batch_size: int = 2,
    lr: float | None = None,
    lr_per_image: float = 0.00125,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    warmup_iters: int | None = None,
    warmup_factor: float = 0.001,
    steps: Sequence[float] = (8 / 12, 11 / 12),
    gamma: float = 0.1,
    device: torch.device | str = "cpu",
    amp: bool | None = None,
    seed: int = 0,
    num_workers: int = 0,
    checkpoint_dir: str | PathLike[str] | None = None,
    checkpoint_every: int = 1000,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    max_steps_this_run: int | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``iterations`` steps or ``epochs`` passes.

    The model is moved to ``device`` and trained in train mode (its previous mode is restored at the
    end). Each batch's targets lose their crowd and difficult objects (:func:`crnas.data.filter_ignored`)
    before the model sees them. The global torch/python/numpy RNGs (which torchvision's RPN and RoI
    samplers draw from) are seeded from ``seed`` for the run and given back to the caller afterwards;
    initialising the model is the caller's business.

    Args:
        model: a torchvision-style detector: ``model(images, targets)`` returns a dict of losses in
            train mode.
        dataset: a :class:`crnas.data.DetectionDataset` (or any map-style dataset of ``(image, target)``).
        iterations, epochs: the schedule length; exactly one. An epoch is ``ceil(len(dataset) /
            batch_size)`` iterations.
        batch_size: images per step.
        lr: base learning rate; default ``lr_per_image · batch_size``.
        lr_per_image: see ``lr``.
        momentum, weight_decay: SGD settings (weight decay on every trainable parameter).
        warmup_iters: linear warm-up length; default ``min(500, iterations // 12)``.
        warmup_factor: learning-rate factor at step 0 of the warm-up.
        steps: fractions of the schedule after which the learning rate is multiplied by ``gamma``.
        gamma: decay factor.
        device: where to train.
        amp: mixed precision; ``None`` means on for CUDA, off otherwise. ``True`` needs CUDA.
        seed: seeds the data order, the augmentation and the global RNGs of the run.
        num_workers: DataLoader worker processes (results do not depend on it).
        checkpoint_dir: where ``last.pt`` goes; ``None`` disables checkpoints (and resuming).
        checkpoint_every: write ``last.pt`` every this many iterations (and at the end).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists (its settings must match).
        callbacks: objects with any of the :class:`TrainCallback` methods.
        progress: show a tqdm bar (loss, lr, it/s, ETA).
        max_steps_this_run: stop cleanly after this many steps in this call (checkpointed, resumable).

    Under ``torch.distributed`` (e.g. launched by ``torchrun``; :mod:`crnas.distributed`) every rank
    calls this with the same arguments: ``batch_size`` is per rank, each global batch is split over the
    ranks, the model runs inside ``DistributedDataParallel`` (unused parameters allowed, for supernets),
    the default learning rate scales with the global batch, and rank 0 alone writes checkpoints.

    Returns:
        A :class:`TrainResult`.

    Raises:
        FloatingPointError: a step produced a non-finite loss (the step is not applied).
    """
    _validate(iterations, epochs, batch_size, lr, warmup_iters, warmup_factor, steps, gamma,
              checkpoint_every, max_steps_this_run)
    device = torch.device(device)
    use_amp = device.type == "cuda" if amp is None else bool(amp)
    if use_amp and device.type != "cuda":
        raise ValueError(f"amp: True needs a CUDA device, got device={str(device)!r}")
    rank, world = distributed.rank(), distributed.world_size()
    per_epoch = -(-len(dataset) // (batch_size * world))
    if iterations is not None:
        total = iterations
    else:
        assert epochs is not None, "_validate requires exactly one of iterations and epochs"
        total = epochs * per_epoch
    warmup = min(500, total // 12) if warmup_iters is None else warmup_iters
    config = RunConfig(
        total_iterations=total, batch_size=batch_size, dataset_size=len(dataset), seed=seed,
        lr=lr if lr is not None else lr_per_image * batch_size * world, momentum=momentum, weight_decay=weight_decay,
        warmup_iters=warmup, warmup_factor=warmup_factor, milestones=tuple(round(s * total) for s in steps),
        gamma=gamma, amp=use_amp, world_size=world,
    )
    model.to(device)
    step_model = _distributed(model, device) if world > 1 else model
    state = _initial_state(model, config, device, callbacks)
    checkpoint = Checkpoint(checkpoint_dir, config)
    state.result.checkpoint = checkpoint.path
    was_training = model.training
    with isolated_rng(seed, rank):
        checkpoint.resume(state, enabled=resume)
        logger.info(
            "training %d iterations (%d per epoch), batch %d, lr %.4g, warm-up %d, decay x%g at %s, amp %s, on %s",
            total, per_epoch, batch_size, config.lr, warmup, gamma, list(config.milestones), use_amp, device,
        )
        model.train()
        try:
            data = batches(dataset, start=state.result.iteration, total=total, per_epoch=per_epoch, batch_size=batch_size,
                           seed=seed, num_workers=num_workers, device=device, rank=rank, world_size=world)
            ran = run_steps(state, data, checkpoint, step_model=step_model, device=device, amp=use_amp,
                            checkpoint_every=checkpoint_every, max_steps_this_run=max_steps_this_run,
                            progress=progress and rank == 0)
            if ran or state.result.stopped_early:
                checkpoint.save(state)
        finally:
            model.train(was_training)
    result = state.result
    logger.info(
        "%s at iteration %d of %d%s",
        "stopped" if result.stopped_early else "finished", result.iteration, total,
        f"; checkpoint {checkpoint.path}" if checkpoint.path is not None else "",
    )
    return result


def _distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel (unused parameters allowed, for supernets)."""
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def _initial_state(model: nn.Module, config: RunConfig, device: torch.device, callbacks: Sequence[Any]) -> TrainState:
    """SGD over the trainable parameters, the warm-up/step schedule and the GradScaler of ``config``, at step 0."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: expected trainable parameters, got none (all have requires_grad=False)")
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    schedule = WarmupMultiStep(config.warmup_iters, config.warmup_factor, config.milestones, config.gamma)
    return TrainState(
        model=model, optimizer=optimizer, scheduler=LambdaLR(optimizer, schedule),
        scaler=torch.amp.GradScaler(device.type, enabled=config.amp),
        callbacks=callbacks, result=TrainResult(iteration=0, total_iterations=config.total_iterations),
    )


def _validate(
    iterations: int | None,
    epochs: int | None,
    batch_size: int,
    lr: float | None,
    warmup_iters: int | None,
    warmup_factor: float,
    steps: Sequence[float],
    gamma: float,
    checkpoint_every: int,
    max_steps_this_run: int | None,
) -> None:
    if (iterations is None) == (epochs is None):
        raise ValueError(
            f"iterations, epochs: expected exactly one of them, got iterations={iterations}, epochs={epochs}"
        )
    for name, value in (("iterations", iterations), ("epochs", epochs)):
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{name}: expected a positive int, got {value}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr: expected a positive float, got {lr}")
    if warmup_iters is not None and warmup_iters < 0:
        raise ValueError(f"warmup_iters: expected an int >= 0, got {warmup_iters}")
    if not 0.0 < warmup_factor <= 1.0:
        raise ValueError(f"warmup_factor: expected a float in (0, 1], got {warmup_factor}")
    if any(not 0.0 < s <= 1.0 for s in steps) or list(steps) != sorted(steps):
        raise ValueError(f"steps: expected non-decreasing fractions of the schedule in (0, 1], got {tuple(steps)}")
    if not gamma > 0:
        raise ValueError(f"gamma: expected a positive float, got {gamma}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every: expected an int >= 1, got {checkpoint_every}")
    if max_steps_this_run is not None and max_steps_this_run < 1:
        raise ValueError(f"max_steps_this_run: expected an int >= 1 or None, got {max_steps_this_run}")
