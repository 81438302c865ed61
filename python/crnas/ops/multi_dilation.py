"""Fused multi-dilation convolution: one 3×3 kernel shared by several dilations.

``multi_dilation_conv2d(x, W, mix) = Σ_d mix[·, d] · conv2d(x, W, padding=d, dilation=d) + bias``,
computed by the native core as ONE GEMM against mixed columns
(``Σ_d m_d · (W ⊛_d x) = W · Σ_d m_d · im2col_d(x)``) with a hand-written backward.

:func:`per_sample_dilation_conv2d` is the same op for one dilation per image given as integer
indices (single-path supernets): the batch grouped by dilation, one native convolution per group.

The fused op is a real PyTorch op, ``torch.ops.crnas.multi_dilation_conv2d`` (and ``..._backward``), with a
fake kernel, autograd registration and FLOPs formulas, so ``torch.compile(fullgraph=True)`` (inductor and
``aot_eager``, forward and backward; tested on the CPU), ``torch.library.opcheck``,
``torch.utils.flop_counter.FlopCounterMode`` and fvcore all see it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from crnas._native import core

__all__ = [
    "multi_dilation_conv2d",
    "per_sample_dilation_conv2d",
    "dense_equivalent",
    "output_size",
    "forward_macs",
    "backward_macs",
    "fvcore_handles",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Device types whose autocast state the op follows (a plain tuple test keeps torch.compile tracing it).
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu")


def output_size(size: int, stride: int) -> int:
    """Output length of a 3×3 conv with padding = dilation: ``(size - 1) // stride + 1``."""
    return (size - 1) // stride + 1


def _fail(arg: str, expected: str, got: object, exc: type[Exception] = ValueError) -> NoReturn:
    raise exc(f"{arg}: expected {expected}, got {got}")


def _check_int(arg: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(arg, "an int", type(value).__name__, TypeError)
    if value < minimum:
        _fail(arg, f"an int >= {minimum}", value)


def _validate(
    input: Tensor,
    weight: Tensor,
    mix: Tensor,
    bias: Tensor | None,
    dilations: Sequence[int],
    stride: int,
    groups: int,
) -> None:
    """Check every argument (a ``TypeError``/``ValueError`` naming the first bad one), in the native
    core's order and words (tests/ops prove the two agree)."""
    _validate_conv(input, weight, bias, dilations, stride, groups, mix=mix, fused=True)


def _validate_conv(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    dilations: Sequence[int],
    stride: int,
    groups: int,
    *,
    mix: Tensor | None = None,
    fused: bool = False,
) -> None:
    """Check the arguments both ops share, and the fused op's ``mix`` with ``fused``."""
    tensors = (("input", input), ("weight", weight)) + ((("mix", mix),) if fused else ())
    for name, t in tensors:
        if not isinstance(t, Tensor):
            _fail(name, "a torch.Tensor", type(t).__name__, TypeError)
    if bias is not None and not isinstance(bias, Tensor):
        _fail("bias", "a torch.Tensor or None", type(bias).__name__, TypeError)
    if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence):
        _fail("dilations", "a sequence of ints", type(dilations).__name__, TypeError)
    if len(dilations) == 0:
        _fail("dilations", "at least one dilation", list(dilations))
    for d in dilations:
        if isinstance(d, bool) or not isinstance(d, int):
            _fail("dilations", "a sequence of ints", list(dilations), TypeError)
        if d < 1:
            _fail("dilations", "ints >= 1", list(dilations))
    _check_int("stride", stride, 1)
    _check_int("groups", groups, 1)
    if input.dtype not in _FLOAT_DTYPES:
        _fail("input", "a floating-point tensor (float16, bfloat16, float32 or float64)", input.dtype, TypeError)
    for name, t in (("weight", weight), ("mix", mix), ("bias", bias)):
        if t is None:
            continue
        if t.dtype != input.dtype:
            _fail(name, f"dtype {input.dtype} (the input's)", t.dtype, TypeError)
        if t.device != input.device:
            _fail(name, f"a tensor on {input.device} (the input's device)", t.device)
    if input.dim() != 4:
        _fail("input", "a 4-D tensor [N, C, H, W]", f"shape {list(input.shape)}")
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        _fail("weight", "a 4-D tensor [O, C/groups, 3, 3]", f"shape {list(weight.shape)}")
    n, c, h, w = input.shape
    o = weight.shape[0]
    if c < 1 or h < 1 or w < 1:
        _fail("input", "C, H and W >= 1", f"shape {list(input.shape)}")
    if c % groups != 0:
        _fail("groups", f"a divisor of the input channels ({c})", groups)
    if weight.shape[1] * groups != c:
        _fail("weight", f"shape [O, {c // groups}, 3, 3] (input channels {c} / groups {groups})", f"shape {list(weight.shape)}")
    if o < 1 or o % groups != 0:
        _fail("weight", f"a positive number of output channels divisible by groups ({groups})", o)
    nd = len(dilations)
    if mix is not None and fused and not (tuple(mix.shape) == (nd,) or tuple(mix.shape) == (n, nd)):
        _fail("mix", f"shape [{nd}] (one weight per dilation) or [{n}, {nd}] (per sample)", f"shape {list(mix.shape)}")
    if bias is not None and tuple(bias.shape) != (o,):
        _fail("bias", f"shape [{o}] (one value per output channel)", f"shape {list(bias.shape)}")


