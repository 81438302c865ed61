"""Pretrained initialisation of reallocated backbones from a checkpoint of the same family.

Rule (:func:`inherit`). Tensors are matched by module path after mapping blocks. A *run* is a
sequence of blocks that starts where the resolution or the width changes: a ResNet stage, or one
channel group of a MobileNetV2 stage.

- The stem, MobileNetV2's final 1×1 convolution and the classifier map to their counterparts.
- Block ``j`` of a run maps to the source run's block ``j`` when it exists (the first, strided block
  always does). A run longer than the source's repeats the source's non-first blocks cyclically
  (``1, 2, …, S-1, 1, 2, …``: they all have a non-first block's shape); if the source run has one
  block only, the extra blocks keep their initialisation.
- Source blocks the target does not have are reported unused.
- A tensor is copied only if the shapes agree (another width or class count leaves it at init).
  Replicated blocks and kernels that now run at another dilation (dilation adds no weights) are
  copied unchanged and reported as *adapted*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from crnas.arch import ArchLike, get_architecture
from crnas.models.builder import build
from crnas.models.mobilenetv2 import CRMobileNetV2
from crnas.models.resnet import CRResNet

__all__ = ["inherit", "InheritReport", "torchvision_state_dict", "TORCHVISION_NAMES"]

#: torchvision model names of the families that have ImageNet weights there.
TORCHVISION_NAMES = {
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnext50_32x4d": "resnext50_32x4d",
    "mobilenet_v2": "mobilenet_v2",
}


@dataclass
class InheritReport:
    """What :func:`inherit` did with each tensor (state-dict keys of the target / the source)."""

    copied: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    initialised: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"InheritReport: {len(self.copied)} tensors copied, {len(self.adapted)} adapted, "
            f"{len(self.initialised)} left at initialisation, {len(self.unused)} source tensors unused"
        )


def _structure(model: nn.Module) -> tuple[list[list[str]], dict[str, str]]:
    """Runs of block prefixes, and the other module prefixes by role."""
    if isinstance(model, CRResNet):
        stages = (model.layer1, model.layer2, model.layer3, model.layer4)
        runs = [[f"layer{i}.{j}." for j in range(len(stage))] for i, stage in enumerate(stages, start=1)]
        return runs, {"stem": "conv1.", "stem_norm": "bn1.", "classifier": "fc."}
    if isinstance(model, CRMobileNetV2):
        runs = []
        previous = None
        last = len(model.features) - 1
        for idx in range(2, last):
            block = model.features[idx]
            if previous is None or block._is_cn or block.out_channels != previous:
                runs.append([])
            runs[-1].append(f"features.{idx}.")
            previous = block.out_channels
        return runs, {"stem": "features.0.", "first": "features.1.", "last": f"features.{last}.", "classifier": "classifier."}
    raise TypeError(f"model: expected a CRResNet or CRMobileNetV2 (crnas.models.build), got {type(model).__name__}")


def _prefix_map(target: nn.Module, source: nn.Module) -> dict[str, tuple[str, str | None]]:
    """Target prefix -> (source prefix, reason it is adapted or None)."""
    t_runs, t_fixed = _structure(target)
    s_runs, s_fixed = _structure(source)
    mapping: dict[str, tuple[str, str | None]] = {t_fixed[k]: (s_fixed[k], None) for k in t_fixed}
    for t_run, s_run in zip(t_runs, s_runs):
        for j, prefix in enumerate(t_run):
            if j < len(s_run):
                mapping[prefix] = (s_run[j], None)
            elif len(s_run) > 1:
                k = 1 + (j - 1) % (len(s_run) - 1)
                mapping[prefix] = (s_run[k], f"replicated from {s_run[k][:-1]}")
    return mapping


def _dilations(model: nn.Module) -> dict[str, int]:
    return {f"{name}.": m.dilation[0] for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.dilation[0] != 1}


def inherit(model: nn.Module, source_state_dict: Mapping[str, Tensor], *, source_arch: ArchLike | None = None) -> InheritReport:
    """Initialise ``model`` (built by :func:`crnas.models.build`) from ``source_state_dict``, a
    checkpoint of the same family: by default torchvision's network (``source_arch`` is the family's
    baseline at the model's width; pass another architecture for other checkpoints). Modifies
    ``model`` in place and returns what was copied, adapted, left at initialisation and unused.
    """
    arch = getattr(model, "architecture", None)
    if arch is None:
        raise TypeError("model: expected a model from crnas.models.build (it carries .architecture), got one without")
    if not isinstance(source_state_dict, Mapping):
        raise TypeError(f"source_state_dict: expected a mapping of tensors, got {type(source_state_dict).__name__}")
    source_arch = get_architecture(source_arch) if source_arch is not None else get_architecture(arch.family, width=arch.width)
    if source_arch.family != arch.family:
        raise ValueError(f"source_arch: expected the model's family {arch.family!r}, got {source_arch.family!r}")
    with torch.device("meta"):
        skeleton = build(source_arch, num_classes=1000)
    mapping = _prefix_map(model, skeleton)
    longest_first = sorted(mapping, key=len, reverse=True)
    dilated = _dilations(model)

    report = InheritReport()
    used: set[str] = set()
    target = model.state_dict()
    updates: dict[str, Tensor] = {}
    for key, tensor in target.items():
        if key.endswith("num_batches_tracked"):  # bookkeeping, not weights: keep the target's
            continue
        prefix = next((p for p in longest_first if key.startswith(p)), None)
        if prefix is None:
            report.initialised[key] = "no counterpart in the source"
            continue
        src_prefix, reason = mapping[prefix]
        src_key = src_prefix + key[len(prefix):]
        src = source_state_dict.get(src_key)
        if src is None:
            report.initialised[key] = f"{src_key} missing from the source"
            continue
        if src.shape != tensor.shape:
            report.initialised[key] = f"shape {list(src.shape)} of {src_key} differs from {list(tensor.shape)}"
            continue
        updates[key] = src
        used.add(src_key)
        module = key.rsplit(".", 1)[0] + "."
        notes = [r for r in (reason, f"dilation {dilated[module]}" if module in dilated and key.endswith("weight") else None) if r]
        if notes:
            report.adapted[key] = ", ".join(notes)
        else:
            report.copied.append(key)
    with torch.no_grad():
        for key, value in updates.items():
            target[key].copy_(value)
    report.unused = sorted(k for k in source_state_dict if k not in used and not k.endswith("num_batches_tracked"))
    return report


def torchvision_state_dict(family: str, weights: Any = "torchvision", *, progress: bool = True) -> Mapping[str, Tensor]:
    """A state dict for :func:`inherit`: ``"torchvision"`` (the family's default ImageNet weights,
    through torchvision's download cache), a torchvision ``WeightsEnum`` member, a path to a
    ``torch.save``-d state dict (or a checkpoint holding one under ``state_dict``/``model``), or a
    state dict."""
    if isinstance(weights, Mapping):
        return weights
    if isinstance(weights, (str, os.PathLike)) and weights != "torchvision":
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights_backbone: expected 'torchvision', a WeightsEnum or a state-dict file, got {str(weights)!r} (no such file)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
                state = state[key]
        return state
    import torchvision

    if weights == "torchvision":
        if family not in TORCHVISION_NAMES:
            raise ValueError(f"weights_backbone: torchvision publishes no ImageNet weights for {family}")
        weights = torchvision.models.get_model_weights(TORCHVISION_NAMES[family]).DEFAULT
    if isinstance(weights, torchvision.models.WeightsEnum):
        return weights.get_state_dict(progress=progress, check_hash=True)
    raise TypeError(f"weights_backbone: expected 'torchvision', a WeightsEnum, a path or a state dict, got {type(weights).__name__}")
