"""SyntheticDetection: deterministic by (seed, index), exact visible boxes, a wide scale range, COCO export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from crnas.data import CocoDataset, SyntheticDetection
from crnas.data import transforms as T
from crnas.data.check import check_data
from crnas.data.synthetic import COCO_SIZE_MIX, MIN_SIDE, MIN_VISIBLE, SHAPES


def assert_same_target(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype, key
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


def test_deterministic_by_seed_and_index():
    a = SyntheticDetection(4, image_size=(96, 128), seed=3)
    b = SyntheticDetection(4, image_size=(96, 128), seed=3)
    for i in (3, 0, 2):  # any access order
        (ia, ta), (ib, tb) = a[i], b[i]
        assert ia.shape == (3, 96, 128) and ia.dtype == torch.float32
        assert torch.equal(ia, ib)
        assert_same_target(ta, tb)
        assert_same_target(a.target(i), ta)


def test_rendered_samples_are_kept_unchanged_within_the_budget(monkeypatch):
    import pickle

    from crnas.data import synthetic

    ds = SyntheticDetection(3, image_size=(64, 64), seed=5, masks=True)
    fresh = SyntheticDetection(3, image_size=(64, 64), seed=5, masks=True)
    image, target = ds[1]
    target["boxes"] += 1000  # what a caller does to its sample does not reach the kept one
    image.zero_()
    again, target_again = ds[1]
    assert 1 in ds._kept and torch.equal(again, fresh[1][0])
    assert_same_target(target_again, fresh[1][1])
    assert pickle.loads(pickle.dumps(ds))._kept == {}
    monkeypatch.setattr(synthetic, "_KEEP_BYTES", 64 * 64 * 5)  # one sample's pixels and object map
    small = SyntheticDetection(3, image_size=(64, 64), seed=5)
    for i in range(3):
        small[i]
    assert list(small._kept) == [0] and small._kept_bytes == 64 * 64 * 5
    assert torch.equal(small[2][0], fresh[2][0])


def test_different_seeds_and_indices_differ():
    a, b = SyntheticDetection(2, image_size=(64, 64), seed=0), SyntheticDetection(2, image_size=(64, 64), seed=1)
    assert not torch.equal(a[0][0], b[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_boxes_are_the_exact_extent_of_the_visible_pixels():
    ds = SyntheticDetection(12, image_size=(128, 96), num_classes=8, masks=True)
    for i in range(len(ds)):
        _, target = ds[i]
        masks = target["masks"]
        assert masks.shape == (len(target["labels"]), 128, 96) and masks.dtype == torch.uint8
        assert int(masks.sum(0).max()) <= 1  # visible parts never overlap
        for box, mask, area in zip(target["boxes"].tolist(), masks, target["area"].tolist()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert area == mask.sum().item()
        assert set(target["labels"].tolist()) <= set(range(1, 9))
        assert target["iscrowd"].sum() == 0


# SyntheticDetection(3, image_size=(96, 96), seed=5).target(2)["boxes"] as drawn before the COCO size mix (f7986ad)
EXPECTED_LOG_UNIFORM_BOXES = [
    [0.0, 27.0, 45.0, 60.0], [3.0, 73.0, 14.0, 82.0], [53.0, 46.0, 63.0, 54.0],
    [71.0, 71.0, 81.0, 80.0], [76.0, 56.0, 85.0, 67.0], [0.0, 0.0, 53.0, 27.0],
]


@pytest.mark.parametrize("sizes", ["coco", "log-uniform"])
def test_objects_are_occluded_but_at_least_half_visible(sizes: str):
    ds = SyntheticDetection(30, image_size=(128, 128), sizes=sizes)
    occluded = 0
    for i in range(len(ds)):
        _, target, layout = ds._render(i)
        for visible, full, (y0, y1, x0, x1) in zip(target["area"].tolist(), layout.full_area, layout.regions):
            assert visible >= MIN_VISIBLE * full
            inside = y0 > 0 and x0 > 0 and y1 < 128 and x1 < 128  # not cut by the border: hidden = occluded
            occluded += inside and visible < full
    assert occluded >= 3


@pytest.mark.parametrize("sizes", ["coco", "log-uniform"])
def test_scales_span_small_to_most_of_the_image(sizes: str):
    ds = SyntheticDetection(60, image_size=(256, 256), sizes=sizes)
    sides = torch.cat([(t["boxes"][:, 2:] - t["boxes"][:, :2]).max(1).values for t in map(ds.target, range(len(ds)))])
    assert sides.min() < 2 * MIN_SIDE
    assert sides.max() > 0.5 * 256
    labels = torch.cat([ds.target(i)["labels"] for i in range(len(ds))])
    assert set(labels.tolist()) == {1, 2, 3, 4}


@pytest.mark.parametrize(("image", "reference"), [(256, 192), (384, 384)])
def test_coco_size_mix_at_the_detector_resize(image: int, reference: int):
    """check-data, at the resize the mix is drawn for, sees COCO's small/medium/large shares (within 7 points)."""
    ds = SyntheticDetection(200, image_size=(image, image), seed=11, size_reference=reference)
    check = check_data(ds, min_size=reference, max_size=4 * reference)
    sizes, total = check.sizes, sum(check.sizes.values())
    assert check.boxes == total == sum(len(ds.target(i)["boxes"]) for i in range(len(ds)))
    for name, share in zip(("small", "medium", "large"), COCO_SIZE_MIX):
        assert abs(sizes[name] / total - share) < 0.07, (name, sizes)


