"""``check_data`` decodes every image and summarises the data; ``preflight`` refuses unusable splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crnas.data import CocoDataset, SyntheticDetection, VOCDataset, split
from crnas.data.check import check_data, preflight, resize_scale
from datafiles import voc_xml, write_image


def coco(tmp_path: Path, annotations: list[dict], images: dict[str, tuple[int, int]] | None = None, suffix: str = ".png") -> CocoDataset:
    images = images or {f"a{suffix}": (64, 48), f"b{suffix}": (40, 40), f"c{suffix}": (32, 64)}
    for seed, (name, size) in enumerate(images.items()):
        write_image(tmp_path / name, size, seed=seed)
    data = {
        "images": [{"id": i + 1, "file_name": n, "width": s[0], "height": s[1]} for i, (n, s) in enumerate(images.items())],
        "categories": [{"id": 1, "name": "tree"}, {"id": 2, "name": "car"}],
        "annotations": annotations,
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return CocoDataset(tmp_path / "ann.json", tmp_path)


ANNOTATIONS = [
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},       # small at any resize below 8x
    {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
    {"id": 3, "image_id": 1, "category_id": 2, "bbox": [50, 40, 30, 30]},   # clipped to the 64x48 image
    {"id": 4, "image_id": 2, "category_id": 2, "bbox": [5, 5, 0, 10]},      # dropped (empty)
    {"id": 5, "image_id": 3, "category_id": 1, "bbox": [0, 0, 32, 64], "iscrowd": 1},
]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_report_counts_classes_objects_and_sizes(tmp_path):
    dataset = coco(tmp_path, ANNOTATIONS)
    result = check_data(dataset, min_size=96, max_size=128)  # 64x48 -> x2, 40x40 -> x2.4, 32x64 -> x2
    assert (result.images, result.negatives, result.boxes, result.clipped, result.dropped) == (3, 1, 4, 1, 1)
    assert result.classes == {"tree": 3, "car": 1} and result.ignored == 1
    assert result.max_objects == 3 and result.densest == str(tmp_path / "a.png")
    # areas x4: 16 -> 64 (small), 400 -> 1600 (medium), 14*8=112 -> 448 (small), 2048 -> 8192 (medium)
    assert result.sizes == {"small": 2, "medium": 2} and not result.errors
    lines = result.lines()
    assert lines[1] == "images: 3 (1 without objects, 0 unreadable or inconsistent)"
    assert lines[3] == "classes (2): tree 3, car 1; 1 crowd/difficult (ignored)"
    assert lines[5].endswith("small 2 (50%), medium 2 (50%), large 0 (0%)")
    assert resize_scale(480, 640, 800, 1333) == 800 / 480 and resize_scale(100, 1000, 800, 1333) == 1.333


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_and_resized_images_are_named(tmp_path, suffix):
    dataset = coco(tmp_path, ANNOTATIONS, suffix=suffix)
    truncate(tmp_path / f"b{suffix}")
    write_image(tmp_path / f"c{suffix}", (30, 64))
    errors = check_data(dataset, min_size=96, max_size=128).errors
    assert len(errors) == 2
    assert errors[0].startswith(f"{tmp_path / ('b' + suffix)}: cannot read image")
    assert errors[1] == f"{tmp_path / ('c' + suffix)}: image is 30x64 (width x height), but {tmp_path / 'ann.json'} says 32x64"
    # the pre-flight reads headers only: it finds the wrong size, not the truncation
    with pytest.raises(ValueError, match=r"c\S*: image is 30x64 \(width x height\), but \S*ann.json says 32x64"):
        preflight([("train", dataset)])


def test_preflight_refuses_splits_without_objects(tmp_path):
    dataset = coco(tmp_path, [ANNOTATIONS[0]])
    train, val = split(dataset, 0.34, 0)
    assert len(val) == 1
    with pytest.raises(ValueError, match=r"data: the \w+ split \(\d images of \S+ann.json\) has no annotated object"):
        preflight([("archtrain", train), ("archval", val)])
    crowd_only = coco(tmp_path, [ANNOTATIONS[4]])
    with pytest.raises(ValueError, match="the train split .* has no annotated object .crowd and difficult ones do not count."):
        preflight([("train", crowd_only)])
    preflight([("train", coco(tmp_path, ANNOTATIONS))])  # passes
    preflight([("train", SyntheticDetection(4, image_size=(32, 32)))])  # no files to check


def test_voc_and_subsets(tmp_path):
    write_image(tmp_path / "1.png", (50, 40))
    write_image(tmp_path / "2.png", (50, 40))
    (tmp_path / "1.xml").write_text(voc_xml("1.png", (50, 40), [("cat", (1, 1, 10, 10), 0), ("dog", (5, 5, 45, 35), 1)]))
    (tmp_path / "2.xml").write_text(voc_xml("2.png", (50, 40), [("cat", (1, 1, 10, 10), 0)]))
    dataset = VOCDataset(tmp_path)
    result = check_data(dataset, min_size=40, max_size=50)
    assert result.classes == {"cat": 2, "dog": 1} and result.ignored == 1 and result.sizes == {"small": 2, "medium": 1}  # dog: 41x31
    a, b = split(dataset, 0.5, 0)
    preflight([("a", a), ("b", b)])
    (tmp_path / "2.xml").write_text(voc_xml("2.png", (50, 40), [("cat", (1, 1, 10, 10), 1)]))
    dataset = VOCDataset(tmp_path)
    a, b = split(dataset, 0.5, 0)
    with pytest.raises(ValueError, match="has no annotated object"):
        preflight([("a", a), ("b", b)])
