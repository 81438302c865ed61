"""crnas.integrations.detectron2 in detectron2 (built from ../shared/vendor by make test): the README's
snippet, build_model, DetectionCheckpointer, a training and an inference step, and the backbone against
detectron2's own ResNet/FPN builders."""

from __future__ import annotations

import importlib
import subprocess
import sys

import crnas.integrations.detectron2 as crnas_d2
import pytest
import torch
from detectron2 import model_zoo
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, build_model
from detectron2.modeling.backbone.fpn import FPN, build_resnet_fpn_backbone, build_retinanet_resnet_fpn_backbone
from detectron2.solver import build_optimizer
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import nn

WIDTH = 0.125  # stage channels 32, 64, 128, 256
MODULE = "crnas.integrations.detectron2"


def _cfg(config: str = "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", **crnas):
    cfg = get_cfg()
    crnas_d2.add_crnas_config(cfg)
    cfg.merge_from_file(model_zoo.get_config_file(config))
    cfg.MODEL.CRNAS.WIDTH = WIDTH
    for k, v in crnas.items():
        cfg.MODEL.CRNAS[k] = v
    return cfg


def _inputs(train: bool) -> list[dict]:
    """Two small RGB images (and their boxes when training), as detectron2's DatasetMapper produces them."""
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for h, w in [(96, 128), (128, 96)]:
        item = {"image": torch.randint(0, 256, (3, h, w), generator=generator, dtype=torch.uint8), "height": h, "width": w}
        if train:
            instances = Instances((h, w))
            instances.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 60.0, 70.0], [30.0, 20.0, 90.0, 88.0]]))
            instances.gt_classes = torch.tensor([3, 17])
            item["instances"] = instances
        inputs.append(item)
    return inputs


