"""The training callbacks of the search's supernets (docs/design.md#search-phases): what runs before
every weight step of :func:`crnas.train.train_detector`.

- :class:`StageSampler` and :class:`PathSampler`: single-path sampling, one allocation per step
  (by the space's sampling) and one dilation per block per step (or per block and image with
  ``per_sample``). Both derive each step's choice from ``(seed, step)`` alone, so a resumed run samples
  exactly what the uninterrupted one did.
- :class:`DifferentiableSearch`: the differentiable dilation search, softmax weights per block trained
  with first-order bilevel updates through the fused convolution (docs/design.md#differentiable-search),
  discretised by argmax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crnas.arch import StageSpace
from crnas.data.base import DetectionDataset
from crnas.data.loader import collate_fn
from crnas.data.seeding import derive_seed
from crnas.data.target import training_target
from crnas.sampling import sample_paths
from crnas.search.scoring import choices_to_paths
from crnas.search.supernet import supernet_of

__all__ = ["StageSampler", "PathSampler", "DifferentiableSearch", "relative_mse"]

# stream keys of derive_seed
STAGE_SAMPLE, PATH_SAMPLE, ARCH_BATCH = 21, 22, 23


def relative_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared difference relative to the teacher's mean square: unchanged when both features scale
    together (shared weights cannot lower it by shrinking the features)."""
    return F.mse_loss(student, teacher) / teacher.pow(2).mean().clamp_min(1e-12)


class StageSampler:
    """Training callback: an allocation of ``space`` drawn at every step (dilations 1), ``sampling``
    ``"uniform"``, ``"balanced"`` or ``"independent"`` (whose draws may break the budget;
    :meth:`crnas.arch.StageSpace.sample`).

    With ``sandwich`` every step trains three sub-networks on its batch, one optimizer step on their
    mean gradient (the sandwich rule, docs/design.md#sandwich): the deepest (every stage at its deepest
    feasible depth), the shallowest (every stage at its shallowest), then the drawn allocation; the two
    extremes need not keep the budget. ``distill`` (with ``sandwich``) adds in-place distillation: the
    shallowest's and the drawn allocation's losses gain ``loss_distill``, ``distill`` times the mean over
    FPN levels of :func:`relative_mse` between their features and the deepest's in the same step (detached).
    """

    def __init__(self, space: StageSpace, seed: int, sampling: str = "uniform", *, sandwich: bool = False, distill: float = 0.0) -> None:
        if distill < 0 or not math.isfinite(distill) or (distill and not sandwich):
            raise ValueError(f"distill: expected a finite weight >= 0 (> 0 only with sandwich=True), got {distill}")
        self.space, self.seed, self.sampling, self.distill = space, seed, sampling, distill
        depths = space.feasible_depths()
        self.extremes = [[d[-1] for d in depths], [d[0] for d in depths]]  # deepest, shallowest
        self.passes_per_step = 3 if sandwich else 1
        self._blocks: list[int] = []
        self._pass: int | None = None  # the pass running now (sandwich)
        self._teacher: dict[str, Tensor] = {}
        self._distill_loss: Tensor | None = None
        self._hooked: nn.Module | None = None

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        (self._blocks,) = self.space.sample(1, seed=derive_seed(self.seed, STAGE_SAMPLE, step), sampling=self.sampling)
        supernet_of(model).set_allocation(self._blocks)
        if self.distill and self._hooked is not model:
            backbone = model.backbone
            assert isinstance(backbone, nn.Module), "a detector from build_supernet_detector has a backbone module"
            backbone.register_forward_hook(self._features)
            model.register_forward_hook(self._add_distill_loss)
            self._hooked = model

    def on_pass_start(self, step: int, index: int, model: nn.Module) -> None:
        if self.passes_per_step == 1:
            return
        self._pass = index
        supernet_of(model).set_allocation(self.extremes[index] if index < len(self.extremes) else self._blocks)

    def on_step_end(self, step: int, losses: dict[str, float]) -> None:
        self._pass, self._teacher, self._distill_loss = None, {}, None

    def _features(self, module: nn.Module, args: Any, output: dict[str, Tensor]) -> None:
        if self._pass is None or not module.training:
            return
        if self._pass == 0:
            self._teacher = {k: v.detach() for k, v in output.items()}
        else:
            self._distill_loss = torch.stack([relative_mse(v, self._teacher[k]) for k, v in output.items()]).mean()

    def _add_distill_loss(self, module: nn.Module, args: Any, output: Any) -> Any:
        loss, self._distill_loss = self._distill_loss, None
        if loss is None or not isinstance(output, dict):
            return None
        return {**output, "loss_distill": self.distill * loss}


