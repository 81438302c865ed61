"""CocoDataset on a tiny COCO folder: targets, label mapping, masks, bad data."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from crnas.data import CocoDataset, filter_ignored


def test_targets_follow_the_torchvision_contract(coco_dir: Path):
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images")
    assert len(ds) == 3
    assert ds.classes == ["cat", "dog", "zebra"]
    assert ds.cat_id_to_label == {3: 1, 7: 2, 12: 3}
    assert ds.label_to_cat_id == {1: 3, 2: 7, 3: 12}
    image, target = ds[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert target["image_id"] == 10
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    torch.testing.assert_close(target["boxes"], torch.tensor([[4.0, 4, 14, 14], [50, 30, 64, 48], [30, 10, 50, 20]]))
    assert target["labels"].tolist() == [2, 1, 1]
    assert target["iscrowd"].tolist() == [0, 0, 1]
    assert target["area"].tolist() == [90.0, 240.0, 200.0]
    assert "masks" not in target


def test_crowd_regions_are_kept_and_filtered_for_training(coco_dir: Path):
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images", masks=True)
    _, target = ds.load(0)
    kept = filter_ignored(target)
    assert kept["iscrowd"].tolist() == [0, 0]
    assert kept["boxes"].shape == (2, 4) and kept["masks"].shape == (2, 48, 64)
    torch.testing.assert_close(kept["boxes"], target["boxes"][:2])
    assert kept["image_id"] == 10


def test_negatives_are_kept_and_missing_area_is_the_box_area(coco_dir: Path):
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images")
    _, negative = ds[1]
    assert negative["boxes"].shape == (0, 4) and negative["labels"].shape == (0,)
    assert ds.report.negatives == 1
    assert ds.target(2)["area"].tolist() == [200.0]


def test_masks_decode_polygons_and_rle(coco_dir: Path):
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images", masks=True)
    _, target = ds.load(0)
    masks = target["masks"]
    assert masks.dtype == torch.uint8 and masks.shape == (3, 48, 64)
    assert masks[2].sum() == 200 and masks[2][10:20, 30:50].all()  # the crowd RLE
    ys, xs = torch.nonzero(masks[0], as_tuple=True)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (4, 13, 4, 13)  # polygon [4, 14] in pixel edges
    _, last = ds.load(2)
    assert last["masks"].shape == (1, 40, 40)


def test_bad_boxes_are_clipped_or_dropped_counted_and_logged(coco_dir: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="crnas.data.report"):
        ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images")
    assert (ds.report.clipped, ds.report.dropped, ds.report.boxes) == (1, 1, 4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 clipped" in warnings[0] and "1 dropped" in warnings[0]
    assert "annotation 4" in warnings[0] and "ann.json" in warnings[0]


def test_grayscale_and_rgba_are_converted_to_rgb_and_counted(coco_dir: Path):
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images")
    assert ds[1][0].shape == (3, 32, 32)
    assert ds[2][0].shape == (3, 40, 40)
    assert ds.report.converted == {"L": 1, "RGBA": 1}


def _rewrite(coco_dir: Path, edit) -> Path:
    data = json.loads((coco_dir / "ann.json").read_text())
    edit(data)
    (coco_dir / "ann.json").write_text(json.dumps(data))
    return coco_dir / "ann.json"


def test_unknown_category_names_file_and_annotation(coco_dir: Path):
    ann = _rewrite(coco_dir, lambda d: d["annotations"][0].update(category_id=99, id=17))
    message = re.escape(f"{ann}: annotation 17 has category_id 99, which is not in 'categories'")
    with pytest.raises(ValueError, match=message):
        CocoDataset(ann, coco_dir / "images")


def test_unknown_image_id_names_file(coco_dir: Path):
    ann = _rewrite(coco_dir, lambda d: d["annotations"][1].update(image_id=5))
    with pytest.raises(ValueError, match=re.escape(f"{ann}: annotation 2 has image_id 5, which is not in 'images'")):
        CocoDataset(ann, coco_dir / "images")


def test_malformed_json_names_file(coco_dir: Path):
    (coco_dir / "ann.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=re.escape(f"{coco_dir / 'ann.json'}: malformed JSON")):
        CocoDataset(coco_dir / "ann.json", coco_dir / "images")


def test_missing_annotation_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.json: annotation file does not exist"):
        CocoDataset(tmp_path / "nope.json", tmp_path)


def test_missing_image_fails_at_construction_naming_it(coco_dir: Path):
    (coco_dir / "images" / "c.png").unlink()
    message = re.escape(f"{coco_dir / 'images' / 'c.png'}: image file does not exist")
    with pytest.raises(FileNotFoundError, match=message):
        CocoDataset(coco_dir / "ann.json", coco_dir / "images")


def test_unreadable_image_names_it(coco_dir: Path):
    (coco_dir / "images" / "c.png").write_bytes(b"not a png at all")
    ds = CocoDataset(coco_dir / "ann.json", coco_dir / "images")
    with pytest.raises(OSError, match=re.escape(f"{coco_dir / 'images' / 'c.png'}: cannot read image")):
        ds[2]


def test_image_size_disagreeing_with_json_names_both(coco_dir: Path):
    ann = _rewrite(coco_dir, lambda d: d["images"][2].update(width=41))
    ds = CocoDataset(ann, coco_dir / "images")
    with pytest.raises(ValueError, match=r"c.png: image is 40x40 \(width x height\), but .*ann.json says 41x40"):
        ds[2]


def test_malformed_bbox_and_missing_segmentation(coco_dir: Path):
    ann = _rewrite(coco_dir, lambda d: d["annotations"][4].pop("segmentation"))
    CocoDataset(ann, coco_dir / "images")  # fine without masks
    with pytest.raises(ValueError, match="annotation 5 has no 'segmentation', but masks=True"):
        CocoDataset(ann, coco_dir / "images", masks=True)
    ann = _rewrite(coco_dir, lambda d: d["annotations"][0].update(bbox=[1, 2, 3]))
    message = r"annotation 1: expected 'bbox' to be \[x, y, width, height\], got \[1, 2, 3\]"
    with pytest.raises(ValueError, match=message):
        CocoDataset(ann, coco_dir / "images")




def test_undecodable_segmentation_names_the_annotation(coco_dir: Path):
    ann = _rewrite(coco_dir, lambda d: d["annotations"][2]["segmentation"].update(size=[10, 10]))
    ds = CocoDataset(ann, coco_dir / "images", masks=True)
    message = re.escape(f"{ann}: annotation 3: cannot decode 'segmentation'") + r".*RLE size \[10, 10\]"
    with pytest.raises(ValueError, match=message):
        ds.load(0)
