"""Modules: :class:`MultiDilationConv2d`."""

from crnas.nn.multi_dilation import MultiDilationConv2d

__all__ = ["MultiDilationConv2d"]