def test_size_ranges_that_do_not_fit_are_left_out():
    """At a 96 px detector input no object can be COCO-large (>= 96² pixels): small and medium only."""
    ds = SyntheticDetection(40, image_size=(128, 128), size_reference=96)
    sizes = check_data(ds, min_size=96, max_size=128).sizes
    assert sizes["large"] == 0 and sizes["small"] > sizes["medium"] > 0


def test_log_uniform_generator_is_unchanged():
    """The earlier generator still draws the same images (results recorded with it stay reproducible)."""
    target = SyntheticDetection(3, image_size=(96, 96), seed=5, sizes="log-uniform").target(2)
    assert target["boxes"].tolist() == EXPECTED_LOG_UNIFORM_BOXES


def test_classes_and_argument_checks():
    assert SyntheticDetection(1, num_classes=3).classes == list(SHAPES[:3])
    with pytest.raises(ValueError, match=r"num_classes: expected an int in \[1, 8\], got 9"):
        SyntheticDetection(1, num_classes=9)
    with pytest.raises(ValueError, match=r"image_size: expected \(height, width\) with both >= 32, got \(16, 64\)"):
        SyntheticDetection(1, image_size=(16, 64))
    with pytest.raises(IndexError, match=r"index: expected an int in \[0, 2\), got 2"):
        SyntheticDetection(2)[2]
    with pytest.raises(ValueError, match=r"sizes: expected one of coco, log-uniform, got 'uniform'"):
        SyntheticDetection(1, sizes="uniform")
    with pytest.raises(ValueError, match=r"size_reference: expected an int >= 32 \(pixels\), got 8"):
        SyntheticDetection(1, size_reference=8)


def test_transforms_use_the_given_generator():
    ds = SyntheticDetection(1, image_size=(64, 64), transforms=T.RandomHorizontalFlip(0.5))
    raw_image, raw_target = ds.load(0)
    flips = []
    for seed in range(8):
        image, target = ds.get(0, torch.Generator().manual_seed(seed))
        flipped = not torch.equal(image, raw_image)
        assert torch.equal(image, raw_image.flip(-1) if flipped else raw_image)
        x1, y1, x2, y2 = raw_target["boxes"].unbind(1)
        expected = torch.stack([64 - x2, y1, 64 - x1, y2], 1) if flipped else raw_target["boxes"]
        assert torch.equal(target["boxes"], expected)
        flips.append(flipped)
    assert any(flips) and not all(flips)
    assert torch.equal(ds[0][0], ds[0][0])


def test_export_coco_round_trip(tmp_path: Path):
    ds = SyntheticDetection(5, image_size=(64, 80), num_classes=5, seed=7, masks=True)
    ann_file, image_root = ds.export_coco(tmp_path / "syn")
    coco = CocoDataset(ann_file, image_root, masks=True)
    assert coco.classes == ds.classes and len(coco) == len(ds)
    for i in range(len(ds)):
        (a, ta), (b, tb) = ds[i], coco[i]
        assert torch.equal(a, b)
        assert_same_target(ta, tb)
    assert coco.report.clipped == coco.report.dropped == 0
