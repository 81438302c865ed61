"""Fixtures for the evaluation tests: small datasets (the oracle detectors are in oracles.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from crnas.data import CocoDataset, SyntheticDetection, VOCDataset
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models and tensors: every test here runs on one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def synthetic() -> SyntheticDetection:
    """10 images of 192 px with small, medium and large objects (checked in the tests that need it)."""
    return SyntheticDetection(10, image_size=(192, 192), num_classes=3, max_objects=6)


def _png(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, dtype=np.uint8)).save(path)


@pytest.fixture
def coco_with_crowd(tmp_path: Path) -> CocoDataset:
    """Two images, category ids 5 and 9, one crowd region."""
    _png(tmp_path / "a.png", (100, 80))
    _png(tmp_path / "b.png", (60, 60))
    data = {
        "images": [{"id": 3, "file_name": "a.png", "width": 100, "height": 80},
                   {"id": 8, "file_name": "b.png", "width": 60, "height": 60}],
        "categories": [{"id": 9, "name": "b"}, {"id": 5, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 9, "bbox": [10, 10, 30, 20], "iscrowd": 0},
            {"id": 2, "image_id": 3, "category_id": 5, "bbox": [50, 40, 40, 30], "iscrowd": 0},
            {"id": 3, "image_id": 3, "category_id": 5, "bbox": [0, 0, 100, 10], "iscrowd": 1},
            {"id": 4, "image_id": 8, "category_id": 9, "bbox": [5, 5, 20, 40], "iscrowd": 0},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return CocoDataset(tmp_path / "ann.json", tmp_path)


@pytest.fixture
def voc_with_difficult(tmp_path: Path) -> VOCDataset:
    """Two images; the second object of the first one is difficult."""
    objects = {
        "1": [("cat", (11, 11, 40, 30), 0), ("dog", (51, 41, 90, 70), 1)],
        "2": [("dog", (6, 6, 25, 45), 0)],
    }
    for stem, objs in objects.items():
        _png(tmp_path / f"{stem}.png", (100, 80))
        xml = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
            f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for n, b, d in objs
        )
        size = "<size><width>100</width><height>80</height></size>"
        (tmp_path / f"{stem}.xml").write_text(f"<annotation><filename>{stem}.png</filename>{size}{xml}</annotation>")
    return VOCDataset(tmp_path)


@pytest.fixture
def dense_coco(tmp_path: Path) -> CocoDataset:
    """One 200x150 image with 300 objects (a 20 x 15 grid of 8x8 boxes) and one with 2."""
    _png(tmp_path / "dense.png", (200, 150))
    _png(tmp_path / "sparse.png", (40, 40))
    annotations = [
        {"id": 1 + r * 20 + c, "image_id": 1, "category_id": 1, "bbox": [10 * c + 1, 10 * r + 1, 8, 8]}
        for r in range(15) for c in range(20)
    ]
    annotations += [{"id": 1000 + k, "image_id": 2, "category_id": 1, "bbox": [5 + 15 * k, 5, 10, 10]} for k in range(2)]
    data = {
        "images": [{"id": 1, "file_name": "dense.png", "width": 200, "height": 150},
                   {"id": 2, "file_name": "sparse.png", "width": 40, "height": 40}],
        "categories": [{"id": 1, "name": "crown"}],
        "annotations": annotations,
    }
    (tmp_path / "dense.json").write_text(json.dumps(data))
    return CocoDataset(tmp_path / "dense.json", tmp_path)
