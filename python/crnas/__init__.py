"""crnas: CR-NAS (Computation Reallocation for Object Detection, ICLR 2020) for PyTorch.

https://arxiv.org/abs/1912.11234
"""

import torch  # noqa: F401  (libtorch must be loaded before the native core)

from crnas import models, nn, ops
from crnas._native import NativeCoreUnavailable, native_available
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
from crnas.space import sample_paths

__version__ = "0.1.0"

#: Classes defined by the native core; resolved on first use so ``import crnas`` never needs it.
_NATIVE_CLASSES = ("Architecture", "StageSpace")

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
    "models",
    "NativeCoreUnavailable",
    "native_available",
    "nn",
    "ops",
    "__version__",
]


def __getattr__(name: str):
    if name in _NATIVE_CLASSES:
        from crnas._native import core

        return getattr(core(), name)
    raise AttributeError(f"module 'crnas' has no attribute {name!r}")
