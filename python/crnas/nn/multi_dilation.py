"""``MultiDilationConv2d``: a 3×3 convolution whose one kernel is applied at several dilations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crnas.ops import multi_dilation_conv2d, per_sample_dilation_conv2d

__all__ = ["MultiDilationConv2d"]


class MultiDilationConv2d(nn.Module):
    """3×3 convolution with one kernel shared by ``dilations`` (TridentNet-style), mixed by ``mix``.

    ``forward(input, mix)`` returns ``Σ_d mix[·, d] · conv2d(input, weight, padding=d, dilation=d)``
    (+ bias) through :func:`crnas.ops.multi_dilation_conv2d`. A floating-point ``mix`` is ``[D]`` or
    ``[N, D]`` (softmax rows relax the choice); an integer ``mix`` ``[N]`` holds each image's dilation
    index (one path per image) and runs :func:`crnas.ops.per_sample_dilation_conv2d`, the batch grouped
    by dilation at one convolution's cost.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        dilations (sequence of int): candidate dilations (padding = dilation). Default ``(1, 2, 3)``.
        stride (int): stride. Default 1.
        groups (int): blocked connections, as in :class:`torch.nn.Conv2d`. Default 1.
        bias (bool): add a learnable bias. Default ``False`` (a BatchNorm usually follows).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (1, 2, 3),
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups: expected a divisor of in_channels ({in_channels}) and out_channels ({out_channels}), got {groups}"
            )
        if len(dilations) == 0 or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(f"dilations: expected a non-empty sequence of ints >= 1, got {list(dilations)}")
        if stride < 1:
            raise ValueError(f"stride: expected an int >= 1, got {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dilations = tuple(int(d) for d in dilations)
        self.stride = stride
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same initialisation as :class:`torch.nn.Conv2d`."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor, mix: Tensor) -> Tensor:
        if isinstance(mix, Tensor) and not mix.is_floating_point():
            return per_sample_dilation_conv2d(
                input, self.weight, mix, self.bias, dilations=self.dilations, stride=self.stride, groups=self.groups
            )
        return multi_dilation_conv2d(
            input, self.weight, mix, self.bias, dilations=self.dilations, stride=self.stride, groups=self.groups
        )

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, dilations={self.dilations}"
        if self.stride != 1:
            s += f", stride={self.stride}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
