"""Data mistakes a user can make end as one ``crnas <command>: error:`` line, early."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from crnas.cli import main
from PIL import Image


def write_coco(root: Path, objects: bool = True, suffix: str = ".png", n: int = 8) -> Path:
    images, annotations = [], []
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / f"{i}{suffix}")
        images.append({"id": i + 1, "file_name": f"{i}{suffix}", "width": 64, "height": 48})
        if objects:
            annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [8, 8, 24, 20]})
    (root / "ann.json").write_text(json.dumps({"images": images, "categories": [{"id": 1, "name": "crown"}], "annotations": annotations}))
    return root / "ann.json"


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_check_data_report(tmp_path, capsys):
    ann = write_coco(tmp_path)
    assert main(["check-data", "--coco", str(ann), str(tmp_path), "--min-size", "96", "--max-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "images: 8 (0 without objects, 0 unreadable or inconsistent)" in out
    assert "classes (1): crown 8" in out and "objects per image: max 1" in out
    assert "(shorter side 96, longer at most 128; COCO's 32², 96²): small 0 (0%), medium 8 (100%), large 0 (0%)" in out


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_check_data_names_a_truncated_image(tmp_path, capsys, suffix):
    ann = write_coco(tmp_path, suffix=suffix)
    data = (tmp_path / f"3{suffix}").read_bytes()
    (tmp_path / f"3{suffix}").write_bytes(data[: len(data) // 2])
    assert main(["check-data", "--coco", str(ann), str(tmp_path)]) == 1
    line = error_line(capsys)
    assert line.startswith(f"crnas check-data: error: 1 of 8 images cannot be used (first: {tmp_path / ('3' + suffix)}: cannot read image")


def test_truncated_image_read_in_a_loader_worker_is_one_line(tmp_path, capsys):
    ann = write_coco(tmp_path)
    data = (tmp_path / "0.png").read_bytes()
    (tmp_path / "0.png").write_bytes(data[: len(data) // 2])
    args = ["train", "--arch", "resnet18", "--coco", str(ann), str(tmp_path), "--out", str(tmp_path / "run"), "--width", "0.125",
            "--min-size", "48", "--max-size", "64", "--fpn-channels", "16", "--representation-size", "16", "--iterations", "4",
            "--batch-size", "8", "--val-fraction", "0.25", "--workers", "1", "--no-progress"]
    assert main(args) == 1
    assert error_line(capsys).startswith(f"crnas train: error: {tmp_path / '0.png'}: cannot read image (OSError: ")


def test_data_without_objects_is_refused_before_training(tmp_path, capsys):
    ann = write_coco(tmp_path, objects=False)
    common = ["--coco", str(ann), str(tmp_path), "--no-progress"]
    assert main(["search", *common, "--preset", "tiny", "--family", "resnet18", "--out", str(tmp_path / "s")]) == 1
    assert error_line(capsys).startswith("crnas search: error: data: the archtrain split (6 images of ")
    assert not (tmp_path / "s" / "stage_supernet").exists()
    assert main(["train", "--arch", "resnet18", *common, "--out", str(tmp_path / "t")]) == 1
    assert "has no annotated object" in error_line(capsys)
    assert main(["check-data", "--coco", str(ann), str(tmp_path)]) == 1
    assert error_line(capsys) == f"crnas check-data: error: {ann}: no image has an annotated object"
    (tmp_path / "empty.json").write_text(json.dumps({"images": [], "categories": []}))
    assert main(["train", "--arch", "resnet18", "--coco", str(tmp_path / "empty.json"), str(tmp_path), "--out", str(tmp_path / "e")]) == 1
    assert error_line(capsys) == "crnas train: error: dataset: expected at least 2 samples to split, got 0"


def test_unavailable_device_is_named(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["--synthetic", "8", "--out", str(tmp_path / "r"), "--device", "cuda"]
    assert main(["train", "--arch", "resnet18", *args]) == 1
    assert error_line(capsys).startswith("crnas train: error: --device: device 'cuda' is not available (")
    assert main(["search", "--preset", "tiny", *args]) == 1
    line = error_line(capsys)
    assert "device 'cuda' is not available" in line and line.endswith("available: cpu")
    assert main(["search", "--preset", "paper", "--synthetic", "8", "--out", str(tmp_path / "p")]) == 1  # the preset's cuda
    assert "--device: device 'cuda' is not available" in error_line(capsys)
    assert main(["train", "--arch", "resnet18", "--synthetic", "8", "--out", str(tmp_path / "g"), "--device", "gpu"]) == 1
    assert error_line(capsys) == "crnas train: error: --device: expected a torch device (cpu, cuda, cuda:1, mps, ...), got 'gpu'"
