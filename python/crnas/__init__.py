"""crnas: CR-NAS (Computation Reallocation for Object Detection, ICLR 2020) for PyTorch.

https://arxiv.org/abs/1912.11234
"""

import torch  # noqa: F401  (libtorch must be loaded before the native core)

from crnas import arch, models, nn, ops
from crnas._native import NativeCoreUnavailable, native_available
from crnas.arch import Architecture, StageSpace
from crnas.models import (
    CRResNet50,
    MobileNetV2,
    ResNet18,
    ResNet50,
    ResNet101,
    ResNeXt50_32x4d,
    ResNeXt101_32x4d,
    SCRResNet50,
)
from crnas.sampling import sample_paths

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "StageSpace",
    "CRResNet50",
    "SCRResNet50",
    "ResNet18",
    "ResNet50",
    "ResNet101",
    "ResNeXt50_32x4d",
    "ResNeXt101_32x4d",
    "MobileNetV2",
    "sample_paths",
    "arch",
    "models",
    "NativeCoreUnavailable",
    "native_available",
    "nn",
    "ops",
    "__version__",
]

