"""The model of an architecture: :func:`build`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from crnas import flops
from crnas.arch import MACS_INPUT_SIZE, ArchLike, get_architecture
from crnas.models.mobilenetv2 import CRMobileNetV2
from crnas.models.resnet import CRResNet

__all__ = ["build"]


def build(arch: ArchLike, *, norm_layer: Callable[[int], nn.Module] | None = None, num_classes: int | None = None) -> CRResNet | CRMobileNetV2:
    """The model of an architecture (anything :func:`crnas.arch.get_architecture` accepts).

    ResNet-series families give a :class:`CRResNet`, MobileNetV2 a :class:`CRMobileNetV2`; both contain
    only standard PyTorch layers. The model carries ``model.architecture`` and ``model.meta``
    (``num_params``; ``_ops``: GMACs at 224×224 with a 1000-class classifier, torchvision's
    convention; ``allocation``; ``dilations``).
    """
    arch = get_architecture(arch)
    layout = arch.layout()
    model: CRResNet | CRMobileNetV2
    if arch.family == "mobilenet_v2":
        model = CRMobileNetV2(layout, norm_layer=norm_layer, num_classes=num_classes)
    else:
        model = CRResNet(layout, norm_layer=norm_layer, num_classes=num_classes)
    model.architecture = arch
    model.meta = {
        "architecture": arch.to_json(),
        "allocation": arch.blocks,
        "dilations": arch.stage_dilations,
        "num_params": sum(p.numel() for p in model.parameters()),
        "gmacs_224": round(flops.count(arch, 224, classifier=False).macs / 1e9, 3),
        "gmacs_faster_rcnn_800x1088": round(flops.count(arch, MACS_INPUT_SIZE, "faster_rcnn_fpn").macs / 1e9, 1),
    }
    return model
