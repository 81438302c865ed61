"""RoIAlign as one sparse product (crnas.ops.sparse_roi_align) against torchvision's kernel, the reference."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from crnas import detection
from crnas.nn import MultiScaleRoIAlign
from crnas.ops import multiscale_roi_align, roi_align
from crnas.ops.sparse_roi_align import fast_path
from hypothesis import given, settings
from hypothesis import strategies as st


def random_rois(k: int, images: int, extent: float, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """RoIs partly outside the image (RoIAlign's zero-padding and clamping rules) and some tinier than a bin."""
    b = torch.randint(0, images, (k, 1), generator=gen).to(dtype)
    xy = torch.rand(k, 2, generator=gen, dtype=dtype) * extent * 1.2 - 0.1 * extent
    wh = torch.rand(k, 2, generator=gen, dtype=dtype) * extent * torch.rand(k, 1, generator=gen, dtype=dtype)
    return torch.cat([b, xy, xy + wh], 1)


def values_and_grads(f, x, *args):
    out = f(x, *args)
    grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (gx,) = torch.autograd.grad(out, x, grad)
    return out, gx


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from([torch.float32, torch.float64]), aligned=st.booleans(),
    sampling_ratio=st.integers(1, 3), pooled=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)), scale=st.sampled_from([1.0, 0.5, 0.25, 0.125]), k=st.integers(0, 12),
)
def test_matches_torchvision_values_and_gradients(seed, dtype, aligned, sampling_ratio, pooled, size, scale, k):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *size, generator=gen, dtype=dtype, requires_grad=True)
    rois = random_rois(k, 2, max(size) / scale, dtype, gen)
    expected, expected_grad = values_and_grads(torchvision.ops.roi_align, x, rois, pooled, scale, sampling_ratio, aligned)
    got, got_grad = values_and_grads(roi_align, x, rois, pooled, scale, sampling_ratio, aligned)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(got_grad, expected_grad, **tol)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(5, 2, 28.0, torch.float64, gen)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (3, 2), 0.25, 2), (x,))


def test_boxes_as_a_list_per_image_and_no_boxes():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    boxes = [random_rois(3, 1, 16.0, torch.float32, gen)[:, 1:], random_rois(2, 1, 16.0, torch.float32, gen)[:, 1:]]
    torch.testing.assert_close(roi_align(x, boxes, 3, 0.5, 2), torchvision.ops.roi_align(x, boxes, 3, 0.5, 2))
    x.requires_grad_(True)
    empty = roi_align(x, torch.zeros(0, 5), 3, 0.5, 2)
    assert empty.shape == (0, 4, 3, 3)
    empty.sum().backward()
    assert x.grad is not None and not x.grad.any()


