"""Training a torchvision-style detector: SGD, linear warm-up, step decay, and exact resume.

The recipe is the paper's 1× schedule (spec §8): SGD with momentum 0.9 and weight decay 1e-4, a learning
rate of 0.00125 per image (0.02 for 16 images, spec §9 item 9), linear warm-up, then ×0.1 at 8/12 and
11/12 of the schedule. AMP (autocast + GradScaler) is on by default on CUDA and off on CPU.

Resuming is exact: with ``checkpoint_dir`` set, ``last.pt`` holds the model, optimizer, scheduler,
GradScaler, the torch/python/numpy RNG states, the iteration, the loss and LR histories and every
callback's ``state_dict()``; it is written atomically (a temporary file, fsync, ``os.replace``), so a
kill at any moment leaves the previous checkpoint intact. The data order depends only on
``(seed, epoch)`` and augmentation only on ``(seed, epoch, index)`` (:func:`crnas.data.make_loader`),
so a resumed run restarts inside its epoch on exactly the batch the uninterrupted run would have seen,
and on CPU ends with bit-identical weights, whatever ``num_workers`` is (same machine, same torch
version and thread count; CUDA kernels are not bit-reproducible in general).

Example::

    from crnas.data import SyntheticDetection
    from crnas.train import train_detector
    result = train_detector(model, SyntheticDetection(512), epochs=12, batch_size=4, checkpoint_dir="runs/a")
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from crnas import distributed
from crnas.data.loader import make_loader
from crnas.data.seeding import TRAIN, derive_seed
from crnas.data.target import training_target

__all__ = ["CHECKPOINT_NAME", "StopTraining", "TrainCallback", "TrainResult", "WarmupMultiStep", "train_detector"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
_FORMAT = 1


class StopTraining(Exception):
    """Raise from a callback to end the run cleanly.

    The other callbacks' hooks for the step still run; then a checkpoint is written (when
    ``checkpoint_dir`` is set) and :func:`train_detector` returns with ``stopped_early=True``. Raised
    from ``on_step_end``, the step counts and a resumed run is bit-identical to an uninterrupted one.
    Raised from ``on_step_start``, the step does not happen and the resumed run does it, calling
    ``on_step_start`` again: exact only if the callbacks' ``on_step_start`` did not change their state.
    """


class TrainCallback(Protocol):
    """Hooks of :func:`train_detector`. Every method is optional; define the ones you need.

    * ``on_step_start(step, images, targets, model)``: before the forward pass of step ``step``
      (0-based), with the batch already on the device and crowd/difficult objects removed; the
      architecture search samples a sub-network here.
    * ``on_step_end(step, losses)``: after the optimizer step; ``losses`` maps each loss name, and
      ``"loss"`` for their sum, to a float.
    * ``state_dict()`` / ``load_state_dict(state)``: saved in and restored from checkpoints (a resumed
      run must get the callbacks that have ``state_dict``, in the same order); the state must be
      loadable with ``torch.load(weights_only=True)`` (tensors, numbers, strings, containers).
    """

    def on_step_start(
        self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module
    ) -> None: ...

    def on_step_end(self, step: int, losses: dict[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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


@dataclass(frozen=True)
class _Config:
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


def _rng_state() -> dict[str, Any]:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
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
def _isolated_rng(seed: int, rank: int = 0) -> Iterator[None]:
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
    total = iterations if iterations is not None else epochs * per_epoch  # type: ignore[operator]
    warmup = min(500, total // 12) if warmup_iters is None else warmup_iters
    config = _Config(
        total_iterations=total, batch_size=batch_size, dataset_size=len(dataset), seed=seed,
        lr=lr if lr is not None else lr_per_image * batch_size * world, momentum=momentum, weight_decay=weight_decay,
        warmup_iters=warmup, warmup_factor=warmup_factor, milestones=tuple(round(s * total) for s in steps),
        gamma=gamma, amp=use_amp, world_size=world,
    )
    model.to(device)
    if world > 1:
        step_model: nn.Module = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    else:
        step_model = model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: expected trainable parameters, got none (all have requires_grad=False)")
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = LambdaLR(optimizer, WarmupMultiStep(warmup, warmup_factor, config.milestones, gamma))
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    path = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        path = Path(checkpoint_dir) / CHECKPOINT_NAME
    result = TrainResult(iteration=0, total_iterations=total, checkpoint=path)

    def save() -> None:
        if path is None:
            return
        if rank != 0:
            distributed.barrier()  # rank 0 writes; the others wait until it has
            return
        _save_atomic({
            "format": _FORMAT,
            "config": asdict(config),
            "iteration": result.iteration,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": _rng_state(),
            "callbacks": [cb.state_dict() for cb in callbacks if hasattr(cb, "state_dict")],
            "loss_history": result.loss_history,
            "lr_history": result.lr_history,
        }, path)
        logger.debug("checkpoint at iteration %d: %s", result.iteration, path)
        distributed.barrier()

    was_training = model.training
    with _isolated_rng(seed, rank):
        if path is not None and path.is_file():
            if resume:
                _load(path, config, model, optimizer, scheduler, scaler, callbacks, result)
                logger.info("resuming from %s at iteration %d of %d", path, result.iteration, total)
            else:
                logger.warning("resume=False: starting over; %s will be overwritten", path)
        logger.info(
            "training %d iterations (%d per epoch), batch %d, lr %.4g, warm-up %d, decay x%g at %s, amp %s, on %s",
            total, per_epoch, batch_size, config.lr, warmup, gamma, list(config.milestones), use_amp, device,
        )
        model.train()
        steps_this_run = 0
        try:
            redirect: Any = contextlib.nullcontext()
            if progress and rank == 0:
                # imported only with a bar: it pulls in tqdm.auto, which warns in notebooks without ipywidgets
                from tqdm.contrib.logging import logging_redirect_tqdm

                redirect = logging_redirect_tqdm()
            with redirect, tqdm(
                total=total, initial=result.iteration, desc="train", unit="it", dynamic_ncols=True,
                disable=not progress or rank != 0,
            ) as bar:
                while result.iteration < total and not result.stopped_early:
                    epoch, start_batch = divmod(result.iteration, per_epoch)
                    loader = make_loader(dataset, batch_size, shuffle=True, num_workers=num_workers, seed=seed,
                                         epoch=epoch, start_batch=start_batch, rank=rank, world_size=world)
                    for images, targets in loader:
                        step = result.iteration
                        images = [im.to(device, non_blocking=True) for im in images]
                        targets = [training_target(t, device) for t in targets]
                        if _call_hooks(callbacks, "on_step_start", step, images, targets, model):
                            logger.info("stopped by a callback before step %d", step)
                            result.stopped_early = True
                            break
                        losses = _step(step_model, images, targets, optimizer, scaler, use_amp, device, step)
                        result.lr_history.append(optimizer.param_groups[0]["lr"])
                        result.loss_history.append(losses["loss"])
                        scheduler.step()
                        result.iteration = step + 1
                        steps_this_run += 1
                        bar.update(1)
                        bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{result.lr_history[-1]:.3g}", refresh=False)
                        if _call_hooks(callbacks, "on_step_end", step, losses) and result.iteration < total:
                            logger.info("stopped by a callback after step %d", step)
                            result.stopped_early = True
                        if steps_this_run == max_steps_this_run and result.iteration < total:
                            logger.info("stopped after max_steps_this_run=%d steps", max_steps_this_run)
                            result.stopped_early = True
                        if result.stopped_early or result.iteration >= total:
                            break
                        if result.iteration % checkpoint_every == 0:
                            save()
            if steps_this_run or result.stopped_early:
                save()
        finally:
            model.train(was_training)
    logger.info(
        "%s at iteration %d of %d%s",
        "stopped" if result.stopped_early else "finished", result.iteration, total,
        f"; checkpoint {path}" if path is not None else "",
    )
    return result


def _call_hooks(callbacks: Sequence[Any], hook: str, *args: Any) -> bool:
    """Call ``hook`` on every callback that has it; ``True`` if any raised :class:`StopTraining`.

    The other callbacks still run, so every callback has seen the step when the checkpoint is written.
    """
    stop = False
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            try:
                method(*args)
            except StopTraining:
                stop = True
    return stop


def _step(
    model: nn.Module,
    images: list[Tensor],
    targets: list[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    use_amp: bool,
    device: torch.device,
    step: int,
) -> dict[str, float]:
    with torch.autocast(device.type, enabled=use_amp):
        loss_dict = model(images, targets)
    if not isinstance(loss_dict, dict):
        raise TypeError(
            "model: expected a dict of losses in train mode (a torchvision detection model), "
            f"got {type(loss_dict).__name__}"
        )
    loss = sum(loss_dict.values())
    losses = {name: float(value.detach()) for name, value in loss_dict.items()}
    losses["loss"] = float(loss.detach())
    if not math.isfinite(losses["loss"]):
        raise FloatingPointError(f"step {step}: the loss is {losses['loss']} ({losses}); the step was not applied")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return losses


def _load(
    path: Path,
    config: _Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    scaler: torch.amp.GradScaler,
    callbacks: Sequence[Any],
    result: TrainResult,
) -> None:
    """Restore everything :func:`train_detector` saved, after checking the checkpoint fits this run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot load the checkpoint ({type(e).__name__}: {e})") from e
    if state.get("format") != _FORMAT:
        raise ValueError(f"{path}: expected checkpoint format {_FORMAT}, got {state.get('format')!r}")
    saved = state["config"]
    saved["milestones"] = tuple(saved["milestones"])
    diff = [f"{k}={saved[k]!r} (now {v!r})" for k, v in asdict(config).items() if saved.get(k) != v]
    if diff:
        raise ValueError(
            f"{path}: the checkpoint was written with {', '.join(diff)}; resume with the same settings, "
            "or pass resume=False or another checkpoint_dir to start over"
        )
    stateful = [cb for cb in callbacks if hasattr(cb, "state_dict")]
    if len(state["callbacks"]) != len(stateful):
        raise ValueError(
            f"{path}: the checkpoint has {len(state['callbacks'])} callback states, got {len(stateful)} callbacks "
            "with state_dict(); pass the same stateful callbacks, in the same order"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    for cb, cb_state in zip(stateful, state["callbacks"]):
        cb.load_state_dict(cb_state)
    result.iteration = state["iteration"]
    result.loss_history = list(state["loss_history"])
    result.lr_history = list(state["lr_history"])
    _set_rng_state(state["rng"])
