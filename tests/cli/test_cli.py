"""The ``crnas`` command line."""

from __future__ import annotations

import json

import pytest
from crnas.cli import main


def test_flops_table(capsys):
    assert main(["flops", "cr_resnet50", "--input", "800x1088", "--detector", "faster_rcnn_fpn"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Architecture(resnet50, blocks=[1, 3, 5, 7]")
    assert out[1] == "faster_rcnn_fpn at 800x1088 (MACs; conv + linear layers)"
    assert out[-1].split()[:2] == ["total", "191.8389"]


def test_flops_json_and_files(tmp_path, capsys):
    path = tmp_path / "arch.json"
    path.write_text('{"family": "resnet18", "blocks": [1, 2, 3, 2], "dilations": [1, 2, 3, 1, 2, 3, 1, 2]}')
    assert main(["flops", str(path), "--input", "224", "--json", "--no-classifier"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] == [224, 224] and report["architecture"]["blocks"] == [1, 2, 3, 2]
    assert "classifier" not in report["by_stage"] and report["macs"] == sum(report["by_stage"].values())


def test_errors_are_one_line(capsys):
    assert main(["flops", "resnet51"]) == 1
    assert capsys.readouterr().err.strip().startswith("crnas flops: error: arch: expected an Architecture")
    with pytest.raises(SystemExit) as exit_info:
        main(["flops", "resnet50", "--input", "0x3"])
    assert exit_info.value.code == 2
    assert "argument --input: expected HxW with positive ints, got '0x3'" in capsys.readouterr().err


TINY = ["--synthetic", "16", "--image-size", "96", "--width", "0.125", "--min-size", "64", "--max-size", "96",
        "--fpn-channels", "16", "--representation-size", "32", "--batch-size", "4", "--val-fraction", "0.25", "--no-progress"]


def test_train_then_compare_runs(tmp_path, capsys):
    for name, arch, cap in (("base", "resnet18", "100"), ("cr", "cr_resnet50", "40")):
        assert main(["train", "--arch", arch, "--iterations", "4", "--out", str(tmp_path / name), "--max-dets", cap, *TINY]) == 0
    out = capsys.readouterr().out
    assert "trained 4 iterations; held-out COCO metrics (4 images):" in out
    run = json.loads((tmp_path / "cr" / "run.json").read_text())
    assert run["architecture"]["blocks"] == [1, 3, 5, 7] and run["split"] == {"val_fraction": 0.25, "seed": 0, "train": 12, "val": 4}
    assert set(run["metrics"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert run["model"]["max_detections"] == 40  # the detector keeps, and the AP counts, 40 per image
    # running again resumes the finished run (no new steps) and re-evaluates to the same numbers
    assert main(["train", "--arch", "cr_resnet50", "--iterations", "4", "--out", str(tmp_path / "cr"), "--max-dets", "40", *TINY]) == 0
    assert json.loads((tmp_path / "cr" / "run.json").read_text())["metrics"] == run["metrics"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "base"), str(tmp_path / "cr"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["blocks"] for r in rows] == [[2, 2, 2, 2], [1, 3, 5, 7]]
    assert {k: rows[1][k] for k in run["metrics"]} == run["metrics"]
    assert main(["eval", str(tmp_path)]) == 2
    assert "expected a run directory of `crnas train`" in capsys.readouterr().err
    # the typed record and the one way back to the trained detector
    from crnas.detection import detections_per_image
    from crnas.runs import RunRecord, load_detector

    record = RunRecord.load(tmp_path / "cr")
    assert record.to_dict() == run and record.model.max_detections == 40 and not record.model.pretrained
    model = load_detector(tmp_path / "cr")
    assert not model.training and detections_per_image(model) == 40 and model.architecture.blocks == [1, 3, 5, 7]
    legacy = {**run, "model": {k: v for k, v in run["model"].items() if k != "pretrained"} | {"trainable_layers": 5, "frozen_bn": False}}
    assert RunRecord.from_dict(legacy) == record  # run.json written by crnas 0.1.0


def test_train_with_group_norm(tmp_path, capsys):
    """--norm group trains a backbone with GroupNorm, recorded in run.json and rebuilt by load_detector;
    with pretrained weights (frozen BatchNorm) it is one clear error."""
    from crnas.runs import RunRecord, load_detector
    from torch import nn

    assert main(["train", "--arch", "resnet18", "--iterations", "2", "--out", str(tmp_path / "gn"), "--norm", "group", *TINY]) == 0
    assert RunRecord.load(tmp_path / "gn").model.norm == "group"
    modules = list(load_detector(tmp_path / "gn").backbone.body.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in modules) and not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    capsys.readouterr()
    args = ["train", "--arch", "resnet18", "--out", str(tmp_path / "x"), "--norm", "group", "--weights-backbone", "torchvision", *TINY]
    assert main(args) == 2  # a usage error
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "crnas train: error: --norm: expected 'batch' with pretrained backbone weights (they keep frozen BatchNorm), got 'group'"
    )