def test_elsewhere_it_is_torchvisions_kernel():
    """Adaptive sampling (sampling_ratio <= 0) and other dtypes take torchvision's kernel unchanged."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 8, 8, generator=gen)
    rois = random_rois(4, 1, 8.0, torch.float32, gen)
    assert not fast_path(x, 0) and not fast_path(x.bfloat16(), 2) and fast_path(x, 2)
    assert torch.equal(roi_align(x, rois, 2, 1.0, -1), torchvision.ops.roi_align(x, rois, 2, 1.0, -1))
    with pytest.raises(NotImplementedError, match="BFloat16"):  # torchvision's CPU kernel has no bfloat16
        roi_align(x.bfloat16(), rois.bfloat16(), 2, 1.0, 2)
    with pytest.raises(ValueError, match="sampling_ratio > 0, got cpu torch.float32 and sampling_ratio 0"):
        multiscale_roi_align([x], rois, torch.zeros(4, dtype=torch.long), [1.0], 2, 0)


def test_deterministic():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 16, 16, generator=gen, requires_grad=True)
    rois = random_rois(50, 2, 64.0, torch.float32, gen)
    first = values_and_grads(roi_align, x, rois, 7, 0.25, 2)
    second = values_and_grads(roi_align, x, rois, 7, 0.25, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def pyramid(dtype=torch.float32, seed=4):
    gen = torch.Generator().manual_seed(seed)
    sizes = {"0": 32, "1": 16, "2": 8, "3": 4, "pool": 2}
    feats = OrderedDict((k, torch.randn(2, 5, s, s + 1, generator=gen, dtype=dtype, requires_grad=True)) for k, s in sizes.items())
    boxes = [random_rois(20, 1, 128.0, dtype, gen)[:, 1:] for _ in range(2)]
    return feats, boxes, [(128, 132), (120, 128)]


@pytest.mark.parametrize("names", [["0", "1", "2", "3"], ["2"]], ids=["4 levels", "1 level"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pooler_matches_torchvisions(names, dtype):
    feats, boxes, shapes = pyramid(dtype)
    ours, theirs = MultiScaleRoIAlign(names, 7, 2), torchvision.ops.MultiScaleRoIAlign(names, 7, 2)
    got, expected = ours(feats, boxes, shapes), theirs(feats, boxes, shapes)
    assert got.is_contiguous() and ours.scales == theirs.scales
    grad = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, [feats[n] for n in names], grad)
    expected_grads = torch.autograd.grad(expected, [feats[n] for n in names], grad)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(got, expected, **tol)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, **tol)


def test_pooler_scripts_to_torchvisions():
    feats, boxes, shapes = pyramid()
    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    scripted = torch.jit.script(pooler)
    torch.testing.assert_close(scripted(feats, boxes, shapes), torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(feats, boxes, shapes))


@pytest.mark.parametrize("detector", ["faster_rcnn_fpn", "mask_rcnn_fpn"])
@pytest.mark.parametrize("representation_size", [None, 32])
def test_rcnns_pool_with_it(detector, representation_size):
    model = detection.build_detector(detector, "resnet50", num_classes=3, fpn_channels=16, representation_size=representation_size)
    heads = model.roi_heads
    assert isinstance(heads.box_roi_pool, MultiScaleRoIAlign) and heads.box_roi_pool.output_size == (7, 7)
    if detector == "mask_rcnn_fpn":
        assert isinstance(heads.mask_roi_pool, MultiScaleRoIAlign) and heads.mask_roi_pool.output_size == (14, 14)
        assert heads.mask_predictor.mask_fcn_logits.out_channels == 3
    mine = torchvision.ops.MultiScaleRoIAlign(["0"], 5, 1)
    assert detection.build_detector(detector, "resnet50", num_classes=3, box_roi_pool=mine).roi_heads.box_roi_pool is mine


def test_a_built_detector_scripts():
    """TorchScript compiles torchvision's pooler in its place (``__prepare_scriptable__``), same detections."""
    model = detection.build_detector("faster_rcnn_fpn", "resnet50", num_classes=3, fpn_channels=16, representation_size=32, min_size=64, max_size=96)
    model.eval()
    images = [torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(5))]
    scripted = torch.jit.script(model)
    assert not isinstance(scripted.roi_heads.box_roi_pool, MultiScaleRoIAlign)
    expected, got = model(images)[0], scripted(images)[1][0]
    torch.testing.assert_close(got["boxes"], expected["boxes"], atol=1e-4, rtol=1e-4)


def test_bad_rois_get_one_clear_error_and_degenerate_boxes_stay_in_bounds():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"rois: expected image indices in \[0, 2\) \(the features' batch\), got 0..2"):
        roi_align(x, torch.tensor([[0.0, 1, 1, 4, 4], [2.0, 1, 1, 4, 4]]), 2, 1.0, 2)
    with pytest.raises(ValueError, match=r"rois: expected a \[K, 5\] tensor .* got shape \[1, 4\]"):
        roi_align(x, torch.tensor([[1.0, 1, 4, 4]]), 2, 1.0, 2)
    far = torch.tensor([[0.0, 1e30, 1e30, 1e30, 1e30], [1.0, -1e30, -1e30, -1e29, -1e29]])
    assert torch.equal(roi_align(x, far, 2, 1.0, 2), torchvision.ops.roi_align(x, far, 2, 1.0, 2))
    # non-finite coordinates sample nothing (torchvision's kernel reads out of bounds on them: not compared)
    x.requires_grad_(True)
    broken = roi_align(x, torch.tensor([[0.0, 1, 1, float("inf"), float("inf")], [1.0, float("nan"), 1, 4, 4]]), 2, 1.0, 2)
    broken.sum().backward()
    assert not broken.any() and x.grad is not None and not x.grad.any()


def test_torch_compile_gets_torchvisions_pooler():
    feats, boxes, shapes = pyramid()
    compiled = torch.compile(MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2), backend="eager")
    expected = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(feats, boxes, shapes)
    assert torch.equal(compiled(feats, boxes, shapes), expected)
