"""FLOPs accountant: analytic MACs and parameters of an :class:`~crnas.Architecture`.

Convention (docs/flops.md): multiply-accumulates of convolutions and linear layers, output sizes
exactly as PyTorch computes them; BatchNorm, activations, pooling and additions are free.
Detectors are counted whole, without RoIAlign, on the input padded to a multiple of
``size_divisible``; the defaults (2000 RoIs, 81 classes) reproduce the paper's Faster R-CNN + FPN
figures at 800×1088 (ResNet50 192.5 G, MobileNetV2 121.1 G) within 1%.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from crnas._native import core
from crnas.arch import CONVENTION, DETECTORS, Architecture

if TYPE_CHECKING:
    from crnas._core import FlopsReport

__all__ = ["count", "count_many", "CONVENTION", "DETECTORS", "FlopsReport"]


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        return (input_size, input_size)
    if isinstance(input_size, (str, bytes)) or not isinstance(input_size, Sequence) or len(input_size) != 2:
        raise ValueError(f"input_size: expected an int or (H, W), got {input_size!r}")
    h, w = input_size
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w)):
        raise ValueError(f"input_size: expected (H, W) with positive integers, got {tuple(input_size)!r}")
    return (h, w)


def count(
    arch: Architecture,
    input_size: int | Sequence[int] = (224, 224),
    detector: str | None = None,
    **convention: int | bool | None,
) -> FlopsReport:
    """MACs and parameters of ``arch`` at ``input_size`` (H, W), alone or inside ``detector``.

    Args:
        arch: the architecture.
        input_size: ``(H, W)`` or one int for a square input.
        detector: ``None`` (backbone, plus the 1000-class classifier unless ``classifier=False``)
            or one of :data:`crnas.arch.DETECTORS`.
        **convention: :data:`crnas.arch.CONVENTION` keys (``num_classes``, ``rois``, ``mask_rois``,
            ``size_divisible``, ``fpn_channels``, ``representation_size``, ``classifier``); ``None``
            keeps the default.

    Returns:
        a :class:`FlopsReport` with ``.macs``, ``.params``, ``.by_stage``, ``.layers`` and ``.table()``.
    """
    return core().flops_count(arch, _size(input_size), detector, convention)


def count_many(
    archs: Iterable[Architecture],
    input_size: int | Sequence[int] = (224, 224),
    detector: str | None = None,
    **convention: int | bool | None,
) -> np.ndarray:
    """Total MACs of many architectures, computed in parallel by the native core: ``uint64[len(archs)]``."""
    return core().flops_count_many(list(archs), _size(input_size), detector, convention)


def __getattr__(name: str):
    if name == "FlopsReport":
        return core().FlopsReport
    raise AttributeError(f"module 'crnas.flops' has no attribute {name!r}")
