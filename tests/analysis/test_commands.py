"""``crnas erf`` and ``crnas plot`` on tiny inputs."""

from __future__ import annotations

import csv
import json

import torch
from crnas.cli import main
from crnas.detection import build_detector
from crnas.models import get_architecture

TINY = ["--input", "96", "--n", "1", "--width", "0.125"]


def test_erf_random_weights(tmp_path, capsys):
    out = tmp_path / "erf"
    assert main(["erf", "--arch", "resnet50", "--arch", "cr_resnet50", *TINY, "--fpn-channels", "16", "--levels", "P4", "C5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weights: random for resnet50, cr_resnet50" in printed
    assert {p.name for p in out.iterdir()} == {"erf.png", "erf_resnet50.png", "erf_cr_resnet50.png", "erf.json", "erf.csv"}
    summary = json.loads((out / "erf.json").read_text())
    assert summary["models"]["cr_resnet50"]["weights"] == "random"
    assert summary["models"]["cr_resnet50"]["architecture"]["width"] == 0.125
    assert summary["models"]["resnet50"]["levels"]["C5"]["stride"] == 32
    rows = list(csv.DictReader((out / "erf.csv").open()))
    assert [(r["model"], r["level"]) for r in rows] == [("resnet50", "P4"), ("resnet50", "C5"), ("cr_resnet50", "P4"), ("cr_resnet50", "C5")]


def test_erf_with_checkpoint_and_synthetic_images(tmp_path, capsys):
    arch = get_architecture("scr_resnet50").replace(width=0.125)
    torch.manual_seed(0)
    model = build_detector("faster_rcnn_fpn", arch, num_classes=3, fpn_channels=16)
    torch.save({"model": model.state_dict()}, tmp_path / "last.pt")
    out = tmp_path / "erf"
    args = ["erf", "--arch", "scr_resnet50", "--checkpoint", str(tmp_path / "last.pt"), *TINY, "--images", "synthetic", "--out", str(out)]
    assert main(args) == 0
    assert "weights: random" not in capsys.readouterr().out
    summary = json.loads((out / "erf.json").read_text())
    assert summary["models"]["scr_resnet50"]["weights"] == str(tmp_path / "last.pt") and summary["inputs"] == "synthetic"
    assert main(["erf", "--arch", "resnet50", "--arch", "cr_resnet50", "--checkpoint", "x.pt", *TINY, "--out", str(out)]) == 2
    assert "--checkpoint: expected one per --arch (2), got 1" in capsys.readouterr().err
    assert main(["erf", "--arch", "resnet50", *TINY, "--levels", "P9", "--out", str(out)]) == 1
    assert "levels: expected names among" in capsys.readouterr().err


def test_plot(tmp_path, capsys, example_path):
    assert main(["plot", str(example_path), "--out", str(tmp_path / "fig"), "--dpi", "50"]) == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["allocation.png", "dilation_search.png", "macs.png", "stage_search.png"]
    assert capsys.readouterr().out.splitlines()[0] == f"allocation: {tmp_path / 'fig' / 'allocation.png'}"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text(example_path.read_text())
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "figures" / "macs.png").is_file()
    assert main(["plot", str(tmp_path / "nothing")]) == 1
