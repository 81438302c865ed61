"""crnas: CR-NAS (Computation Reallocation for Object Detection, ICLR 2020) for PyTorch.

https://arxiv.org/abs/1912.11234
"""

import torch  # noqa: F401  (libtorch must be loaded before the native core)

from crnas._native import NativeCoreUnavailable, native_available
from crnas import nn, ops

__version__ = "0.1.0"

__all__ = ["NativeCoreUnavailable", "native_available", "nn", "ops", "__version__"]
