"""The named models, and the model of a search's ``result.json``.

Named models come in two kinds (docs/design.md#published-architectures):
- the paper's published architectures, ``SCRResNet50`` and ``CRResNet50``;
- the reallocatable baselines (torchvision's networks): ``ResNet18``, ``ResNet50``, ``ResNet101``,
  ``ResNeXt50_32x4d``, ``ResNeXt101_32x4d``, ``MobileNetV2``.
CR variants of other families are not in the paper's text; crnas's search produces them, and
``from_json`` builds them from its ``result.json`` together with where they came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from crnas.arch import get_architecture
from crnas.models.builder import build
from crnas.models.weights import inherit, torchvision_state_dict

__all__ = [
    "from_json",
    "list_models",
    "get_model",
    "MODELS",
    "STAGE_STRIDES",
    "ResNet18",
    "ResNet50",
    "ResNet101",
    "ResNeXt50_32x4d",
    "ResNeXt101_32x4d",
    "MobileNetV2",
    "SCRResNet50",
    "CRResNet50",
]

#: Output stride of C2..C5 (the same for every CR architecture: reallocation moves blocks and
#: dilations, never strides).
STAGE_STRIDES = (4, 8, 16, 32)


def from_json(path_or_str: str | os.PathLike) -> nn.Module:
    """Build a searched architecture from ``result.json`` (or an architecture JSON), path or text.

    ``model.meta["provenance"]`` holds what the result says about its search (data, budget, seeds).
    """
    text = str(path_or_str)
    data = json.loads(text) if text.lstrip().startswith("{") else json.loads(Path(text).read_text())
    model = build(get_architecture(data))
    if "architecture" in data:
        model.meta["provenance"] = {k: v for k, v in data.items() if k not in ("architecture", "candidates")}
    return model


def _check_weights(name: str, weights: Any) -> None:
    if weights is not None:
        raise ValueError(
            f"weights: expected None (no pretrained {name} weights are published; pass "
            f"weights_backbone='torchvision' to initialise from torchvision's ImageNet weights), got {weights!r}"
        )


def _named(name: str, arch_name: str, doc: str) -> Callable[..., nn.Module]:
    def builder(
        *,
        weights: None = None,
        weights_backbone: Any = None,
        norm_layer: Callable[[int], nn.Module] | None = None,
        num_classes: int | None = None,
        width: float = 1.0,
        progress: bool = True,
    ) -> nn.Module:
        _check_weights(name, weights)
        arch = get_architecture(arch_name, width=width)
        model = build(arch, norm_layer=norm_layer, num_classes=num_classes)
        if weights_backbone is not None:
            model.inherit_report = inherit(model, torchvision_state_dict(arch.family, weights_backbone, progress=progress))
        return model

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"""{doc}

    Args:
        weights: must be ``None``: no pretrained weights of this architecture are published.
        weights_backbone: ``"torchvision"`` (the family's default ImageNet weights from torchvision's
            cache), a torchvision ``WeightsEnum`` member, or a path to a state dict; inherited with
            :func:`crnas.weights.inherit` (the report is ``model.inherit_report``).
        norm_layer: normalisation constructor (default ``nn.BatchNorm2d``).
        num_classes: classifier size, or ``None`` for a backbone (``fc`` is ``nn.Identity``).
        width: channel multiplier (1.0 is the paper's network).
        progress: show the download progress of ``weights_backbone``.
    """
    return builder


ResNet18 = _named("ResNet18", "resnet18", "ResNet18 as a reallocatable family ([2, 2, 2, 2], torchvision's).")
ResNet50 = _named("ResNet50", "resnet50", "ResNet50 as a reallocatable family ([3, 4, 6, 3], torchvision's).")
ResNet101 = _named("ResNet101", "resnet101", "ResNet101 as a reallocatable family ([3, 4, 23, 3], torchvision's).")
ResNeXt50_32x4d = _named("ResNeXt50_32x4d", "resnext50_32x4d", "ResNeXt50-32x4d as a reallocatable family (torchvision's).")
ResNeXt101_32x4d = _named(
    "ResNeXt101_32x4d", "resnext101_32x4d", "ResNeXt101-32x4d ([3, 4, 23, 3], 32 groups of width 4; the paper's ReX101)."
)
MobileNetV2 = _named("MobileNetV2", "mobilenet_v2", "MobileNetV2 as a reallocatable family (stages by output stride, docs/design.md#families).")
SCRResNet50 = _named(
    "SCRResNet50", "scr_resnet50", "SCR-ResNet50 (the paper's stage reallocation [1, 3, 5, 7], Fig. 4; arXiv:1912.11234)."
)
CRResNet50 = _named(
    "CRResNet50",
    "cr_resnet50",
    "CR-ResNet50 (the paper's stage + dilation reallocation, Fig. 4; arXiv:1912.11234): blocks [1, 3, 5, 7],\n"
    "    dilations 1 | 1 2 1 | 1 1 2 3 1 | 1 2 1 3 2 2 3.",
)

#: Named model builders by lower-case name.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "resnet101": ResNet101,
    "resnext50_32x4d": ResNeXt50_32x4d,
    "resnext101_32x4d": ResNeXt101_32x4d,
    "mobilenet_v2": MobileNetV2,
    "scr_resnet50": SCRResNet50,
    "cr_resnet50": CRResNet50,
}


def list_models() -> list[str]:
    return list(MODELS)


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a named model (see :func:`list_models`)."""
    if name not in MODELS:
        raise ValueError(f"name: expected one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)
