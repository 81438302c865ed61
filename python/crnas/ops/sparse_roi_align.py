"""RoIAlign on the CPU as one sparse matrix product, for every pyramid level at once.

torchvision's CPU kernel walks every (RoI, channel, bin, sample) and, in the backward, recomputes the
bilinear weights for each channel and scatters one value at a time; a CPU training step of the demo's
Faster R-CNN spends about a quarter of its time there (docs/benchmarks.md#roi-align). Here the weights
are computed once per (RoI, bin, sample) as the rows of a sparse matrix ``S`` (RoI bins × feature
positions of all levels, ``4 · grid²`` entries per row): the forward is ``S @ F`` and the backward
``Sᵀ @ G``, with ``F`` the levels' features laid out channels-last, so each entry moves a whole
channel vector. Same sampling, same values as torchvision's kernel up to float rounding (its
``roi_align`` is the reference, tests/ops/test_sparse_roi_align.py), deterministic, and only where it
applies (:func:`fast_path`): CPU tensors of float32/float64, a fixed ``sampling_ratio > 0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops._utils import convert_boxes_to_roi_format

__all__ = ["roi_align", "multiscale_roi_align", "fast_path"]


def fast_path(input: Tensor, sampling_ratio: int) -> bool:
    """Whether the sparse CPU implementation applies: a CPU float32/float64 tensor and a fixed
    ``sampling_ratio > 0`` (torchvision's detectors use 2). Elsewhere torchvision's kernel runs."""
    return input.device.type == "cpu" and input.dtype in (torch.float32, torch.float64) and sampling_ratio > 0


def _axis(start: Tensor, size: Tensor, pooled: int, grid: int, extent: Tensor) -> tuple[Tensor, Tensor]:
    """Positions and weights along one axis, torchvision's ``bilinear_interpolate``: for each RoI, bin
    and sample, the low and high neighbours ``(K, pooled, 2·grid)`` and their weights (0 outside)."""
    dtype = start.dtype
    bin_size = (size / pooled)[:, None, None]
    bins = torch.arange(pooled, dtype=dtype)[None, :, None]
    samples = (torch.arange(grid, dtype=dtype) + 0.5)[None, None, :]
    v = start[:, None, None] + bins * bin_size + samples * bin_size / grid
    n = extent[:, None, None]
    valid = (v >= -1.0) & (v <= n)
    v = v.clamp(min=0.0)
    low = torch.minimum(v.long().clamp(min=0), n - 1)  # truncation is the floor here (v >= 0); in range even for inf/nan
    top = low >= n - 1
    high = torch.where(top, low, low + 1)
    frac = torch.where(top, torch.zeros_like(v), v - low)
    index = torch.stack([low, high], -1).flatten(2)
    weight = torch.where(valid[..., None], torch.stack([1.0 - frac, frac], -1), 0.0).flatten(2)
    return index, weight


def _sampling_matrix(
    rois: Tensor, scale: Tensor, heights: Tensor, widths: Tensor, base: Tensor,
    output_size: tuple[int, int], sampling_ratio: int, aligned: bool, columns: int,
) -> Tensor:
    """The CSR matrix (RoI bins × feature positions) of RoIAlign's bilinear weights, divided by the
    samples per bin. ``scale``, ``heights``, ``widths`` and ``base`` (the flat index of the RoI's
    image's first position in its level) are per RoI."""
    ph, pw = output_size
    offset = 0.5 if aligned else 0.0
    x0, y0 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    w, h = rois[:, 3] * scale - offset - x0, rois[:, 4] * scale - offset - y0
    if not aligned:
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)
    yi, yw = _axis(y0, h, ph, sampling_ratio, heights)
    xi, xw = _axis(x0, w, pw, sampling_ratio, widths)
    k = rois.shape[0]
    col = (base[:, None, None, None, None] + yi[:, :, None, :, None] * widths[:, None, None, None, None] + xi[:, None, :, None, :])
    val = yw[:, :, None, :, None] * xw[:, None, :, None, :] / (sampling_ratio * sampling_ratio)
    per_row = 4 * sampling_ratio * sampling_ratio
    crow = torch.arange(0, k * ph * pw * per_row + 1, per_row)
    return _csr(crow, col.reshape(-1), val.reshape(-1), (k * ph * pw, columns))


def _csr(crow: Tensor, col: Tensor, val: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # torch's one-time notice that sparse CSR is a beta feature
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)


def _transpose(matrix: Tensor) -> Tensor:
    """``matrix.T`` as a CSR matrix (stable: entries keep their row order within each column)."""
    crow, col, val = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    rows, columns = matrix.shape
    order = torch.sort(col.int() if columns < 2**31 else col, stable=True).indices  # 32-bit keys sort twice as fast
    row_of = torch.repeat_interleave(torch.arange(rows), crow.diff())[order]
    counts = torch.bincount(col, minlength=columns)
    crow_t = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return _csr(crow_t, row_of, val[order], (columns, rows))


class _SparseMix(torch.autograd.Function):
    """``matrix @ features`` with the gradient ``matrix.T @ grad`` for ``features`` only."""

    @staticmethod
    def forward(ctx: FunctionCtx, features: Tensor, matrix: Tensor) -> Tensor:
        ctx.matrix = matrix  # type: ignore[attr-defined]
        return torch.sparse.mm(matrix, features)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return torch.sparse.mm(_transpose(ctx.matrix), grad.contiguous()), None  # type: ignore[attr-defined]


def _pool(levels: Sequence[Tensor], rois: Tensor, level_of: Tensor, scales: Sequence[float], output_size: tuple[int, int],
          sampling_ratio: int, aligned: bool) -> Tensor:
    """RoIAlign of ``rois`` (``[K, 5]``: image index, x1, y1, x2, y2), each on the level ``level_of``
    names, as one sparse product over the levels' channels-last features."""
    batch, channels = levels[0].shape[:2]
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois: expected a [K, 5] tensor (image index, x1, y1, x2, y2), got shape {list(rois.shape)}")
    if rois.shape[0] and not bool(((rois[:, 0] >= 0) & (rois[:, 0] < batch)).all()):
        lo, hi = rois[:, 0].min().item(), rois[:, 0].max().item()
        raise ValueError(f"rois: expected image indices in [0, {batch}) (the features' batch), got {lo:g}..{hi:g}")
    flat = [f.permute(0, 2, 3, 1).reshape(-1, channels) for f in levels]
    starts = torch.tensor([0] + [f.shape[0] for f in flat]).cumsum(0)[:-1]
    heights = torch.tensor([f.shape[2] for f in levels])[level_of]
    widths = torch.tensor([f.shape[3] for f in levels])[level_of]
    scale = torch.tensor(list(scales), dtype=rois.dtype)[level_of]
    base = starts[level_of] + rois[:, 0].long() * heights * widths
    matrix = _sampling_matrix(rois, scale, heights, widths, base, output_size, sampling_ratio, aligned, int(starts[-1]) + flat[-1].shape[0])
    features = flat[0] if len(flat) == 1 else torch.cat(flat)
    out = _SparseMix.apply(features, matrix)
    return out.view(rois.shape[0], output_size[0], output_size[1], channels).permute(0, 3, 1, 2).contiguous()


def _pair(output_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    ph, pw = output_size
    return int(ph), int(pw)


def roi_align(
    input: Tensor, boxes: Tensor | list[Tensor], output_size: int | Sequence[int], spatial_scale: float = 1.0,
    sampling_ratio: int = -1, aligned: bool = False,
) -> Tensor:
    """``torchvision.ops.roi_align`` (same arguments and result): the sparse product of this module
    where :func:`fast_path` holds (outside ``torch.compile``), torchvision's kernel elsewhere."""
    if torch.compiler.is_compiling() or not fast_path(input, sampling_ratio):
        return tv_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)
    rois = boxes if isinstance(boxes, Tensor) else convert_boxes_to_roi_format(boxes)
    level_of = torch.zeros(rois.shape[0], dtype=torch.long)
    return _pool([input], rois.to(input.dtype), level_of, [spatial_scale], _pair(output_size), sampling_ratio, aligned)


def multiscale_roi_align(
    levels: Sequence[Tensor], rois: Tensor, level_of: Tensor, scales: Sequence[float], output_size: int | Sequence[int],
    sampling_ratio: int, aligned: bool = False,
) -> Tensor:
    """RoIAlign of each RoI (``[K, 5]`` rows: image index, x1, y1, x2, y2 in image pixels) on its pyramid
    level (``level_of[k]`` indexes ``levels`` and ``scales``), in one sparse product over all levels:
    what ``torchvision.ops.MultiScaleRoIAlign`` computes level by level. Requires :func:`fast_path`."""
    if not fast_path(levels[0], sampling_ratio):
        raise ValueError(f"multiscale_roi_align: expected CPU float32/float64 features and sampling_ratio > 0, got "
                         f"{levels[0].device.type} {levels[0].dtype} and sampling_ratio {sampling_ratio}")
    return _pool(levels, rois.to(levels[0].dtype), level_of, scales, _pair(output_size), sampling_ratio, aligned)
