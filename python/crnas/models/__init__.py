"""CR backbones built from an :class:`~crnas.Architecture` (torchvision-compatible, standard layers only)."""

from crnas.models.mobilenetv2 import CRMobileNetV2, InvertedResidual
from crnas.models.registry import (
    MODELS,
    PAPER_ARCHITECTURES,
    STAGE_STRIDES,
    CRResNet50,
    MobileNetV2,
    ResNet18,
    ResNet50,
    ResNet101,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
    SCRResNet50,
    build,
    from_json,
    get_architecture,
    get_model,
    list_models,
)
from crnas.models.resnet import BasicBlock, Bottleneck, CRResNet

__all__ = [
    "build",
    "from_json",
    "get_architecture",
    "get_model",
    "list_models",
    "MODELS",
    "PAPER_ARCHITECTURES",
    "STAGE_STRIDES",
    "CRResNet",
    "CRMobileNetV2",
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "ResNet18",
    "ResNet50",
    "ResNet101",
    "ResNeXt50_32x4d",
    "ResNeXt101_32x4d",
    "MobileNetV2",
    "SCRResNet50",
    "CRResNet50",
]