class PathSampler:
    """Training callback: uniformly sampled dilations for the current allocation at every step, one per
    block for the whole batch (SPOS) or, with ``per_sample``, one per block and image (each block groups
    the batch by dilation: :func:`crnas.ops.per_sample_dilation_conv2d`)."""

    def __init__(self, seed: int, per_sample: bool = True) -> None:
        self.seed, self.per_sample = seed, per_sample

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        supernet = supernet_of(model)
        n = len(images) if self.per_sample else 1
        onehot = sample_paths(len(supernet.active_convs), n, len(supernet.dilations), seed=derive_seed(self.seed, PATH_SAMPLE, step))
        supernet.set_paths(choices_to_paths(onehot.argmax(-1).t()))


class DifferentiableSearch:
    """Training callback for the differentiable spatial mode (docs/design.md#differentiable-search).

    Holds ``alpha``, one row of logits per block over the dilations. Before every weight step it takes
    one first-order architecture step: the detection loss of an archval batch, computed with
    ``mix = softmax(alpha)`` through the fused convolution, updates ``alpha`` with Adam; the weight
    step then runs with the updated (detached) mix. ``architecture()`` is the argmax.
    """

    def __init__(
        self,
        archval: DetectionDataset,
        num_blocks: int,
        dilations: Sequence[int],
        *,
        batch_size: int = 2,
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.archval, self.batch_size, self.seed, self.device = archval, batch_size, seed, torch.device(device)
        self.dilations = tuple(dilations)
        self.alpha = torch.zeros(num_blocks, len(self.dilations), device=self.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.alpha], lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)

    def _val_batch(self, step: int) -> tuple[list[Tensor], list[dict[str, Any]]]:
        n = len(self.archval)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, ARCH_BATCH, step))
        picks = torch.randperm(n, generator=generator)[: self.batch_size].tolist()
        images, targets = collate_fn([self.archval.load(i) for i in picks])
        return [im.to(self.device) for im in images], [training_target(t, self.device) for t in targets]

    def on_step_start(self, step: int, images: list[Tensor], targets: list[dict[str, Any]], model: nn.Module) -> None:
        supernet = supernet_of(model)
        mix = torch.softmax(self.alpha, dim=-1)
        supernet.set_paths(list(mix))
        val_images, val_targets = self._val_batch(step)
        self.optimizer.zero_grad(set_to_none=True)
        losses = model(val_images, val_targets)
        loss = sum(losses.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"step {step}: the architecture loss is {value}")
        (grad,) = torch.autograd.grad(loss, [self.alpha])
        self.alpha.grad = grad
        self.optimizer.step()
        supernet.set_paths(list(torch.softmax(self.alpha, dim=-1).detach()))

    def probabilities(self) -> Tensor:
        return torch.softmax(self.alpha.detach(), dim=-1).cpu()

    def architecture(self) -> list[int]:
        """The argmax dilation of every block."""
        return [self.dilations[i] for i in self.probabilities().argmax(-1).tolist()]

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].to(self.alpha.device))
        self.optimizer.load_state_dict(state["optimizer"])
