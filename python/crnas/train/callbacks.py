"""The hooks :func:`crnas.train.train_detector` calls around every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from torch import Tensor, nn

__all__ = ["StopTraining", "TrainCallback", "call_hooks"]


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
    * ``passes_per_step`` (an int attribute, default 1) and ``on_pass_start(step, index, model)``:
      steps of several forward/backward passes over the batch (one optimizer step on their mean
      gradient; at most one callback may ask for more than 1); ``on_pass_start`` runs before pass
      ``index`` of every step, after ``on_step_start`` (the sandwich rule switches sub-networks there).
    * ``on_step_end(step, losses)``: after the optimizer step; ``losses`` maps each loss name, and
      ``"loss"`` for their sum, to a float (averaged over the passes).
    * ``state_dict()`` / ``load_state_dict(state)``: saved in and restored from checkpoints (a resumed
      run must get the callbacks that have ``state_dict``, in the same order); the state must be
      loadable with ``torch.load(weights_only=True)`` (tensors, numbers, strings, containers).
    """

    def on_step_start(
        self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module
    ) -> None: ...

    def on_pass_start(self, step: int, index: int, model: nn.Module) -> None: ...

    def on_step_end(self, step: int, losses: dict[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def call_hooks(callbacks: Sequence[Any], hook: str, *args: Any) -> bool:
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
