"""Reallocated MobileNetV2 backbones, torchvision-compatible.

Same ``features`` / ``classifier`` layout and module names as ``torchvision.models.mobilenet_v2``
(so torchvision checkpoints and ``mobilenet_backbone``-style utilities apply): inverted residual
blocks expose ``_is_cn`` (stride > 1) and ``out_channels``. The depthwise 3×3 carries the searched
dilation (padding = dilation; docs/design.md#searched-convolution). Stages follow the output stride:
C2 = 24 channels, C3 = 32, C4 = 64 + 96, C5 = 160 + 320 and the final 1×1 convolution
(``features[-1]``).
"""


from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

if TYPE_CHECKING:
    from crnas.arch import Architecture
    from crnas.models.weights import InheritReport

__all__ = ["InvertedResidual", "CRMobileNetV2"]

NormLayer = Callable[[int], nn.Module]


class InvertedResidual(nn.Module):
    """torchvision's inverted residual with a dilated depthwise 3×3."""

    def __init__(self, inp: int, hidden: int, oup: int, stride: int, dilation: int = 1, norm_layer: NormLayer | None = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if hidden != inp:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(
                hidden, hidden, stride=stride, groups=hidden, dilation=dilation, norm_layer=norm_layer, activation_layer=nn.ReLU6
            ),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def _block(spec: Mapping[str, Any], norm_layer: NormLayer) -> InvertedResidual:
    if spec["type"] != "inverted_residual":
        raise ValueError(f"layout: expected MobileNetV2 blocks ('inverted_residual'), got {spec['type']!r}")
    return InvertedResidual(spec["inp"], spec["hidden"], spec["oup"], spec["stride"], spec["dilation"], norm_layer)


class CRMobileNetV2(nn.Module):
    """A MobileNetV2 with any blocks per stage and a dilation per depthwise convolution.

    Args:
        layout: ``Architecture.layout()`` of a ``mobilenet_v2`` architecture.
        norm_layer: normalisation constructor (default ``nn.BatchNorm2d``).
        num_classes: classifier size; ``None`` makes ``classifier`` an ``nn.Identity``.
        dropout: dropout before the classifier (torchvision's 0.2).
    """


    def __init__(
        self, layout: Mapping[str, Any], norm_layer: NormLayer | None = None, num_classes: int | None = None, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if layout.get("stem", {}).get("type") != "mobilenet_v2":
            raise ValueError(f"layout: expected a MobileNetV2 layout, got family {layout.get('family')!r}")
        norm_layer = norm_layer or nn.BatchNorm2d
        stem = layout["stem"]
        features: list[nn.Module] = [
            Conv2dNormActivation(3, stem["channels"], stride=2, norm_layer=norm_layer, activation_layer=nn.ReLU6),
            _block(stem["first"], norm_layer),
        ]
        ends = []
        for blocks in layout["stages"]:
            features += [_block(b, norm_layer) for b in blocks]
            ends.append(len(features) - 1)
        cin, last = layout["last_conv"]
        features.append(Conv2dNormActivation(cin, last, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6))
        ends[-1] = len(features) - 1
        self.features = nn.Sequential(*features)
        #: Index in ``features`` of the last module of each stage C2..C5.
        self.stage_ends = ends
        #: Output channels of C2..C5.
        self.stage_channels = list(layout["stage_channels"])
        self.last_channel = last
        self.classifier: nn.Module = (
            nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes)) if num_classes else nn.Identity()
        )
        # Set by crnas.models.build (and, with weights_backbone, by the named builders); declared here for
        # type checkers only (annotations in a function body are not evaluated: no import at run time).
        self.architecture: Architecture
        self.meta: dict[str, Any]
        self.inherit_report: InheritReport

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """C2..C5 feature maps (C5 after the final 1×1 convolution)."""
        features = []
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.stage_ends:
                features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))
