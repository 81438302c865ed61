"""Tensor ops: the fused multi-dilation convolution, its one-dilation-per-image form at one
convolution's cost, its exact dense equivalent and the pure-PyTorch reference
(:mod:`crnas.ops.reference`); RoIAlign on the CPU as one sparse product (:mod:`crnas.ops.sparse_roi_align`)."""

from crnas.ops import reference
from crnas.ops.multi_dilation import (
    backward_macs,
    dense_equivalent,
    forward_macs,
    fvcore_handles,
    multi_dilation_conv2d,
    per_sample_dilation_conv2d,
)
from crnas.ops.sparse_roi_align import multiscale_roi_align, roi_align

__all__ = [
    "multi_dilation_conv2d",
    "per_sample_dilation_conv2d",
    "dense_equivalent",
    "forward_macs",
    "backward_macs",
    "fvcore_handles",
    "reference",
    "roi_align",
    "multiscale_roi_align",
]
