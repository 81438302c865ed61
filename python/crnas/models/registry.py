"""Building models from architectures, and the named models.

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
from typing import TYPE_CHECKING, Any

from torch import nn

from crnas.models.mobilenetv2 import CRMobileNetV2
from crnas.models.resnet import CRResNet

if TYPE_CHECKING:
    from crnas._core import Architecture

__all__ = [
    "build",
    "from_json",
    "get_architecture",
    "list_models",
    "get_model",
    "MODELS",
    "PAPER_ARCHITECTURES",
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

#: Architectures published in the paper (Fig. 4), by name.
PAPER_ARCHITECTURES = ("scr_resnet50", "cr_resnet50")
#: Output stride of C2..C5 (the same for every CR architecture: reallocation moves blocks and
#: dilations, never strides).
STAGE_STRIDES = (4, 8, 16, 32)
FAMILIES = ("resnet18", "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x4d", "mobilenet_v2")


def _architecture_class():
    from crnas._native import core

    return core().Architecture


def get_architecture(spec: Any) -> Architecture:
    """An :class:`~crnas.Architecture` from an instance, a name (a family's baseline such as
    ``"resnet50"``, or ``"scr_resnet50"`` / ``"cr_resnet50"``), JSON text, a JSON dict, or the path of
    an architecture JSON or a search ``result.json``."""
    Architecture = _architecture_class()
    if isinstance(spec, Architecture):
        return spec
    if isinstance(spec, dict):
        return Architecture.from_json(json.dumps(spec.get("architecture", spec)))
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec)
        if text in PAPER_ARCHITECTURES:
            return Architecture.paper(text)
        if text in FAMILIES:
            return Architecture.baseline(text)
        if text.lstrip().startswith("{"):
            return get_architecture(json.loads(text))
        path = Path(text)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: expected an architecture or result JSON, got invalid JSON ({err})") from None
            return get_architecture(data)
        names = ", ".join(FAMILIES + PAPER_ARCHITECTURES)
        raise ValueError(f"arch: expected an Architecture, one of {names}, JSON or a JSON file, got {text!r}")
    raise TypeError(f"arch: expected an Architecture, a name, JSON or a path, got {type(spec).__name__}")


def build(arch: Any, *, norm_layer: Callable[[int], nn.Module] | None = None, num_classes: int | None = None) -> nn.Module:
    """The model of an architecture (or anything :func:`get_architecture` accepts).

    ResNet-series families give a :class:`CRResNet`, MobileNetV2 a :class:`CRMobileNetV2`; both contain
    only standard PyTorch layers. The model carries ``model.architecture`` and ``model.meta``
    (``num_params``; ``_ops``: GMACs at 224×224 with a 1000-class classifier, torchvision's
    convention; ``allocation``; ``dilations``).
    """
    from crnas import flops

    arch = get_architecture(arch)
    layout = arch.layout()
    cls = CRMobileNetV2 if arch.family == "mobilenet_v2" else CRResNet
    model = cls(layout, norm_layer=norm_layer, num_classes=num_classes)
    model.architecture = arch
    model.meta = {
        "architecture": arch.to_json(),
        "allocation": arch.blocks,
        "dilations": arch.stage_dilations,
        "num_params": sum(p.numel() for p in model.parameters()),
        "gmacs_224": round(flops.count(arch, 224, classifier=False).macs / 1e9, 3),
        "gmacs_faster_rcnn_800x1088": round(flops.count(arch, (800, 1088), "faster_rcnn_fpn").macs / 1e9, 1),
    }
    return model


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
        arch = get_architecture(arch_name)
        if width != 1.0:
            arch = arch.replace(width=width)
        model = build(arch, norm_layer=norm_layer, num_classes=num_classes)
        if weights_backbone is not None:
            from crnas.weights import inherit, torchvision_state_dict

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
