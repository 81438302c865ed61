"""Pure-PyTorch reference of the fused op: a sum of ordinary convolutions. Slow, obviously right."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["multi_dilation_conv2d"]


def multi_dilation_conv2d(
    input: Tensor,
    weight: Tensor,
    mix: Tensor,
    bias: Tensor | None = None,
    *,
    dilations: Sequence[int] = (1, 2, 3),
    stride: int = 1,
    groups: int = 1,
) -> Tensor:
    """``Σ_d mix[·, d] · conv2d(input, weight, stride, padding=d, dilation=d, groups) + bias``.

    Same arguments as :func:`crnas.ops.multi_dilation_conv2d`.
    """
    out: Tensor | None = None
    for i, d in enumerate(dilations):
        y = F.conv2d(input, weight, None, stride, d, d, groups)
        m = mix[i] if mix.dim() == 1 else mix[:, i].reshape(-1, 1, 1, 1)
        out = m * y if out is None else out + m * y
    assert out is not None, "dilations must not be empty"
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


