"""The fused multi-dilation convolution against its pure-PyTorch reference."""

from __future__ import annotations

import inspect
import random

import pytest
import torch
import torch.nn.functional as F
from crnas._native import core
from crnas.arch import DILATIONS
from crnas.nn import MultiDilationConv2d
from crnas.ops import (
    backward_macs,
    dense_equivalent,
    forward_macs,
    multi_dilation,
    multi_dilation_conv2d,
    per_sample_dilation_conv2d,
    reference,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

DIL_SETS = [(1,), (2,), (1, 2), (1, 3), (1, 2, 3), (2, 3), (1, 2, 4)]


def make(n, c, o, h, w, groups, dilations, per_sample, dtype=torch.float64, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype).requires_grad_()
    wt = torch.randn(o, c // groups, 3, 3, generator=g, dtype=dtype).requires_grad_()
    d = len(dilations)
    mix = torch.randn((n, d) if per_sample else (d,), generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(o, generator=g, dtype=dtype).requires_grad_() if bias else None
    return x, wt, mix, b


def grads(out, inputs, seed=1):
    gy = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, [t for t in inputs if t is not None], gy, allow_unused=True)


def assert_close(a, b, tol):
    assert a.shape == b.shape
    if a.numel():
        assert (a - b).abs().max().item() < tol


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 3),
    cg=st.integers(1, 4),
    og=st.integers(1, 4),
    groups=st.sampled_from([1, 1, 2, 3]),
    h=st.integers(1, 13),
    w=st.integers(1, 13),
    stride=st.integers(1, 2),
    dilations=st.sampled_from(DIL_SETS),
    per_sample=st.booleans(),
    bias=st.booleans(),
)
def test_values_and_gradients_match_reference(n, cg, og, groups, h, w, stride, dilations, per_sample, bias):
    args = make(n, cg * groups, og * groups, h, w, groups, dilations, per_sample, bias=bias)
    kw = dict(dilations=dilations, stride=stride, groups=groups)
    out = multi_dilation_conv2d(*args, **kw)
    ref = reference.multi_dilation_conv2d(*args, **kw)
    assert_close(out, ref, 1e-10)
    for got, want in zip(grads(out, args), grads(ref, args)):
        assert_close(got, want, 1e-10)


@pytest.mark.parametrize("backend", ["cpu", "aten"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_both_native_backends_match_reference(backend, per_sample):
    x, w, mix, b = make(3, 6, 4, 11, 9, 2, (1, 2, 3), per_sample)
    args = [t.detach() for t in (x, w, mix)]
    y = core().mdconv_forward(*args, b.detach(), [1, 2, 3], 2, 2, backend)
    ref = reference.multi_dilation_conv2d(x, w, mix, b, stride=2, groups=2)
    assert_close(y, ref, 1e-10)
    gy = torch.randn(ref.shape, dtype=ref.dtype)
    dx, dw, dm = core().mdconv_backward(gy, *args, [1, 2, 3], 2, 2, [True, True, True], backend)
    for got, want in zip((dx, dw, dm), torch.autograd.grad(ref, (x, w, mix), gy)):
        assert_close(got, want, 1e-10)


def test_gradcheck():
    x, w, mix, b = make(2, 4, 3, 6, 5, 1, (1, 2, 3), True)
    assert torch.autograd.gradcheck(
        lambda *a: multi_dilation_conv2d(*a, stride=2), (x, w, mix, b), fast_mode=False
    )
    x, w, mix, b = make(1, 4, 4, 5, 5, 2, (1, 3), False)
    assert torch.autograd.gradcheck(lambda *a: multi_dilation_conv2d(*a, dilations=(1, 3), groups=2), (x, w, mix, b))


def test_opcheck():
    x, w, mix, b = make(2, 4, 6, 7, 5, 2, (1, 2, 3), True)
    torch.library.opcheck(torch.ops.crnas.multi_dilation_conv2d.default, (x, w, mix, b, [1, 2, 3], 1, 2))
    x, w, mix, _ = make(2, 3, 3, 5, 5, 1, (1, 2), False, dtype=torch.float32)
    torch.library.opcheck(torch.ops.crnas.multi_dilation_conv2d.default, (x, w, mix, None, [1, 2], 2, 1))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])  # inductor: torch.compile's default, generated C++ on the CPU
