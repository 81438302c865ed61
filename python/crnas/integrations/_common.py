"""Helpers shared by the framework adapters; imports no framework."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from torch import Tensor, nn

from crnas.arch import Architecture, ArchLike, get_architecture
from crnas.models import build
from crnas.models.weights import InheritReport, inherit, torchvision_state_dict


def architecture(arch: ArchLike, width: float | None = None, *, resnet_only: bool = False, hint: str = "") -> Architecture:
    """:func:`crnas.arch.get_architecture` ``(arch, width=width)``, refusing MobileNetV2 when
    ``resnet_only`` (``hint`` ends the message)."""
    arch = get_architecture(arch, width=width)
    if resnet_only and arch.family == "mobilenet_v2":
        raise ValueError(f"arch: expected a ResNet-series architecture, got family 'mobilenet_v2'{hint}")
    return arch


def stem_conv(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """``conv``, or a freshly initialised copy of it taking ``in_chans`` input channels."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans: expected a positive int, got {in_chans!r}")
    if in_chans == conv.in_channels:
        return conv
    # torch types a Conv2d's attributes as tuple[int, ...] and its constructor's as tuple[int, int]:
    # the same pairs
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        cast(tuple[int, int], conv.kernel_size),
        cast(tuple[int, int], conv.stride),
        cast("str | tuple[int, int]", conv.padding),
        cast(tuple[int, int], conv.dilation),
        conv.groups,
        bias=conv.bias is not None,
    )
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new


def inherited_state_dict(
    arch: ArchLike, weights: Any = "torchvision", *, progress: bool = True
) -> tuple[dict[str, Tensor], InheritReport]:
    """The backbone state dict (torchvision key names, no classifier) of ``arch`` initialised from
    ``weights`` with :func:`crnas.weights.inherit`, and the inheritance report."""
    arch = get_architecture(arch)
    model = build(arch)
    source: Mapping[str, Tensor] = torchvision_state_dict(arch.family, weights, progress=progress)
    report = inherit(model, source)
    return dict(model.state_dict()), report
