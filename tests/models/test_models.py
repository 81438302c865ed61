"""Models built from an Architecture: structure, MACs against an independent counter, export."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torchvision
from crnas import Architecture, StageSpace, flops, models
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

FAMILIES = ["resnet18", "resnet50", "resnet101", "resnext50_32x4d", "resnext101_32x4d", "mobilenet_v2"]


def meta_counts(model: nn.Module, size) -> dict[str, int]:
    """Per-module MACs of a forward at ``size`` by FlopCounterMode (FLOPs / 2) on meta tensors."""
    model = model.eval().to("meta")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, *size, device="meta"))
    counts = {name.split(".", 1)[1]: sum(v.values()) // 2 for name, v in counter.get_flop_counts().items() if "." in name}
    counts["total"] = counter.get_total_flops() // 2
    return counts


def searched_convs(model: nn.Module) -> list[nn.Conv2d]:
    """The searched 3x3 of each block: conv2 (ResNet) / the depthwise conv (MobileNetV2), in order."""
    if isinstance(model, models.CRMobileNetV2):
        blocks = [b for i, b in enumerate(model.features) if 2 <= i < len(model.features) - 1]
        return [next(m for m in b.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1) for b in blocks]
    return [blk.conv2 for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for blk in layer]


def random_architectures(count: int, seed: int = 0) -> list[Architecture]:
    rng = random.Random(seed)
    archs = []
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)]
        space = StageSpace.paper(family) if family != "resnet101" else StageSpace.paper("resnet18")
        arch = space.sample_architectures(1, seed=rng.randrange(2**32))[0]
        archs.append(Architecture(family, arch.blocks, arch.dilations, rng.choice([0.125, 0.25, 0.5])))
    return archs


NAMED = [(name, builder) for name, builder in models.MODELS.items()]


@pytest.mark.parametrize("arch", [models.get_architecture(n) for n, _ in NAMED] + random_architectures(12), ids=str)
def test_structure_and_macs_match_the_architecture(arch):
    with torch.device("meta"):
        model = models.build(arch)
    assert model.architecture == arch
    convs = searched_convs(model)
    assert len(convs) == arch.num_blocks
    assert [c.dilation[0] for c in convs] == arch.dilations
    assert all(c.padding[0] == c.dilation[0] for c in convs)
    if isinstance(model, models.CRResNet):
        assert [len(layer) for layer in (model.layer1, model.layer2, model.layer3, model.layer4)] == arch.blocks
    else:
        starts = [2] + [e + 1 for e in model.stage_ends[:-1]]
        assert [e - s + 1 for s, e in zip(starts, model.stage_ends)][:3] == arch.blocks[:3]
    for size in [(224, 224), (97, 130)]:
        counted = meta_counts(model, size)
        report = flops.count(arch, size, classifier=False)
        assert report.macs == counted["total"]
        for layer in report.layers:
            assert layer["macs"] == counted[layer["name"]], layer["name"]
    assert sum(p.numel() for p in model.parameters()) == flops.count(arch, 64, classifier=False).params


def test_named_models_and_metadata():
    model = models.CRResNet50(width=0.125)
    assert model.architecture == Architecture.paper("cr_resnet50").replace(width=0.125)
    assert model.meta["allocation"] == [1, 3, 5, 7] and model.meta["dilations"][3] == [1, 2, 1, 3, 2, 2, 3]
    assert model.meta["num_params"] == sum(p.numel() for p in model.parameters())
    full = models.build("cr_resnet50")
    assert full.meta["gmacs_224"] == models.build("resnet50").meta["gmacs_224"] == 4.087
    assert full.meta["gmacs_faster_rcnn_800x1088"] == 191.8
    assert isinstance(models.get_model("mobilenet_v2", width=0.25), models.CRMobileNetV2)
    classifier = models.ResNet18(num_classes=10, width=0.125)
    assert classifier(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"weights: expected None \(no pretrained CRResNet50 weights are published"):
        models.CRResNet50(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match=r"name: expected one of resnet18, .*cr_resnet50, got 'cr_resnet101'"):
        models.get_model("cr_resnet101")


def test_cr_and_scr_cost_what_resnet50_costs():
    """Within 0.5% of ResNet50 at 224x224 and 800x1088, counted on the built modules."""
    with torch.device("meta"):
        base, scr, cr = models.ResNet50(), models.SCRResNet50(), models.CRResNet50()
    for size in [(224, 224), (800, 1088)]:
        reference = meta_counts(base, size)["total"]
        for model in (scr, cr):
            assert abs(meta_counts(model, size)["total"] / reference - 1) < 0.005


def test_same_state_dict_keys_as_torchvision():
    pairs = [
        (models.ResNet50(num_classes=1000), torchvision.models.resnet50()),
        (models.MobileNetV2(num_classes=1000), torchvision.models.mobilenet_v2()),
    ]
    for ours, theirs in pairs:
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
        ours.load_state_dict(b)
        ours.eval(), theirs.eval()
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(ours(x), theirs(x))


def test_forward_features_strides():
    for model in (models.CRResNet50(width=0.125), models.MobileNetV2(width=0.25)):
        feats = model.forward_features(torch.randn(2, 3, 96, 64))
        assert [f.shape[-2:] for f in feats] == [(24, 16), (12, 8), (6, 4), (3, 2)]
        assert [f.shape[1] for f in feats] == model.stage_channels


def test_from_json(tmp_path):
    arch = Architecture("resnext50_32x4d", [2, 5, 6, 3], [1, 2, 3, 1] * 4, 0.125)
    result = {"architecture": json.loads(arch.to_json()), "data": "synthetic:64", "budget": {"type": "blocks", "total": 16}, "candidates": [1, 2]}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    for source in (path, str(path), json.dumps(result), arch.to_json()):
        model = models.from_json(source)
        assert model.architecture == arch
    assert models.from_json(path).meta["provenance"] == {"data": "synthetic:64", "budget": {"type": "blocks", "total": 16}}
    with pytest.raises(ValueError, match="arch: expected an Architecture, one of resnet18"):
        models.get_architecture("resnet51")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json: expected an architecture or result JSON"):
        models.get_architecture(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["cr_resnet50", "mobilenet_v2"])
def test_final_models_export(name, tmp_path):
    """A final model is standard layers only: TorchScript (also of its FX trace), torch.export and ONNX all work."""
    model = models.get_model(name, width=0.125 if name != "mobilenet_v2" else 0.25, num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    expected = model(x)
    torch.testing.assert_close(torch.jit.script(model)(x), expected)
    # FX-traced then scripted (as timm's tests and FX-based tools do): needs runtime, not string, annotations
    torch.testing.assert_close(torch.jit.script(torch.fx.symbolic_trace(model))(x), expected)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), expected)
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), expected, atol=1e-4, rtol=1e-4)
