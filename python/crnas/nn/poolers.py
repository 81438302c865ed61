"""``MultiScaleRoIAlign``: torchvision's pooler whose CPU path is :func:`crnas.ops.multiscale_roi_align`."""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor
from torchvision.ops import poolers

from crnas.ops.sparse_roi_align import fast_path, multiscale_roi_align

__all__ = ["MultiScaleRoIAlign"]


class MultiScaleRoIAlign(poolers.MultiScaleRoIAlign):
    """``torchvision.ops.MultiScaleRoIAlign`` (same arguments, levels, results and state dict) that, on
    CPU float tensors with a fixed ``sampling_ratio`` (torchvision's detectors use 2), pools every level
    in one sparse product (:func:`crnas.ops.multiscale_roi_align`; a CPU training step of the ``quality``
    preset's detector takes about a fifth less time, docs/benchmarks.md#roi-align). Elsewhere (CUDA,
    adaptive sampling, ONNX tracing, ``torch.compile``) it is torchvision's pooler, and TorchScript
    scripts torchvision's.
    ``crnas.build_detector``'s R-CNNs use it."""

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        levels = poolers._filter_input(x, self.featmap_names)
        if torchvision._is_tracing() or torch.compiler.is_compiling() or not fast_path(levels[0], self.sampling_ratio):
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:  # type: ignore[has-type]  # torchvision declares them in __annotations__
            self.scales, self.map_levels = poolers._setup_scales(levels, image_shapes, self.canonical_scale, self.canonical_level)
        rois = poolers._convert_to_roi_format(boxes)
        level_of = self.map_levels(boxes) if len(levels) > 1 else torch.zeros(rois.shape[0], dtype=torch.long)
        return multiscale_roi_align(levels, rois, level_of, self.scales, self.output_size, self.sampling_ratio)

    def __prepare_scriptable__(self) -> poolers.MultiScaleRoIAlign:
        """What ``torch.jit.script`` compiles: torchvision's pooler with the same settings and state."""
        plain = poolers.MultiScaleRoIAlign(
            self.featmap_names, self.output_size, self.sampling_ratio, canonical_scale=self.canonical_scale, canonical_level=self.canonical_level
        )
        plain.scales, plain.map_levels = self.scales, self.map_levels
        return plain
