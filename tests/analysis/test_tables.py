"""Tables (pandas DataFrames): architecture comparison, search-result tables; ``load_result``, ``load_backbone``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from crnas.analysis import (
    architecture_table,
    as_architectures,
    dilation_steps_table,
    load_backbone,
    load_result,
    result_architectures,
    stage_table,
)
from crnas.detection import build_detector
from crnas.models import get_architecture


def test_architecture_table():
    table = architecture_table(["resnet50", "scr_resnet50", "cr_resnet50"])
    assert isinstance(table, pd.DataFrame) and list(table["name"]) == ["resnet50", "scr_resnet50", "cr_resnet50"]
    assert table.loc[2, "dilations"] == "1 | 1 2 1 | 1 1 2 3 1 | 1 2 1 3 2 2 3"
    assert table.loc[0, "GMACs"] == pytest.approx(192.5, rel=0.01)  # the paper's ResNet50 Faster R-CNN figure
    assert table.loc[1, "MACs vs first"].startswith(("+0.", "-0."))
    backbone = architecture_table({"r": "resnet50"}, input_size=224, detector=None)
    assert backbone.loc[0, "GMACs"] == backbone.loc[0, "backbone GMACs"] == pytest.approx(4.087, abs=1e-3)  # 4.089 less the fc


def test_as_architectures_labels():
    arch = get_architecture("cr_resnet50")
    assert list(as_architectures([arch, "resnet50", "resnet50"])) == ["resnet50 [1, 3, 5, 7]", "resnet50", "resnet50 (2)"]
    assert list(as_architectures(arch.to_dict())) == ["resnet50 [1, 3, 5, 7]"]


def test_result_tables(example_result, tmp_path):
    table = stage_table(example_result)
    rows = example_result["stage_search"]["allocations"]
    assert len(table) == len(rows) == example_result["space"]["size"]
    assert table.loc[0, "best"] and table.loc[0, "blocks"] == example_result["stage_search"]["best"]
    assert table["AP"].is_monotonic_decreasing and list(table["rank"][:3]) == [1, 2, 3]
    assert table["baseline"].sum() == 1
    assert (table[["C2", "C3", "C4", "C5"]].sum(axis=1) == 16).all()
    steps = dilation_steps_table(example_result)
    assert len(steps) == 16 and steps.iloc[-1]["best prefix"] == example_result["dilation_search"]["dilations"]
    assert steps.iloc[0]["stage"] == "C2" and steps.iloc[-1]["stage"] == "C5"
    archs = result_architectures(example_result)
    assert list(archs) == ["baseline", "found"] and archs["found"].blocks == example_result["architecture"]["blocks"]

    (tmp_path / "result.json").write_text(json.dumps(example_result))
    assert load_result(tmp_path).stage_search.best == example_result["stage_search"]["best"]
    with pytest.raises(FileNotFoundError, match="result: expected a result.json"):
        load_result(tmp_path / "missing")
    (tmp_path / "result.json").write_text(json.dumps({k: v for k, v in example_result.items() if k != "stage_search"}))
    with pytest.raises(ValueError, match=r"result.json: expected a search result, got KeyError: 'stage_search'"):
        load_result(tmp_path)
    with pytest.raises(ValueError, match=r"result: expected a search result, got KeyError: 'macs'"):
        load_result({"architecture": example_result["architecture"], "baseline": example_result["baseline"]})


def test_a_result_of_an_older_crnas_loads(example_path, example_result, differentiable_result):
    """The example predates the confidence records, the fallback, the archval reliability, the probes and some settings; they read as
    absent / their defaults."""
    record = load_result(example_path)
    assert record.stage_search.confidence is None and all(s.confidence is None for s in record.dilation_search.steps)
    assert record.config.max_detections == 100 and record.architecture == get_architecture(example_result["architecture"])
    assert record.stage_search.allocations[0].metrics["AP"] == example_result["stage_search"]["allocations"][0]["AP"]
    assert record.data.spec == {"kind": "synthetic", "num_images": 40, "image_size": 128, "seed": 0}

    def without_new_keys(d):
        d = json.loads(json.dumps(d))
        d["stage_search"].pop("confidence", None)
        assert d["stage_search"].pop("fallback") is False and d["dilation_search"].pop("final") is None
        assert d["stage_search"].pop("archval") is None and d["stage_search"].pop("probes") is None
        for step in d["dilation_search"].get("steps", []):
            step.pop("confidence", None)
        return {**d, "config": {k: v for k, v in d["config"].items() if k in example_result["config"]}}

    assert without_new_keys(record.to_dict()) == example_result
    differentiable = load_result(differentiable_result)
    assert differentiable.dilation_search.choices is None and differentiable.dilation_search.final is None
    assert differentiable.to_dict()["dilation_search"] == {**differentiable_result["dilation_search"], "final": None}


@pytest.mark.parametrize("detector", ["faster_rcnn_fpn", "retinanet_fpn"])
def test_load_backbone_from_a_detector_checkpoint(tmp_path, detector):
    arch = get_architecture("scr_resnet50").replace(width=0.125)
    torch.manual_seed(1)
    model = build_detector(detector, arch, num_classes=3, fpn_channels=24).eval()
    torch.save({"model": model.state_dict(), "iteration": 3}, tmp_path / "last.pt")
    loaded = load_backbone(arch, tmp_path / "last.pt").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model.backbone(x), loaded(x)
    assert list(got) == list(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    assert load_backbone(arch, model.state_dict()).fpn.inner_blocks[0][0].out_channels == 24
    with pytest.raises(ValueError, match="fpn_channels: expected 24"):
        load_backbone(arch, tmp_path / "last.pt", fpn_channels=32)
    with pytest.raises(ValueError, match="checkpoint: does not fit .*check the width"):
        load_backbone(arch.replace(width=0.25), tmp_path / "last.pt")
    with pytest.raises(ValueError, match="checkpoint: cannot load"):
        load_backbone(arch, tmp_path / "nothing.pt")
