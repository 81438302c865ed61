"""Modules: :class:`MultiDilationConv2d`, :class:`MultiScaleRoIAlign`."""

from crnas.nn.multi_dilation import MultiDilationConv2d
from crnas.nn.poolers import MultiScaleRoIAlign

__all__ = ["MultiDilationConv2d", "MultiScaleRoIAlign"]
