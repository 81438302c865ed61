"""CR backbones built from an :class:`~crnas.Architecture` (torchvision-compatible, standard layers only),
and the initialisation of reallocated backbones from pretrained weights (:mod:`crnas.models.weights`)."""

from crnas.arch import get_architecture
from crnas.models.builder import build
from crnas.models.mobilenetv2 import CRMobileNetV2, InvertedResidual
from crnas.models.registry import (
    MODELS,
    STAGE_STRIDES,
    CRResNet50,
    MobileNetV2,
    ResNet18,
    ResNet50,
    ResNet101,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
    SCRResNet50,
    from_json,
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
