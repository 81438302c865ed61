"""Reallocated ResNet / ResNeXt backbones, torchvision-compatible.

A ``CRResNet`` is built from an :class:`~crnas.Architecture` layout: any number of blocks per stage
and a dilation on each block's searched 3×3 convolution (``conv2``, padding = dilation; the strided
first block of a stage is searched too: docs/design.md#searched-convolution). Everything else is
torchvision's ResNet (V1.5: stride on the 3×3): the same module names (``conv1``, ``bn1``, ``relu``,
``maxpool``, ``layer1``..``layer4``, ``avgpool``, ``fc``), the ``inplanes`` attribute, the same
initialisation and state-dict keys, so torchvision's detection utilities and checkpoints work unchanged.
"""


from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from crnas.arch import Architecture
    from crnas.models.weights import InheritReport

__all__ = ["BasicBlock", "Bottleneck", "CRResNet", "zero_init_residual_"]

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution whose padding equals its dilation (the output size does not depend on it)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding=dilation, dilation=dilation, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet18's block with a dilated second 3×3.

    .. note:: torchvision's ``BasicBlock`` refuses dilation > 1; CR-NAS searches the dilation of the
       second 3×3 convolution of every BasicBlock, hence this class. Names match torchvision's.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (V1.5, stride on ``conv2``) with a dilated, possibly grouped ``conv2``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        width: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_block(spec: Mapping[str, Any], norm_layer: NormLayer) -> nn.Module:
    """One block from its layout entry (``crnas.Architecture.layout()``)."""
    out = spec["planes"] * (4 if spec["type"] == "bottleneck" else 1)
    downsample = None
    if spec["downsample"]:
        downsample = nn.Sequential(conv1x1(spec["inplanes"], out, spec["stride"]), norm_layer(out))
    if spec["type"] == "bottleneck":
        return Bottleneck(
            spec["inplanes"], spec["width"], spec["planes"], spec["stride"], downsample, spec["groups"], spec["dilation"], norm_layer
        )
    if spec["type"] == "basic":
        return BasicBlock(spec["inplanes"], spec["planes"], spec["stride"], downsample, spec["dilation"], norm_layer)
    raise ValueError(f"layout: expected ResNet blocks ('basic' or 'bottleneck'), got {spec['type']!r}")


def zero_init_residual_(module: nn.Module) -> None:
    """Zero the last norm's scale of every residual branch in ``module`` (``bn3`` of a
    :class:`Bottleneck`, ``bn2`` of a :class:`BasicBlock`), so each block starts as the identity."""
    for m in module.modules():
        if not isinstance(m, (Bottleneck, BasicBlock)):
            continue
        weight = getattr(m.bn3 if isinstance(m, Bottleneck) else m.bn2, "weight", None)
        if isinstance(weight, nn.Parameter):
            nn.init.constant_(weight, 0)


class CRResNet(nn.Module):
    """A ResNet/ResNeXt with any blocks per stage and a dilation per block.

    Args:
        layout: ``Architecture.layout()`` of a ResNet-series architecture (plain data, so a model can
            be rebuilt from a saved layout without the native core).
        norm_layer: normalisation constructor, e.g. ``torchvision.ops.FrozenBatchNorm2d``
            (default ``nn.BatchNorm2d``).
        num_classes: size of the ``fc`` classifier; ``None`` makes ``fc`` an ``nn.Identity`` (the model
            then returns pooled features), as a detection backbone needs.
        zero_init_residual: zero the last BN of each residual branch (torchvision's option).
    """


    def __init__(
        self,
        layout: Mapping[str, Any],
        norm_layer: NormLayer | None = None,
        num_classes: int | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if layout.get("stem", {}).get("type") != "resnet":
            raise ValueError(f"layout: expected a ResNet-series layout, got family {layout.get('family')!r}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self._norm_layer = norm_layer
        stem = layout["stem"]["channels"]
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages = [nn.Sequential(*(make_block(b, norm_layer) for b in blocks)) for blocks in layout["stages"]]
        if len(stages) != 4:
            raise ValueError(f"layout: expected 4 stages (C2..C5), got {len(stages)}")
        # assigned one by one (not add_module in a loop) so that each stage is a typed attribute
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool: nn.Module = nn.AdaptiveAvgPool2d((1, 1))
        #: Output channels of C2..C5 (what an FPN needs).
        self.stage_channels = list(layout["stage_channels"])
        #: torchvision's attribute: channels of the last stage (its detection utilities read it).
        self.inplanes = self.stage_channels[-1]
        self.fc: nn.Module = nn.Linear(self.inplanes, num_classes) if num_classes else nn.Identity()
        # Set by crnas.models.build (and, with weights_backbone, by the named builders); declared here for
        # type checkers only (annotations in a function body are not evaluated: no import at run time).
        self.architecture: Architecture
        self.meta: dict[str, Any]
        self.inherit_report: InheritReport

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            zero_init_residual_(self)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """C2..C5 feature maps ``[Tensor[N, C_i, H/2^(i+1), W/2^(i+1)]]``."""
        c2 = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)[-1]
        return self.fc(torch.flatten(self.avgpool(x), 1))
