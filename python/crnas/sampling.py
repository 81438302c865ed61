"""Dilation-path sampling: the per-sample ``mix`` of the fused convolution in a single-path supernet."""

from __future__ import annotations

import torch
from torch import Tensor

from crnas._native import core
from crnas.arch import DILATIONS

__all__ = ["sample_paths"]


def sample_paths(
    num_blocks: int,
    batch_size: int,
    num_choices: int | None = None,
    *,
    seed: int = 0,
    logits: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """One-hot dilation choices ``Tensor[num_blocks, batch_size, num_choices]`` (float32) on ``device``.

    ``num_choices`` defaults to the number of :data:`crnas.arch.DILATIONS`. Uniform over the choices,
    or drawn from ``softmax(logits)`` with ``logits`` of shape ``[num_blocks, num_choices]`` (shared by
    the batch) or ``[num_blocks, batch_size, num_choices]``. Row ``b`` is the ``mix`` of block ``b``'s
    fused convolution: one path per sample. Reproducible from ``seed`` on every device.
    """
    if num_choices is None:
        num_choices = len(DILATIONS)
    for name, value, minimum in (("num_blocks", num_blocks, 0), ("batch_size", batch_size, 0), ("num_choices", num_choices, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an int in [0, 2**64), got {seed!r}")
    if logits is not None and not isinstance(logits, Tensor):
        raise TypeError(f"logits: expected a torch.Tensor or None, got {type(logits).__name__}")
    return core().sample_paths(num_blocks, batch_size, num_choices, seed, logits, str(torch.device(device)))