def test_torch_compile_fullgraph_forward_and_backward(backend):
    x, w, mix, b = make(2, 4, 4, 8, 8, 1, (1, 2, 3), True, dtype=torch.float32)

    def f(x, w, mix, b):
        return torch.relu(multi_dilation_conv2d(x, w, mix, b)) * 2 + 1

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    got, want = compiled(x, w, mix, b), f(x, w, mix, b)
    torch.testing.assert_close(got, want)
    upstream = torch.randn_like(want)
    for a, e in zip(torch.autograd.grad(got, (x, w, mix, b), upstream), torch.autograd.grad(want, (x, w, mix, b), upstream)):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("groups", [1, 2])
def test_dense_equivalent_is_one_ordinary_convolution(stride, groups):
    x, w, mix, b = make(2, 4, 6, 9, 10, groups, (1, 2, 3), False)
    kernel = dense_equivalent(w, mix, (1, 2, 3))
    assert kernel.shape == (6, 4 // groups, 7, 7)
    dense = F.conv2d(x, kernel, b, stride=stride, padding=3, groups=groups)
    assert_close(dense, multi_dilation_conv2d(x, w, mix, b, stride=stride, groups=groups), 1e-10)
    # differentiable in weight and mix, like the op
    for got, want in zip(grads(dense, (w, mix)), grads(multi_dilation_conv2d(x, w, mix, b, stride=stride, groups=groups), (w, mix))):
        assert_close(got, want, 1e-10)


def test_channels_last_and_non_contiguous_inputs():
    x, w, mix, b = make(2, 8, 4, 9, 9, 1, (1, 2, 3), True)
    ref = reference.multi_dilation_conv2d(x, w, mix, b)
    assert_close(multi_dilation_conv2d(x.to(memory_format=torch.channels_last), w, mix, b), ref, 1e-10)
    xt = x.detach().transpose(2, 3).contiguous().transpose(2, 3)  # same values, permuted strides
    assert not xt.is_contiguous()
    assert_close(multi_dilation_conv2d(xt, w, mix[:, :].t().contiguous().t(), b), ref, 1e-10)


def test_batch_zero():
    x, w, mix, b = make(0, 3, 5, 6, 6, 1, (1, 2, 3), True)
    out = multi_dilation_conv2d(x, w, mix, b)
    assert out.shape == (0, 5, 6, 6)
    dx, dw, dm, db = torch.autograd.grad(out.sum(), (x, w, mix, b))
    assert dx.shape == x.shape and dm.shape == (0, 3)
    assert dw.abs().sum() == 0 and db.abs().sum() == 0


def test_one_hot_mix_selects_one_dilation_per_sample():
    x, w, _, _ = make(3, 4, 4, 8, 8, 1, (1, 2, 3), True)
    idx = torch.tensor([2, 0, 1])
    mix = F.one_hot(idx, 3).double()
    out = multi_dilation_conv2d(x, w, mix)
    for i, d in enumerate((3, 1, 2)):
        assert_close(out[i : i + 1], F.conv2d(x[i : i + 1], w, padding=d, dilation=d), 1e-10)


def test_result_does_not_depend_on_thread_count():
    x, w, mix, b = make(2, 16, 8, 20, 20, 1, (1, 2, 3), False, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1 = multi_dilation_conv2d(x, w, mix, b)
        g1 = grads(y1, (x, w, mix, b))
        torch.set_num_threads(2)
        y2 = multi_dilation_conv2d(x, w, mix, b)
        g2 = grads(y2, (x, w, mix, b))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(y1, y2)
    for a, e in zip(g1, g2):
        torch.testing.assert_close(a, e)


def test_cpu_autocast_runs_in_bfloat16():
    x, w, mix, b = make(2, 4, 4, 8, 8, 1, (1, 2, 3), True, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = multi_dilation_conv2d(x, w, mix, b)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference.multi_dilation_conv2d(x, w, mix, b), atol=0.15, rtol=0.05)
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32


def test_flop_counter_sees_the_true_cost():
    x, w, mix, _ = make(2, 8, 16, 10, 12, 2, (1, 2, 3), True, dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        out = multi_dilation_conv2d(x, w, mix, stride=2, groups=2)
    macs = forward_macs(x.shape, w.shape, 3, 2)
    # one GEMM (a 3x3 conv's worth) plus mixing the columns of the 3 dilations
    assert macs == 2 * 5 * 6 * (16 * 4 * 9 + 8 * 9 * 3)
    assert counter.get_total_flops() == 2 * macs
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * backward_macs(x.shape, w.shape, 3, 2, [True, True, True])


def test_fvcore_handle_counts_macs():
    fvcore = pytest.importorskip("fvcore.nn")
    from crnas.ops import fvcore_handles

    module = MultiDilationConv2d(8, 16, stride=2)
    x, mix = torch.randn(2, 8, 10, 12), torch.softmax(torch.randn(2, 3), 1)
    analysis = fvcore.FlopCountAnalysis(module, (x, mix)).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False)
    assert analysis.total() == forward_macs(x.shape, module.weight.shape, 3, 2)


def test_module():
    m = MultiDilationConv2d(4, 6, dilations=(1, 3), stride=2, groups=2, bias=True, dtype=torch.float64)
    assert repr(m) == "MultiDilationConv2d(4, 6, dilations=(1, 3), stride=2, groups=2)"
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    mix = torch.tensor([0.25, 0.75], dtype=torch.float64)
    ref = reference.multi_dilation_conv2d(x, m.weight, mix, m.bias, dilations=(1, 3), stride=2, groups=2)
    assert_close(m(x, mix), ref, 1e-10)
    with pytest.raises(ValueError, match="groups"):
        MultiDilationConv2d(4, 6, groups=4)
    with pytest.raises(ValueError, match="dilations"):
        MultiDilationConv2d(4, 6, dilations=(0, 1))


# --- one dilation per image: per_sample_dilation_conv2d -------------------------------------------

MEMORY_FORMATS = ["contiguous", "channels_last", "permuted"]


def as_format(x, memory_format):
    """The same values as ``x`` (a leaf again), stored contiguous, channels_last or with permuted strides."""
    x = x.detach()
    if memory_format == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif memory_format == "permuted":
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    return x.requires_grad_()


def one_hot_reference(x, w, index, b, **kw):
    mix = F.one_hot(index, len(kw["dilations"])).to(x.dtype)
    return reference.multi_dilation_conv2d(x, w, mix, b, **kw)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 6),
    cg=st.integers(1, 3),
    og=st.integers(1, 3),
    groups=st.sampled_from([1, 1, 2, 3]),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    stride=st.integers(1, 2),
    dilations=st.sampled_from(DIL_SETS),
    bias=st.booleans(),
    memory_format=st.sampled_from(MEMORY_FORMATS),
)
def test_per_sample_values_and_gradients_match_reference(data, n, cg, og, groups, h, w, stride, dilations, bias, memory_format):
    x, wt, _, b = make(n, cg * groups, og * groups, h, w, groups, dilations, True, bias=bias)
    x = as_format(x, memory_format)
    index = torch.tensor(data.draw(st.lists(st.integers(0, len(dilations) - 1), min_size=n, max_size=n)), dtype=torch.long)
    kw = dict(dilations=dilations, stride=stride, groups=groups)
    out = per_sample_dilation_conv2d(x, wt, index, b, **kw)
    ref = one_hot_reference(x, wt, index, b, **kw)
    assert_close(out, ref, 1e-10)
    for got, want in zip(grads(out, (x, wt, b)), grads(ref, (x, wt, b))):
        assert_close(got, want, 1e-10)


