"""Fixtures for the data tests: tiny COCO and VOC folders written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datafiles import voc_xml, write_image
from pycocotools import mask as mask_utils


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models and tensors: every test here runs on one torch thread (see tests/conftest.py)."""


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    """Three images: RGB with clipped/dropped/crowd boxes, a grayscale negative, an RGBA with a polygon.

    Category ids are not contiguous and not sorted in the file: 12 zebra, 3 cat, 7 dog.
    """
    root = tmp_path / "coco"
    write_image(root / "images" / "a.png", (64, 48))
    write_image(root / "images" / "sub" / "b.png", (32, 32), mode="L", seed=1)
    write_image(root / "images" / "c.png", (40, 40), mode="RGBA", seed=2)
    crowd = np.zeros((48, 64), dtype=np.uint8, order="F")
    crowd[10:20, 30:50] = 1
    rle = mask_utils.encode(crowd)
    data = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 20, "file_name": "sub/b.png", "width": 32, "height": 32},
            {"id": 30, "file_name": "c.png", "width": 40, "height": 40},
        ],
        "categories": [{"id": 12, "name": "zebra"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [4, 4, 10, 10], "area": 90.0, "iscrowd": 0,
             "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [50, 30, 20, 30], "area": 240.0, "iscrowd": 0,
             "segmentation": [[50, 30, 63, 30, 63, 47, 50, 47]]},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [30, 10, 20, 10], "area": 200.0, "iscrowd": 1,
             "segmentation": {"size": [48, 64], "counts": rle["counts"].decode("ascii")}},
            {"id": 4, "image_id": 10, "category_id": 7, "bbox": [20, 20, 0, 5], "area": 0.0, "iscrowd": 0,
             "segmentation": [[20, 20, 20, 25, 20, 25]]},
            {"id": 5, "image_id": 30, "category_id": 12, "bbox": [10, 10, 20, 10], "iscrowd": 0,
             "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]},
        ],
    }
    (root / "ann.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def voc_dir(tmp_path: Path) -> Path:
    """VOC layout: 3 annotated images (one difficult object, one box past the border), train = 2 of them."""
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    write_image(root / "JPEGImages" / "000001.jpg", (50, 40))
    write_image(root / "JPEGImages" / "000002.jpg", (30, 30), seed=1)
    write_image(root / "JPEGImages" / "000003.jpg", (20, 20), seed=2)
    (root / "Annotations" / "000001.xml").write_text(
        voc_xml("000001.jpg", (50, 40), [("person", (1, 1, 10, 20), 0), ("dog", (11, 5, 30, 35), 1)])
    )
    (root / "Annotations" / "000002.xml").write_text(voc_xml("000002.jpg", (30, 30), [("cat", (5, 5, 40, 25), 0)]))
    (root / "Annotations" / "000003.xml").write_text(voc_xml("000003.jpg", (20, 20), []))
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000003\n")
    return root
