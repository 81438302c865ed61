"""crnas.Architecture: validation, identity, serialisation, layout; crnas.arch: the coercion and the core's constants."""

from __future__ import annotations

import copy
import json
import pickle

import crnas
import pytest
from crnas import Architecture
from crnas.arch import CONVENTION, DETECTORS, DILATIONS, FAMILIES, MACS_INPUT_SIZE, PAPER_ARCHITECTURES, StageSpace, get_architecture
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def architectures(draw):
    family = draw(st.sampled_from(FAMILIES))
    minimum = [1, 1, 2, 2] if family == "mobilenet_v2" else [1, 1, 1, 1]
    blocks = [draw(st.integers(m, 12)) for m in minimum]
    dilations = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=sum(blocks), max_size=sum(blocks)))
    width = draw(st.sampled_from([0.125, 0.25, 0.5, 1.0, 1.5]))
    return Architecture(family, blocks, dilations, width)


@settings(max_examples=200, deadline=None)
@given(architectures())
def test_json_round_trip_identity_and_pickle(arch):
    again = Architecture.from_json(arch.to_json())
    assert again == arch and hash(again) == hash(arch)
    assert arch.to_dict() == json.loads(arch.to_json()) and Architecture.from_dict(arch.to_dict()) == arch
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert copy.deepcopy(arch) == arch
    assert arch.num_blocks == sum(arch.blocks) == len(arch.dilations)
    assert [d for stage in arch.stage_dilations for d in stage] == arch.dilations
    layout = arch.layout()
    assert [len(s) for s in layout["stages"]] == arch.blocks
    assert [b.get("dilation") for s in layout["stages"] for b in s] == arch.dilations


def test_named_architectures():
    base = Architecture.baseline("resnet50")
    assert base.blocks == [3, 4, 6, 3] and set(base.dilations) == {1}
    assert Architecture.baseline("resnet101").blocks == [3, 4, 23, 3]
    assert Architecture.baseline("mobilenet_v2").blocks == [2, 3, 7, 4]
    scr, cr = Architecture.paper("scr_resnet50"), Architecture.paper("cr_resnet50")
    assert scr.blocks == cr.blocks == [1, 3, 5, 7] and set(scr.dilations) == {1}
    assert cr.stage_dilations == [[1], [1, 2, 1], [1, 1, 2, 3, 1], [1, 2, 1, 3, 2, 2, 3]]
    assert repr(cr) == "Architecture(resnet50, blocks=[1, 3, 5, 7], dilations=1 | 1 2 1 | 1 1 2 3 1 | 1 2 1 3 2 2 3)"
    assert scr != cr and Architecture("resnet50", [1, 3, 5, 7]) == scr
    assert len({scr, cr, Architecture("resnet50", [1, 3, 5, 7])}) == 2
    assert (scr == "scr_resnet50") is False


def test_replace():
    cr = Architecture.paper("cr_resnet50")
    assert cr.replace(width=0.5).dilations == cr.dilations
    assert cr.replace(blocks=[3, 4, 6, 3]) == Architecture.baseline("resnet50")
    assert cr.replace(dilations=[1] * 16) == Architecture.paper("scr_resnet50")


def test_layout_channels_follow_torchvision():
    layout = Architecture.baseline("resnext50_32x4d").layout()
    first = layout["stages"][0][0]
    assert first == {"type": "bottleneck", "inplanes": 64, "width": 128, "planes": 64, "stride": 1, "groups": 32, "dilation": 1, "downsample": True}
    assert layout["stage_channels"] == [256, 512, 1024, 2048]
    mb = Architecture.baseline("mobilenet_v2").layout()
    assert mb["stem"]["channels"] == 32 and tuple(mb["last_conv"]) == (320, 1280)
    tiny = Architecture("resnet50", [1, 1, 1, 1], width=0.125).layout()
    assert tiny["stage_channels"] == [32, 64, 128, 256]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (("resnet50", [1, 2, 3]), ValueError, r"blocks: expected 4 block counts \[C2, C3, C4, C5\], got 3 values \[1, 2, 3\]"),
        (("resnet50", [1, 0, 3, 4]), ValueError, r"blocks\[1\]: expected at least 1 block\(s\) in stage C3 of resnet50, got 0"),
        (("mobilenet_v2", [1, 1, 1, 2]), ValueError, r"blocks\[2\]: expected at least 2 block\(s\) in stage C4 of mobilenet_v2, got 1"),
        (("resnet50", [1, -1, 3, 4]), ValueError, r"blocks\[1\]: expected a non-negative integer, got -1"),
        (("vgg16", [1, 1, 1, 1]), ValueError, r'family: expected one of resnet18, .*mobilenet_v2, got "vgg16"'),
        (
            ("resnet18", [1, 1, 1, 1], [1, 2, 3]),
            ValueError,
            r"dilations: expected one dilation per block \(4 for blocks \[1, 1, 1, 1\]\), got 3 values",
        ),
        (("resnet18", [1, 1, 1, 1], [1, 2, 3, 5]), ValueError, r"dilations\[3\]: expected one of 1, 2, 3, got 5"),
        (("resnet18", [1, 1, 1, 1], None, 0.0), ValueError, r"width: expected a multiplier in \(0, 16\], got 0"),
        (("resnet18", [1, 1, 1, 1], None, float("nan")), ValueError, r"width: expected a multiplier in \(0, 16\], got NaN"),
        (("resnet18", "1111"), TypeError, r"blocks"),
    ],
)
def test_invalid_specs_raise_clear_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        Architecture(*args)