@pytest.mark.parametrize(
    "index",
    [[2, 0, 1, 0, 2], [0, 0, 1, 1, 2], [2, 2, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 2, 2, 1]],
    ids=["interleaved", "sorted-runs", "unsorted-runs", "one-group", "one-per-dilation-and-more"],
)
def test_per_sample_gradcheck(index):
    x, w, _, b = make(5, 4, 6, 6, 5, 2, (1, 2, 3), True)
    index = torch.tensor(index)
    assert torch.autograd.gradcheck(
        lambda *a: per_sample_dilation_conv2d(*a[:2], index, a[2], stride=2, groups=2), (x, w, b), fast_mode=False
    )


def test_per_sample_equals_the_fused_op_with_one_hot_mix():
    x, w, _, b = make(6, 8, 8, 12, 10, 1, (1, 2, 3), True, dtype=torch.float32)
    index = torch.tensor([2, 0, 1, 1, 0, 2])
    fused = multi_dilation_conv2d(x, w, F.one_hot(index, 3).float(), b)
    torch.testing.assert_close(per_sample_dilation_conv2d(x, w, index, b), fused)
    # float32 sums over the 720 output positions in another order (grouped convolutions vs one GEMM): the
    # weight gradient differs by ~2e-5 relative on one thread, beyond assert_close's float32 default
    for got, want in zip(grads(per_sample_dilation_conv2d(x, w, index, b), (x, w, b)), grads(fused, (x, w, b))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("index", [[0, 1, 2], [2, 1, 0, 2, 1, 0], [1, 1, 1, 1]])
def test_per_sample_costs_one_convolution(index):
    """Its FLOPs are those of one convolution over the batch, a third of the naive sum's."""
    x, w, _, _ = make(len(index), 8, 16, 10, 12, 2, (1, 2, 3), True, dtype=torch.float32)
    with FlopCounterMode(display=False) as ours:
        per_sample_dilation_conv2d(x, w, torch.tensor(index), stride=2, groups=2).sum().backward()
    with FlopCounterMode(display=False) as one_conv:
        F.conv2d(x, w, stride=2, padding=1, groups=2).sum().backward()
    assert ours.get_total_flops() == one_conv.get_total_flops() > 0


def test_per_sample_batch_zero_and_index_on_any_allowed_device():
    x, w, _, b = make(0, 3, 5, 6, 6, 1, (1, 2, 3), True)
    out = per_sample_dilation_conv2d(x, w, torch.zeros(0, dtype=torch.long), b)
    assert out.shape == (0, 5, 6, 6)
    dx, dw, db = torch.autograd.grad(out.sum(), (x, w, b))
    assert dx.shape == x.shape and dw.abs().sum() == 0 and db.abs().sum() == 0
    x, w, _, b = make(3, 4, 4, 6, 6, 1, (1, 2, 3), True)
    index = torch.tensor([2, 0, 2], dtype=torch.int32)  # any integer dtype
    assert_close(per_sample_dilation_conv2d(x, w, index, b), one_hot_reference(x, w, index.long(), b, dilations=(1, 2, 3)), 1e-10)


def test_per_sample_autocast_and_module():
    x, w, _, _ = make(3, 4, 4, 8, 8, 1, (1, 2, 3), True, dtype=torch.float32)
    index = torch.tensor([1, 0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = per_sample_dilation_conv2d(x, w, index)
    assert out.dtype == torch.bfloat16
    m = MultiDilationConv2d(4, 6, dilations=(1, 3), stride=2, groups=2, bias=True, dtype=torch.float64)
    x = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    index = torch.tensor([1, 0, 1])
    assert_close(m(x, index), m(x, F.one_hot(index, 2).double()), 1e-10)


@pytest.mark.parametrize(
    "index, exc, match",
    [
        (torch.tensor([0.0, 1.0]), TypeError, r"index: expected an integer tensor \(one dilation index per image\), got torch.float32"),
        (torch.tensor([True, False]), TypeError, r"index: expected an integer tensor"),
        ([0, 1], TypeError, r"index: expected a torch.Tensor, got list"),
        (torch.tensor([0, 1, 2]), ValueError, r"index: expected shape \[2\] \(one dilation index per image\), got shape \[3\]"),
        (torch.tensor([[0, 1]]), ValueError, r"index: expected shape \[2\]"),
        (torch.tensor([0, 3]), ValueError, r"index: expected values in \[0, 3\) \(indices into dilations \[1, 2, 3\]\), got \[0, 3\]"),
        (torch.tensor([-1, 0]), ValueError, r"index: expected values in \[0, 3\)"),
        (torch.tensor([0, 1], device="meta"), ValueError, r"index: expected a tensor on the CPU or on cpu \(the input's device\), got meta"),
    ],
)
def test_per_sample_bad_index_raises_a_clear_error(index, exc, match):
    with pytest.raises(exc, match=match):
        per_sample_dilation_conv2d(torch.randn(2, 4, 6, 6), torch.randn(4, 4, 3, 3), index)


def test_per_sample_validates_the_convolution_like_the_fused_op():
    X, W = torch.randn(2, 4, 6, 6), torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match=r"groups: expected a divisor of the input channels \(4\), got 3"):
        per_sample_dilation_conv2d(X, W, torch.tensor([0, 1]), groups=3)
    with pytest.raises(TypeError, match=r"weight: expected dtype torch.float32 \(the input's\), got torch.float64"):
        per_sample_dilation_conv2d(X, W.double(), torch.tensor([0, 1]))



# --- errors ---------------------------------------------------------------------------------------

X, W, MIX = torch.randn(2, 4, 6, 6), torch.randn(4, 4, 3, 3), torch.ones(3)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(input=X[0]), ValueError, r"input: expected a 4-D tensor \[N, C, H, W\], got shape \[4, 6, 6\]"),
        (dict(weight=torch.randn(4, 4, 5, 5)), ValueError, r"weight: expected a 4-D tensor \[O, C/groups, 3, 3\]"),
        (dict(weight=torch.randn(4, 3, 3, 3)), ValueError, r"weight: expected shape \[O, 4, 3, 3\]"),
        (dict(mix=torch.ones(2)), ValueError, r"mix: expected shape \[3\] .* or \[2, 3\] .* got shape \[2\]"),
        (dict(mix=torch.ones(3, 3)), ValueError, r"mix: expected shape"),
        (dict(dilations=(1, 0, 2)), ValueError, r"dilations: expected ints >= 1, got \[1, 0, 2\]"),
        (dict(dilations=()), ValueError, r"dilations: expected at least one dilation"),
        (dict(dilations=(1, 2.0, 3)), TypeError, r"dilations: expected a sequence of ints"),
        (dict(dilations=3), TypeError, r"dilations: expected a sequence of ints, got int"),
        (dict(stride=0), ValueError, r"stride: expected an int >= 1, got 0"),
        (dict(stride=1.5), TypeError, r"stride: expected an int, got float"),
        (dict(groups=3), ValueError, r"groups: expected a divisor of the input channels \(4\), got 3"),
        (dict(weight=W.double()), TypeError, r"weight: expected dtype torch.float32 \(the input's\), got torch.float64"),
        (dict(input=X.int(), weight=W.int(), mix=MIX.int()), TypeError, r"input: expected a floating-point tensor"),
        (dict(input=X.tolist()), TypeError, r"input: expected a torch.Tensor, got list"),
        (dict(mix=None), TypeError, r"mix: expected a torch.Tensor, got NoneType"),
        (dict(bias=torch.ones(5)), ValueError, r"bias: expected shape \[4\]"),
        (dict(bias=torch.ones(4).to("meta")), ValueError, r"bias: expected a tensor on cpu"),
        (dict(input=torch.randn(2, 4, 0, 6)), ValueError, r"input: expected C, H and W >= 1"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, exc, match):
    args = dict(input=X, weight=W, mix=MIX, bias=None, dilations=(1, 2, 3), stride=1, groups=1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        multi_dilation_conv2d(args.pop("input"), args.pop("weight"), args.pop("mix"), args.pop("bias"), **args)


def test_native_core_validates_on_its_own():
    """Direct callers of the extension get the same named errors, never a crash."""
    with pytest.raises(ValueError, match=r"mix: expected shape \[3\]"):
        core().mdconv_forward(X, W, torch.ones(4), None, [1, 2, 3], 1, 1)
    with pytest.raises(ValueError, match=r"grad: expected shape \[2, 4, 6, 6\]"):
        core().mdconv_backward(torch.ones(2, 4, 5, 5), X, W, MIX, [1, 2, 3], 1, 1, [True, True, True])
    with pytest.raises(TypeError, match="expected a torch.Tensor, got <class 'list'>"):
        core().mdconv_forward([1.0], W, MIX, None, [1, 2, 3], 1, 1)
    with pytest.raises(ValueError, match="backend: expected one of"):
        core().mdconv_forward(X, W, MIX, None, [1, 2, 3], 1, 1, "gpu")


def _bad_inputs(count: int, seed: int = 0):
    """Generated argument sets that are each wrong in at least one way."""
    rng = random.Random(seed)
    mutations = [
        lambda a: a.update(input=torch.randn([rng.randint(1, 4) for _ in range(rng.choice([0, 1, 2, 3, 5]))])),
        lambda a: a.update(weight=torch.randn(4, 4, rng.choice([1, 2, 5]), 3)),
        lambda a: a.update(weight=torch.randn(4, 4 + rng.randint(1, 3), 3, 3)),
        lambda a: a.update(mix=torch.randn(rng.choice([1, 2, 4, 5]))),
        lambda a: a.update(mix=torch.randn(rng.randint(1, 3), rng.choice([2, 4]))),
        lambda a: a.update(dilations=tuple(rng.randint(-3, 0) for _ in range(3))),
        lambda a: a.update(dilations=rng.choice([(), "123", 2, (1, None, 3), [1.5, 2, 3]])),
        lambda a: a.update(stride=rng.choice([0, -1, -7, 1.0, "1", None, True])),
        lambda a: a.update(groups=rng.choice([0, -2, 3, 5, 7, 2.5, None])),
        lambda a: a.update(input=torch.ones(2, 4, 5, 5, dtype=rng.choice([torch.int32, torch.int64, torch.bool, torch.complex64]))),
        lambda a: a.update(weight=torch.ones(4, 4, 3, 3, dtype=rng.choice([torch.float64, torch.float16, torch.int32]))),
        lambda a: a.update(mix=torch.ones(3, dtype=rng.choice([torch.float64, torch.bfloat16, torch.int64]))),
        lambda a: a.update(bias=rng.choice([torch.randn(rng.choice([1, 3, 5, 9])), torch.randn(4, 1), [0.0] * 4, 1.0])),
        lambda a: a.update(input=rng.choice([None, 1.0, "x", [[1.0]], object()])),
        lambda a: a.update(weight=rng.choice([None, 3, (3, 3)])),
        lambda a: a.update(mix=rng.choice([None, [1.0, 0.0, 0.0], 1])),
        lambda a: a.update(input=torch.randn(rng.randint(1, 3), 4, rng.choice([0, 5]), 0)),
        lambda a: a.update(bias=torch.randn(4).to("meta"), input=a["input"]),
    ]
    for _ in range(count):
        n = rng.randint(1, 3)
        args = dict(
            input=torch.randn(n, 4, rng.randint(1, 7), rng.randint(1, 7)),
            weight=torch.randn(4 * rng.randint(1, 2), 4, 3, 3),
            mix=torch.randn(3) if rng.random() < 0.5 else torch.randn(n, 3),
            bias=None,
            dilations=(1, 2, 3),
            stride=1,
            groups=1,
        )
        for mutate in rng.sample(mutations, rng.randint(1, 3)):
            mutate(args)
        yield args


def test_fuzzed_bad_inputs_always_raise_python_exceptions():
    count = 0
    for args in _bad_inputs(1200):
        with pytest.raises((TypeError, ValueError)):
            multi_dilation_conv2d(args.pop("input"), args.pop("weight"), args.pop("mix"), args.pop("bias"), **args)
        count += 1
    assert count == 1200


#: Every check of the native core's ``validate`` (src/mdconv/mod.rs), by the start of its message.
NATIVE_CHECKS = (
    "dilations: expected at least one dilation",
    "dilations: expected ints >= 1",
    "stride: expected an int >= 1",
    "groups: expected an int >= 1",
    "input: expected a floating-point tensor",
    *(f"{arg}: expected dtype" for arg in ("weight", "mix", "bias")),
    *(f"{arg}: expected a tensor on" for arg in ("weight", "mix", "bias")),
    "input: expected a 4-D tensor",
    "weight: expected a 4-D tensor",
    "input: expected C, H and W >= 1",
    "groups: expected a divisor of the input channels",
    "weight: expected shape [O,",
    "weight: expected a positive number of output channels",
    "mix: expected shape",
    "bias: expected shape",
)


def _reaches_the_core(args) -> bool:
    """Whether the extension's argument conversion takes ``args`` (tensors, a list of ints, ints)."""
    ints = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    return (
        all(isinstance(args[k], torch.Tensor) for k in ("input", "weight", "mix"))
        and (args["bias"] is None or isinstance(args["bias"], torch.Tensor))
        and isinstance(args["dilations"], (list, tuple)) and all(ints(d) for d in args["dilations"])
        and ints(args["stride"]) and ints(args["groups"])
    )


def test_python_and_native_validation_agree_on_every_check():
    """The op's arguments are checked in Python (before the op, on fake tensors too under torch.compile)
    and again in the native core (before its kernels touch memory): the same checks in the same order
    with the same messages, shown on the fuzzed inputs plus the cases fuzzing does not reach. tch names
    every device other than CPU and CUDA "mps" (the meta device too), so device messages agree up to
    the device named after "got"."""
    base = dict(input=X, weight=W, mix=MIX, bias=None, dilations=(1, 2, 3), stride=1, groups=1)
    extra = [
        dict(base, weight=W.to("meta")), dict(base, mix=MIX.to("meta")), dict(base, bias=torch.ones(4, dtype=torch.float64)),
        dict(base, input=torch.randn(2, 4, 6, 6), weight=torch.randn(3, 2, 3, 3), groups=2),
    ]
    seen = set()
    for args in [*_bad_inputs(1200), *extra]:
        if not _reaches_the_core(args):
            continue
        call = (args["input"], args["weight"], args["mix"], args["bias"], list(args["dilations"]), args["stride"], args["groups"])
        with pytest.raises((TypeError, ValueError)) as python:
            multi_dilation._validate(*call)
        with pytest.raises((TypeError, ValueError)) as native:
            core().mdconv_forward(*call)
        expected, got = str(python.value), str(native.value)
        assert type(native.value) is type(python.value), (expected, got)
        if "expected a tensor on" in expected:
            expected, got = expected.rsplit(", got", 1)[0], got.rsplit(", got", 1)[0]
        assert got == expected
        seen.add(next(check for check in NATIVE_CHECKS if got.startswith(check)))
    assert seen == set(NATIVE_CHECKS)


def test_op_defaults_are_the_searched_dilations():
    """The pure-PyTorch op keeps its default dilations without the native core; they are the core's."""
    defaults = [
        inspect.signature(f).parameters["dilations"].default
        for f in (multi_dilation_conv2d, dense_equivalent, reference.multi_dilation_conv2d, MultiDilationConv2d.__init__)
    ]
    assert all(tuple(d) == DILATIONS for d in defaults)