# --- the registered ops -------------------------------------------------------------------------


@torch.library.custom_op("crnas::multi_dilation_conv2d", mutates_args=())
def _forward_op(
    input: Tensor,
    weight: Tensor,
    mix: Tensor,
    bias: Tensor | None,
    dilations: Sequence[int],
    stride: int,
    groups: int,
) -> Tensor:
    return core().mdconv_forward(input, weight, mix, bias, list(dilations), stride, groups)


@_forward_op.register_fake
def _forward_fake(input, weight, mix, bias, dilations, stride, groups):
    n, _, h, w = input.shape
    return input.new_empty((n, weight.shape[0], output_size(h, stride), output_size(w, stride)))


@torch.library.custom_op("crnas::multi_dilation_conv2d_backward", mutates_args=())
def _backward_op(
    grad: Tensor,
    input: Tensor,
    weight: Tensor,
    mix: Tensor,
    dilations: Sequence[int],
    stride: int,
    groups: int,
    output_mask: Sequence[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    return core().mdconv_backward(grad, input, weight, mix, list(dilations), stride, groups, list(output_mask))


@_backward_op.register_fake
def _backward_fake(grad, input, weight, mix, dilations, stride, groups, output_mask):
    return tuple(t.new_empty(t.shape if need else (0,)) for t, need in zip((input, weight, mix), output_mask))


def _setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
    input, weight, mix, bias, dilations, stride, groups = inputs
    ctx.save_for_backward(input, weight, mix)
    ctx.conv = (list(dilations), stride, groups)


def _backward(ctx: Any, grad: Tensor) -> tuple:
    input, weight, mix = ctx.saved_tensors
    mask = list(ctx.needs_input_grad[:3])
    grads: list[Tensor | None] = [None, None, None]
    if any(mask):
        grads = list(torch.ops.crnas.multi_dilation_conv2d_backward(grad, input, weight, mix, *ctx.conv, mask))
        grads = [g if need else None for g, need in zip(grads, mask)]
    grad_bias = grad.sum((0, 2, 3)) if ctx.needs_input_grad[3] else None
    return (*grads, grad_bias, None, None, None)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


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
    """Fused multi-dilation 3×3 convolution with one kernel shared by all dilations.

    ``out = Σ_d mix[·, d] · conv2d(input, weight, stride=stride, padding=d, dilation=d, groups=groups) + bias``

    Args:
        input (Tensor[N, C, H, W]): input; channels_last is accepted, the output is contiguous.
        weight (Tensor[O, C/groups, 3, 3]): the shared kernel.
        mix (Tensor[D] or Tensor[N, D]): weight of each dilation, shared by the batch or per sample.
            One-hot rows select one dilation per sample (single-path supernets); softmax rows are
            the differentiable relaxation.
        bias (Tensor[O], optional): added to every output position.
        dilations (sequence of int): the D dilations; padding equals dilation, so every branch has
            the output size ``(H - 1) // stride + 1``.
        stride (int): stride of every branch.
        groups (int): as in :func:`torch.nn.functional.conv2d`.

    Differentiable in ``input``, ``weight``, ``mix`` and ``bias``. float32/float64 everywhere; under
    ``torch.autocast`` the arguments are cast to the autocast dtype (float16/bfloat16).

    Examples::

        >>> x, w = torch.randn(2, 8, 16, 16), torch.randn(8, 8, 3, 3)
        >>> mix = torch.softmax(torch.zeros(3), 0)
        >>> multi_dilation_conv2d(x, w, mix).shape
        torch.Size([2, 8, 16, 16])
    """
    _validate(input, weight, mix, bias, dilations, stride, groups)
    device_type = input.device.type
    if device_type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        input, weight, mix = input.to(dtype), weight.to(dtype), mix.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return torch.ops.crnas.multi_dilation_conv2d(input, weight, mix, bias, list(dilations), stride, groups)


def per_sample_dilation_conv2d(
    input: Tensor,
    weight: Tensor,
    index: Tensor,
    bias: Tensor | None = None,
    *,
    dilations: Sequence[int] = (1, 2, 3),
    stride: int = 1,
    groups: int = 1,
) -> Tensor:
    """One dilation per image, at the cost of one convolution: the op with a one-hot ``mix``.

    ``out[i] = conv2d(input[i], weight, bias, stride, padding=d, dilation=d, groups)`` with
    ``d = dilations[index[i]]``, equal to :func:`multi_dilation_conv2d` with
    ``mix = one_hot(index, len(dilations))``. The batch is grouped by dilation and each group runs one
    native convolution (cuDNN, oneDNN, ...), so the total work is that of one convolution over the
    batch; the images are gathered into groups and the outputs scattered back (one permutation each
    way, skipped when every dilation's images are already contiguous, and no gather at all when one
    dilation serves the whole batch).

    Args:
        input (Tensor[N, C, H, W]): input (any memory format; the output follows ``conv2d``'s).
        weight (Tensor[O, C/groups, 3, 3]): the shared kernel.
        index (Tensor[N] of an integer dtype): each image's dilation, an index into ``dilations``.
            On the CPU or on the input's device; the grouping reads it on the host, so a CPU index
            (what the search's samplers produce) costs no device synchronisation.
        bias (Tensor[O], optional): added to every output position.
        dilations, stride, groups: as in :func:`multi_dilation_conv2d`.

    Differentiable in ``input``, ``weight`` and ``bias`` (an index has no gradient; use a float
    ``mix`` and :func:`multi_dilation_conv2d` for the differentiable relaxation). Deterministic
    wherever ``conv2d`` is: the gathers are permutations, so their backward adds one value per row.
    The grouping depends on the index's values: under ``torch.compile`` it breaks the graph (the
    float-``mix`` op traces whole).

    Examples::

        >>> x, w = torch.randn(3, 8, 16, 16), torch.randn(8, 8, 3, 3)
        >>> per_sample_dilation_conv2d(x, w, torch.tensor([2, 0, 2])).shape
        torch.Size([3, 8, 16, 16])
    """
    _validate_conv(input, weight, bias, dilations, stride, groups)
    n, nd = input.shape[0], len(dilations)
    if not isinstance(index, Tensor):
        _fail("index", "a torch.Tensor", type(index).__name__, TypeError)
    if index.dtype == torch.bool or index.is_floating_point() or index.is_complex():
        _fail("index", "an integer tensor (one dilation index per image)", index.dtype, TypeError)
    if index.device.type != "cpu" and index.device != input.device:
        _fail("index", f"a tensor on the CPU or on {input.device} (the input's device)", index.device)
    if tuple(index.shape) != (n,):
        _fail("index", f"shape [{n}] (one dilation index per image)", f"shape {list(index.shape)}")
    choices = index.tolist()
    if any(not 0 <= c < nd for c in choices):
        _fail("index", f"values in [0, {nd}) (indices into dilations {list(dilations)})", choices)

    def conv(x: Tensor, choice: int) -> Tensor:
        d = dilations[choice]
        return F.conv2d(x, weight, bias, stride, d, d, groups)

    present = sorted(set(choices))
    if len(present) <= 1:
        return conv(input, present[0] if present else 0)
    # maximal runs of equal indices: if each dilation forms one run, the groups are slices already
    runs = [(c, len(list(images))) for c, images in itertools.groupby(choices)]
    if len(runs) == len(present):
        parts = input.split([length for _, length in runs])
        return torch.cat([conv(x, c) for x, (c, _) in zip(parts, runs)])
    order = sorted(range(n), key=choices.__getitem__)  # stable: images keep their order within a group
    inverse = [0] * n
    for position, i in enumerate(order):
        inverse[i] = position
    grouped = input.index_select(0, torch.tensor(order, device=input.device))
    parts = grouped.split([choices.count(c) for c in present])
    out = torch.cat([conv(x, c) for x, c in zip(parts, present)])
    return out.index_select(0, torch.tensor(inverse, device=input.device))


def dense_equivalent(weight: Tensor, mix: Tensor, dilations: Sequence[int] = (1, 2, 3)) -> Tensor:
    """One ordinary kernel equal to the op with a shared ``mix``.

    Returns ``K`` of shape ``[O, C/groups, 2·max(d)+1, 2·max(d)+1]`` holding ``mix[d] · weight`` at
    each dilation's taps, so that ``conv2d(x, K, bias, stride, padding=max(d), groups=groups)``
    equals ``multi_dilation_conv2d(x, weight, mix, bias, ...)``. Differentiable, pure PyTorch:
    use it to export a fixed mix as one standard convolution (ONNX, TorchScript).
    """
    if not isinstance(weight, Tensor) or weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        _fail("weight", "a 4-D tensor [O, C/groups, 3, 3]", getattr(weight, "shape", type(weight).__name__))
    if not isinstance(mix, Tensor) or tuple(mix.shape) != (len(dilations),):
        _fail("mix", f"a shared mix of shape [{len(dilations)}]", getattr(mix, "shape", type(mix).__name__))
    if len(dilations) == 0 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        _fail("dilations", "a non-empty sequence of ints >= 1", list(dilations))
    md = max(dilations)
    size = 2 * md + 1
    out = weight.new_zeros(weight.shape[0], weight.shape[1], size, size)
    for i, d in enumerate(dilations):
        taps = weight.new_zeros(weight.shape[0], weight.shape[1], size, size)
        taps[:, :, md - d : md + d + 1 : d, md - d : md + d + 1 : d] = weight
        out = out + mix[i] * taps
    return out


# --- FLOPs ----------------------------------------------------------------------------------------


def forward_macs(input_shape: Sequence[int], weight_shape: Sequence[int], num_dilations: int, stride: int = 1) -> int:
    """Multiply-accumulates of the forward: the one GEMM (a conv's worth) plus mixing the columns."""
    n, c, h, w = input_shape
    o, cg = weight_shape[0], weight_shape[1]
    positions = n * output_size(h, stride) * output_size(w, stride)
    return positions * (o * cg * 9 + c * 9 * num_dilations)


def backward_macs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    num_dilations: int,
    stride: int,
    output_mask: Sequence[bool],
) -> int:
    """Multiply-accumulates of the backward for the gradients selected by ``output_mask``."""
    n, c, h, w = input_shape
    o, cg = weight_shape[0], weight_shape[1]
    positions = n * output_size(h, stride) * output_size(w, stride)
    gemm, mixing = positions * o * cg * 9, positions * c * 9 * num_dilations
    need_dx, need_dw, need_dm = output_mask
    total = 0
    if need_dw:
        total += gemm + mixing  # columns are rebuilt, then one GEMM
    if need_dx or need_dm:
        total += gemm + mixing * (int(need_dx) + int(need_dm))  # column gradient, then col2im / dot products
    return total


@register_flop_formula(torch.ops.crnas.multi_dilation_conv2d)
def _forward_flops(input_shape, weight_shape, mix_shape, bias_shape, dilations, stride, groups, *, out_shape=None, **kwargs) -> int:
    return 2 * forward_macs(input_shape, weight_shape, len(dilations), stride)


@register_flop_formula(torch.ops.crnas.multi_dilation_conv2d_backward)
def _backward_flops(grad_shape, input_shape, weight_shape, mix_shape, dilations, stride, groups, output_mask, *, out_shape=None, **kwargs) -> int:
    return 2 * backward_macs(input_shape, weight_shape, len(dilations), stride, output_mask)


def _jit_shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _fvcore_forward(inputs: list[Any], outputs: list[Any]) -> int:
    input_shape, weight_shape, mix_shape = (_jit_shape(v) for v in inputs[:3])
    stride = inputs[5].toIValue()
    return forward_macs(input_shape, weight_shape, mix_shape[-1], stride)


def fvcore_handles() -> dict[str, Callable[[list[Any], list[Any]], int]]:
    """Op handles for fvcore's ``FlopCountAnalysis.set_op_handle(**fvcore_handles())`` (MACs, fvcore's unit)."""
    return {"crnas::multi_dilation_conv2d": _fvcore_forward}