def test_readme_snippet_trains_and_infers(tmp_path, monkeypatch, readme_snippet, torchvision_resnet50):
    """The README's train_net.py lines as they stand (full-width CR-ResNet50 Faster R-CNN, the inherited
    checkpoint), then what train_net.py does with the config: build_model, DetectionCheckpointer, one
    SGD step, one inference."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(readme_snippet("# detectron2 (train_net.py)"), namespace)
    cfg = namespace["cfg"]
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert isinstance(model.backbone, FPN) and type(model.backbone.bottom_up).__qualname__ == "CRResNetBackbone"
    assert model.backbone.bottom_up.architecture.blocks == [1, 3, 5, 7]

    loaded = []
    load_model = DetectionCheckpointer._load_model
    monkeypatch.setattr(DetectionCheckpointer, "_load_model", lambda self, c: loaded.append(load_model(self, c)) or loaded[-1])
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    (incompatible,) = loaded
    assert not incompatible.unexpected_keys and not incompatible.incorrect_shapes
    assert not [k for k in incompatible.missing_keys if k.startswith("backbone.bottom_up.")]
    checkpoint = torch.load("cr_resnet50_d2.pth", weights_only=True)["model"]
    state = model.state_dict()
    assert set(checkpoint) == {k for k in state if k.startswith("backbone.bottom_up.")}
    for key, value in checkpoint.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    # layer4 has 7 blocks, ResNet50's 3: block 6 repeats block 2 (crnas.weights.inherit)
    torch.testing.assert_close(state["backbone.bottom_up.layer4.6.conv2.weight"], torchvision_resnet50["layer4.2.conv2.weight"])

    optimizer = build_optimizer(cfg, model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    with EventStorage(0):  # as detectron2's trainers run the step
        losses = model(_inputs(train=True))
        assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
        assert all(torch.isfinite(v) for v in losses.values()), losses
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "backbone.bottom_up.layer4.6.conv2.weight" in moved
    assert not {n for n in moved if n.startswith(("backbone.bottom_up.conv1", "backbone.bottom_up.layer1."))}  # FREEZE_AT=2

    model.eval()
    with torch.no_grad():
        outputs = model(_inputs(train=False))
    assert len(outputs) == 2
    for out, item in zip(outputs, _inputs(train=False)):
        instances = out["instances"]
        assert instances.image_size == (item["height"], item["width"])
        assert len(instances.scores) == len(instances.pred_classes) == len(instances.pred_boxes)
        assert torch.isfinite(instances.pred_boxes.tensor).all()


@pytest.mark.parametrize(
    ("config", "ours", "theirs"),
    [
        ("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", "build_crresnet_fpn_backbone", build_resnet_fpn_backbone),
        ("COCO-Detection/retinanet_R_50_FPN_1x.yaml", "build_retinanet_crresnet_fpn_backbone", build_retinanet_resnet_fpn_backbone),
    ],
)
@pytest.mark.parametrize("arch", ["resnet50", "cr_resnet50"])
@pytest.mark.parametrize("norm", ["FrozenBN", "BN"])
def test_fpn_backbone_matches_detectron2_resnet_fpn(config, ours, theirs, arch, norm):
    """Output feature names, strides and channels, and the frozen stages (MODEL.BACKBONE.FREEZE_AT=2) equal
    detectron2's own ResNet50 + FPN builders' for the same config: CR-NAS moves blocks, never strides."""
    cfg = _cfg(config, ARCH=arch, WIDTH=None, NORM=norm)
    cfg.MODEL.RESNETS.NORM = norm
    crnas_fpn = BACKBONE_REGISTRY.get(ours)(cfg, ShapeSpec(channels=3))
    d2_fpn = theirs(cfg, ShapeSpec(channels=3))
    shapes = lambda b: {k: (s.channels, s.stride) for k, s in b.output_shape().items() if k[0] == "p" or k in cfg.MODEL.FPN.IN_FEATURES}
    assert shapes(crnas_fpn) == shapes(d2_fpn)
    assert shapes(crnas_fpn.bottom_up) == shapes(d2_fpn.bottom_up)
    assert crnas_fpn.size_divisibility == d2_fpn.size_divisibility == 32
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        a, b = crnas_fpn(x), d2_fpn(x)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    # the FPN's own modules are identical (only the bottom-up differs)
    top = lambda b: {k: v.shape for k, v in b.state_dict().items() if not k.startswith("bottom_up.")}
    assert top(crnas_fpn) == top(d2_fpn)
    # FREEZE_AT=2: stem and res2 frozen (no gradient, FrozenBatchNorm2d), res3..res5 trainable, as detectron2's ResNet
    stage = {"conv1": "stem", "bn1": "stem", "layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    frozen = lambda named, rename: {rename(n.split(".")[0]) for n, p in named if not p.requires_grad}
    assert frozen(crnas_fpn.bottom_up.named_parameters(), stage.get) == frozen(d2_fpn.bottom_up.named_parameters(), str) == {"stem", "res2"}
    frozen_bn = lambda b, rename: {rename(n.split(".")[0]) for n, m in b.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    frozen_bn_stages = {"stem", "res2"} if norm == "BN" else {"stem", "res2", "res3", "res4", "res5"}
    assert frozen_bn(crnas_fpn.bottom_up, stage.get) == frozen_bn(d2_fpn.bottom_up, str) == frozen_bn_stages


def test_import_without_detectron2_says_how_to_install(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "detectron2"]:
        monkeypatch.setitem(sys.modules, name, None)  # imports of detectron2 and its modules fail as when not installed
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    with pytest.raises(ImportError, match=r"needs detectron2.*pip install 'git\+https://github.com/facebookresearch/detectron2"):
        importlib.import_module(MODULE)


def test_importing_crnas_imports_no_framework():
    code = (
        "import sys, crnas, crnas.integrations, crnas.models; "
        "bad = [m for m in ('timm', 'mmdet', 'mmengine', 'detectron2', 'crnas.integrations.detectron2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_builders_are_registered():
    for name in ("build_crresnet_backbone", "build_crresnet_fpn_backbone", "build_retinanet_crresnet_fpn_backbone"):
        assert BACKBONE_REGISTRY.get(name) is getattr(crnas_d2, name)
    importlib.reload(crnas_d2)  # registering again must not raise (detectron2's Registry refuses duplicates)


def test_add_crnas_config_defaults():
    cfg = get_cfg()
    crnas_d2.add_crnas_config(cfg)
    assert cfg.MODEL.CRNAS.ARCH == "cr_resnet50"
    assert cfg.MODEL.CRNAS.WIDTH is None
    assert cfg.MODEL.CRNAS.NORM == "FrozenBN"
    assert cfg.MODEL.CRNAS.OUT_FEATURES == ["res2", "res3", "res4", "res5"]
    cfg.merge_from_list(["MODEL.CRNAS.WIDTH", "0.5", "MODEL.CRNAS.ARCH", "scr_resnet50"])  # yacs accepts the types
    assert cfg.MODEL.CRNAS.WIDTH == 0.5


def test_missing_crnas_config_is_explained():
    with pytest.raises(KeyError, match="add_crnas_config"):
        crnas_d2.build_crresnet_backbone(get_cfg(), ShapeSpec(channels=3))


def test_backbone_output_shape_matches_tensors():
    backbone = BACKBONE_REGISTRY.get("build_crresnet_backbone")(_cfg(), ShapeSpec(channels=3))
    assert isinstance(backbone, Backbone)
    assert backbone.size_divisibility == 0  # as detectron2's ResNet; the FPN asks for 32
    shapes = backbone.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"]
    out = backbone(torch.randn(2, 3, 64, 96))
    assert list(out) == list(shapes)
    for name, t in out.items():
        assert t.shape == (2, shapes[name].channels, 64 // shapes[name].stride, 96 // shapes[name].stride)
    assert [s.channels for s in shapes.values()] == [32, 64, 128, 256]
    assert backbone.architecture.blocks == [1, 3, 5, 7]


def test_out_features_drop_later_stages():
    backbone = crnas_d2.CRResNetBackbone("cr_resnet50", width=WIDTH, out_features=["res3", "res4"])
    assert not hasattr(backbone, "layer4")  # res5 is not built (no unused parameters under DDP)
    out = backbone(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[1:] for k, v in out.items()} == {"res3": (64, 8, 8), "res4": (128, 4, 4)}


def test_state_dict_keys_are_torchvision_names():
    from crnas.models import build

    backbone = crnas_d2.CRResNetBackbone("cr_resnet50", width=WIDTH, norm="BN")
    assert set(backbone.state_dict()) == set(build(backbone.architecture).state_dict())


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 5])
def test_freeze_at(freeze_at):
    cfg = _cfg(NORM="BN")
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    backbone = crnas_d2.build_crresnet_backbone(cfg, ShapeSpec(channels=3))
    parts = {1: ["conv1", "bn1"], 2: ["layer1"], 3: ["layer2"], 4: ["layer3"], 5: ["layer4"]}
    for level, names in parts.items():
        frozen = level <= freeze_at
        modules = [m for name in names for m in getattr(backbone, name).modules()]
        params = [p for m in modules for p in m.parameters(recurse=False)]
        norms = [m for m in modules if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
        assert params and all(p.requires_grad != frozen for p in params), (names, freeze_at)
        assert norms and all(isinstance(m, FrozenBatchNorm2d) == frozen for m in norms), (names, freeze_at)


def test_norms_and_fpn_options():
    default = crnas_d2.CRResNetBackbone(width=WIDTH)
    assert isinstance(default.layer3[0].bn2, FrozenBatchNorm2d)
    gn = crnas_d2.CRResNetBackbone(width=WIDTH, norm=lambda c: nn.GroupNorm(4, c))
    assert isinstance(gn.layer3[0].bn2, nn.GroupNorm)
    assert gn(torch.randn(1, 3, 32, 32))["res5"].shape == (1, 256, 1, 1)
    cfg = _cfg()
    cfg.MODEL.FPN.OUT_CHANNELS, cfg.MODEL.FPN.NORM, cfg.MODEL.FPN.FUSE_TYPE = 32, "GN", "avg"
    fpn = crnas_d2.build_crresnet_fpn_backbone(cfg, ShapeSpec(channels=3))
    assert fpn._fuse_type == "avg" and isinstance(fpn.lateral_convs[0].norm, nn.GroupNorm)
    assert fpn(torch.randn(1, 3, 64, 64))["p6"].shape == (1, 32, 1, 1)


def test_retinanet_fpn_builder_needs_res5():
    cfg = _cfg("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    fpn = crnas_d2.build_retinanet_crresnet_fpn_backbone(cfg, ShapeSpec(channels=3))
    assert {k: s.stride for k, s in fpn.output_shape().items()} == {"p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}
    assert fpn(torch.randn(1, 3, 128, 128))["p7"].shape == (1, 16, 1, 1)
    cfg.MODEL.CRNAS.OUT_FEATURES = ["res3", "res4"]
    with pytest.raises(ValueError, match="LastLevelP6P7 reads res5"):
        crnas_d2.build_retinanet_crresnet_fpn_backbone(cfg, ShapeSpec(channels=3))


def test_input_channels_from_input_shape():
    backbone = crnas_d2.build_crresnet_backbone(_cfg(), ShapeSpec(channels=1))
    assert backbone.conv1.in_channels == 1
    assert backbone(torch.randn(1, 1, 32, 32))["res2"].shape == (1, 32, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"out_features": ["res6"]}, ValueError, r"out_features: expected a non-empty subset of \['res2'"),
        ({"out_features": []}, ValueError, "out_features"),
        ({"freeze_at": 6}, ValueError, r"freeze_at: expected an int in the range \[0, 5\], got 6"),
        ({"norm": ""}, ValueError, "norm: CR blocks have bias-free convolutions"),
        ({"arch": "mobilenet_v2"}, ValueError, "expected a ResNet-series architecture"),
        ({"arch": "no_such_arch"}, ValueError, "arch: expected an Architecture"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    kwargs = dict({"width": WIDTH}, **kwargs)
    with pytest.raises(error, match=match):
        crnas_d2.CRResNetBackbone(kwargs.pop("arch", "cr_resnet50"), **kwargs)
