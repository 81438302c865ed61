"""VOCDataset on tiny VOC-layout and flat folders: coordinates, classes, difficult objects, bad data."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from crnas.data import VOCDataset, filter_ignored
from datafiles import voc_xml, write_image


def test_voc_layout_targets(voc_dir: Path, caplog):
    with caplog.at_level(logging.INFO, logger="crnas.data.voc"):
        ds = VOCDataset(voc_dir)
    assert ds.classes == ["cat", "dog", "person"]
    assert any("3 classes inferred" in r.getMessage() and "cat, dog, person" in r.getMessage() for r in caplog.records)
    assert ds.ids == ["000001", "000002", "000003"]
    image, target = ds[0]
    assert image.shape == (3, 40, 50)
    # 1-based inclusive pixel indices -> pixel edges
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.0, 0, 10, 20], [10, 4, 30, 35]]))
    assert target["labels"].tolist() == [3, 2]
    assert target["difficult"].tolist() == [False, True]
    assert target["iscrowd"].tolist() == [0, 0]
    assert target["area"].tolist() == [200.0, 620.0]
    assert target["image_id"] == 0


def test_difficult_objects_are_dropped_for_training(voc_dir: Path):
    target = VOCDataset(voc_dir).target(0)
    kept = filter_ignored(target)
    assert kept["labels"].tolist() == [3] and kept["difficult"].tolist() == [False]


def test_boxes_past_the_border_are_clipped_and_empty_images_kept(voc_dir: Path):
    ds = VOCDataset(voc_dir)
    assert ds.target(1)["boxes"].tolist() == [[4.0, 4.0, 30.0, 25.0]]
    assert ds.report.clipped == 1 and ds.report.dropped == 0 and ds.report.negatives == 1
    assert ds.target(2)["boxes"].shape == (0, 4)


def test_image_set_and_given_classes(voc_dir: Path):
    ds = VOCDataset(voc_dir, image_set="train", classes=["person", "dog", "cat", "horse"])
    assert ds.ids == ["000001", "000003"]
    assert ds.classes == ["person", "dog", "cat", "horse"]
    assert ds.target(0)["labels"].tolist() == [1, 2]


def test_flat_folder(tmp_path: Path):
    write_image(tmp_path / "x.png", (20, 10))
    write_image(tmp_path / "y.jpeg", (16, 16), seed=1)
    (tmp_path / "x.xml").write_text(voc_xml("x.png", (20, 10), [("b", (1, 1, 5, 5), 0)]))
    (tmp_path / "y.xml").write_text(voc_xml("elsewhere.jpg", None, [("a", (2, 2, 8, 8), 0)]))  # no size, stem match
    ds = VOCDataset(tmp_path)
    assert ds.classes == ["a", "b"]
    assert ds[0][0].shape == (3, 10, 20) and ds[1][0].shape == (3, 16, 16)
    assert ds.target(1)["labels"].tolist() == [1]


def test_unknown_class_when_classes_are_given(voc_dir: Path):
    message = r"000001.xml: object 1 has class 'dog', which is not in classes \['person', 'cat'\]"
    with pytest.raises(ValueError, match=message):
        VOCDataset(voc_dir, classes=["person", "cat"])


def test_malformed_xml_names_file(voc_dir: Path):
    xml = voc_dir / "Annotations" / "000002.xml"
    xml.write_text("<annotation><object>")
    with pytest.raises(ValueError, match=re.escape(f"{xml}: malformed XML")):
        VOCDataset(voc_dir)


def test_non_numeric_box_names_file_and_object(voc_dir: Path):
    xml = voc_dir / "Annotations" / "000002.xml"
    xml.write_text(xml.read_text().replace("<xmin>5</xmin>", "<xmin>five</xmin>"))
    with pytest.raises(ValueError, match=re.escape(f"{xml}: object 0 (cat): expected numeric <bndbox>")):
        VOCDataset(voc_dir)


def test_missing_image_names_it(voc_dir: Path):
    (voc_dir / "JPEGImages" / "000002.jpg").unlink()
    message = r"JPEGImages/000002.jpg: image file does not exist \(annotated by .*000002.xml\)"
    with pytest.raises(FileNotFoundError, match=message):
        VOCDataset(voc_dir)


def test_missing_image_set_and_listed_annotation(voc_dir: Path):
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/val.txt: image set file does not exist"):
        VOCDataset(voc_dir, image_set="val")
    (voc_dir / "ImageSets" / "Main" / "val.txt").write_text("000009\n")
    with pytest.raises(FileNotFoundError, match=r"000009.xml: annotation file does not exist \(listed in .*val.txt\)"):
        VOCDataset(voc_dir, image_set="val")


def test_folder_without_annotations(tmp_path: Path):
    with pytest.raises(ValueError, match="no .xml annotations found"):
        VOCDataset(tmp_path)
    with pytest.raises(ValueError, match="image_set: only valid with the VOC layout"):
        VOCDataset(tmp_path, image_set="train")