def test_invalid_json_and_names():
    with pytest.raises(ValueError, match="invalid JSON"):
        Architecture.from_json('{"family": "resnet50"')
    with pytest.raises(ValueError, match="unknown field"):
        Architecture.from_json('{"family": "resnet50", "blocks": [1,1,1,1], "dilations": [1,1,1,1], "depth": 3}')
    with pytest.raises(ValueError, match=r"dilations\[0\]: expected one of 1, 2, 3, got 0"):
        Architecture.from_json('{"family": "resnet50", "blocks": [1,1,1,1], "dilations": [0,1,1,1]}')
    with pytest.raises(ValueError, match="name: expected one of 'scr_resnet50', 'cr_resnet50', got \"cr_resnet101\""):
        Architecture.paper("cr_resnet101")


def test_from_dict_defaults_and_errors():
    arch = Architecture.from_dict({"family": "resnet50", "blocks": [1, 3, 5, 7]})
    assert arch == Architecture.paper("scr_resnet50") and arch.width == 1.0
    with pytest.raises(ValueError, match=r"data: expected a dict with the keys family, blocks and optionally dilations, width, got unknown field"):
        Architecture.from_dict({"family": "resnet50", "blocks": [1, 1, 1, 1], "depth": 3})
    with pytest.raises(ValueError, match=r"dilations\[0\]: expected one of 1, 2, 3, got 0"):
        Architecture.from_dict({"family": "resnet50", "blocks": [1, 1, 1, 1], "dilations": [0, 1, 1, 1]})
    with pytest.raises(TypeError, match="data: expected a dict, got <class 'str'>"):
        Architecture.from_dict("resnet50")


def test_constants_come_from_the_core():
    assert FAMILIES == ("resnet18", "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x4d", "mobilenet_v2")
    assert PAPER_ARCHITECTURES == ("scr_resnet50", "cr_resnet50")
    assert DILATIONS == (1, 2, 3) and MACS_INPUT_SIZE == (800, 1088)
    assert DETECTORS == ("faster_rcnn_fpn", "mask_rcnn_fpn", "retinanet_fpn", "fcos_fpn")
    assert CONVENTION == {
        "num_classes": 81, "rois": 2000, "mask_rois": 128, "size_divisible": 32, "fpn_channels": 256, "representation_size": 1024, "classifier": True,
    }
    assert all(Architecture.baseline(f).family == f for f in FAMILIES) and all(Architecture.paper(n) for n in PAPER_ARCHITECTURES)
    assert tuple(StageSpace("resnet50", [[1, 2], [3], [5, 6], [7]], flops_tolerance=0.5).budget["input_size"]) == MACS_INPUT_SIZE
    assert crnas.Architecture is Architecture and crnas.StageSpace is StageSpace


def test_get_architecture_accepts_every_arch_like(tmp_path):
    cr = Architecture.paper("cr_resnet50")
    (tmp_path / "arch.json").write_text(cr.to_json())
    (tmp_path / "result.json").write_text(json.dumps({"architecture": cr.to_dict(), "baseline": {}}))
    specs = (cr, "cr_resnet50", cr.to_json(), cr.to_dict(), {"architecture": cr.to_dict()}, tmp_path / "arch.json", str(tmp_path / "result.json"))
    assert all(get_architecture(spec) == cr for spec in specs)
    assert get_architecture("resnet50") == Architecture.baseline("resnet50")
    assert get_architecture("cr_resnet50", width=0.5) == cr.replace(width=0.5)
    with pytest.raises(TypeError, match="width: expected a number or None, got bool"):
        get_architecture("resnet50", width=True)
    with pytest.raises(ValueError, match="arch: expected an Architecture, one of resnet18, .*, cr_resnet50, JSON or a JSON file, got 'vgg'"):
        get_architecture("vgg")
    with pytest.raises(TypeError, match="arch: expected an Architecture, a name, JSON or a path, got int"):
        get_architecture(3)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json: expected an architecture or result JSON, got invalid JSON"):
        get_architecture(tmp_path / "bad.json")
