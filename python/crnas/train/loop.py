"""The step loop of :func:`crnas.train.train_detector`: batches, hooks, optimizer steps, periodic checkpoints."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from crnas.data.loader import make_loader
from crnas.data.target import training_target
from crnas.train.callbacks import call_hooks
from crnas.train.checkpoint import Checkpoint, TrainState

__all__ = ["batches", "run_steps", "step_passes", "train_step"]

logger = logging.getLogger(__name__)

Batch = tuple[int, list[Tensor], list[dict[str, Any]]]


def batches(
    dataset: Any,
    *,
    start: int,
    total: int,
    per_epoch: int,
    batch_size: int,
    seed: int,
    num_workers: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> Generator[Batch, None, None]:
    """``(step, images, targets)`` for the steps ``start .. total - 1``, on ``device``, targets without
    their crowd/difficult objects. Step ``s`` is batch ``s % per_epoch`` of epoch ``s // per_epoch``
    (:func:`crnas.data.make_loader`), so a resumed run continues on the batch it stopped before."""
    step = start
    while step < total:
        epoch, start_batch = divmod(step, per_epoch)
        loader = make_loader(dataset, batch_size, shuffle=True, num_workers=num_workers, seed=seed, epoch=epoch,
                             start_batch=start_batch, rank=rank, world_size=world_size)
        for images, targets in loader:
            yield step, [im.to(device, non_blocking=True) for im in images], [training_target(t, device) for t in targets]
            step += 1
            if step == total:
                return


@contextlib.contextmanager
def _progress_bar(total: int, initial: int, show: bool) -> Iterator[tqdm]:
    redirect: Any = contextlib.nullcontext()
    if show:
        # imported only with a bar: it pulls in tqdm.auto, which warns in notebooks without ipywidgets
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()
    with redirect, tqdm(total=total, initial=initial, desc="train", unit="it", dynamic_ncols=True, disable=not show) as bar:
        yield bar


def run_steps(
    state: TrainState,
    steps: Generator[Batch, None, None],
    checkpoint: Checkpoint,
    *,
    step_model: nn.Module,
    device: torch.device,
    amp: bool,
    checkpoint_every: int,
    max_steps_this_run: int | None,
    progress: bool,
) -> int:
    """Train on ``steps`` until they run out or a stop (a callback's :class:`StopTraining`,
    ``max_steps_this_run``), checkpointing every ``checkpoint_every`` iterations except after the
    last step; returns how many steps ran. ``step_model`` is ``state.model`` or its DDP wrapper."""
    result, total = state.result, state.result.total_iterations
    passes = step_passes(state.callbacks)
    ran = 0
    with _progress_bar(total, result.iteration, progress) as bar, contextlib.closing(steps):
        for step, images, targets in steps:
            if call_hooks(state.callbacks, "on_step_start", step, images, targets, state.model):
                logger.info("stopped by a callback before step %d", step)
                result.stopped_early = True
                break
            losses = train_step(step_model, images, targets, state.optimizer, state.scaler, amp, device, step, passes=passes,
                                before_pass=functools.partial(_pass_hooks, state, step))
            result.lr_history.append(state.optimizer.param_groups[0]["lr"])
            result.loss_history.append(losses["loss"])
            state.scheduler.step()
            result.iteration = step + 1
            ran += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{result.lr_history[-1]:.3g}", refresh=False)
            if call_hooks(state.callbacks, "on_step_end", step, losses) and result.iteration < total:
                logger.info("stopped by a callback after step %d", step)
                result.stopped_early = True
            if ran == max_steps_this_run and result.iteration < total:
                logger.info("stopped after max_steps_this_run=%d steps", max_steps_this_run)
                result.stopped_early = True
            if result.stopped_early or result.iteration >= total:
                break
            if result.iteration % checkpoint_every == 0:
                checkpoint.save(state)
    return ran


def _pass_hooks(state: TrainState, step: int, index: int) -> None:
    if call_hooks(state.callbacks, "on_pass_start", step, index, state.model):
        raise ValueError(f"callbacks: StopTraining from on_pass_start (step {step}, pass {index}); raise it from on_step_start or on_step_end")


def step_passes(callbacks: Sequence[Any]) -> int:
    """Forward/backward passes per optimizer step: the ``passes_per_step`` of the one callback that sets
    it (a supernet's sandwich rule), else 1."""
    asked = [(type(cb).__name__, int(cb.passes_per_step)) for cb in callbacks if getattr(cb, "passes_per_step", 1) != 1]
    if len(asked) > 1:
        raise ValueError(f"callbacks: expected at most one with passes_per_step != 1, got {asked}")
    if asked and asked[0][1] < 1:
        raise ValueError(f"callbacks: expected passes_per_step >= 1, got {asked[0][1]} from {asked[0][0]}")
    return asked[0][1] if asked else 1


def train_step(
    model: nn.Module,
    images: list[Tensor],
    targets: list[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: bool,
    device: torch.device,
    step: int,
    *,
    passes: int = 1,
    before_pass: Callable[[int], Any] | None = None,
) -> dict[str, float]:
    """One optimizer step on the mean gradient of ``passes`` forward/backward passes over the batch
    (``before_pass(i)`` before pass ``i``: a supernet switches sub-networks there; under DDP the
    gradients are reduced once, in the last pass). Returns the losses as floats averaged over the passes
    (a loss missing from a pass counts 0 there), ``"loss"`` their sum."""
    optimizer.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    for i in range(passes):
        if before_pass is not None:
            before_pass(i)
        with torch.autocast(device.type, enabled=amp):
            loss_dict = model(images, targets)
        if not isinstance(loss_dict, dict):
            raise TypeError(
                "model: expected a dict of losses in train mode (a torchvision detection model), "
                f"got {type(loss_dict).__name__}"
            )
        loss = sum(loss_dict.values())
        assert isinstance(loss, Tensor), "a detector in train mode returns at least one loss tensor"
        losses = {name: float(value.detach()) for name, value in loss_dict.items()}
        losses["loss"] = float(loss.detach())
        if not math.isfinite(losses["loss"]):
            where = f" (pass {i} of {passes})" if passes > 1 else ""
            raise FloatingPointError(f"step {step}: the loss is {losses['loss']} ({losses}){where}; the step was not applied")
        sync = contextlib.nullcontext() if i == passes - 1 or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            scaler.scale(loss / passes if passes > 1 else loss).backward()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + value / passes
    scaler.step(optimizer)
    scaler.update()
    return totals
