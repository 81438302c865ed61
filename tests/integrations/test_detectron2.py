"""crnas.integrations.detectron2 against a minimal stand-in for detectron2 (not installable here).

The stand-in re-implements the parts of detectron2's API the adapter uses, after
facebookresearch/detectron2: ``modeling/backbone/backbone.py`` (``Backbone``), ``modeling/backbone/fpn.py``
(``FPN``: asserts ``isinstance(bottom_up, Backbone)`` and log2-contiguous strides; ``LastLevelMaxPool``,
``LastLevelP6P7``), ``layers`` (``ShapeSpec``, ``get_norm``, ``FrozenBatchNorm2d.convert_frozen_batchnorm``).
``CfgNode`` and ``Registry`` are fvcore's, which detectron2's are.
"""

from __future__ import annotations

import importlib
import itertools
import math
import subprocess
import sys
import types
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

fvcore_config = pytest.importorskip("fvcore.common.config")
fvcore_registry = pytest.importorskip("fvcore.common.registry")

WIDTH = 0.125  # stage channels 32, 64, 128, 256
MODULE = "crnas.integrations.detectron2"


def _stand_in() -> dict[str, types.ModuleType]:
    from torchvision.ops import FrozenBatchNorm2d as _TVFrozenBN

    CfgNode = fvcore_config.CfgNode

    @dataclass
    class ShapeSpec:
        channels: int | None = None
        height: int | None = None
        width: int | None = None
        stride: int | None = None

    class FrozenBatchNorm2d(_TVFrozenBN):
        @classmethod
        def convert_frozen_batchnorm(cls, module):
            if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
                res = cls(module.num_features, eps=module.eps)
                if module.affine:
                    res.weight.data = module.weight.data.clone().detach()
                    res.bias.data = module.bias.data.clone().detach()
                res.running_mean.data = module.running_mean.data
                res.running_var.data = module.running_var.data
                return res
            for name, child in module.named_children():
                new = cls.convert_frozen_batchnorm(child)
                if new is not child:
                    module.add_module(name, new)
            return module

    def get_norm(norm, out_channels):
        if norm is None or norm == "":
            return None
        if isinstance(norm, str):
            norm = {
                "BN": nn.BatchNorm2d,
                "SyncBN": nn.SyncBatchNorm,
                "FrozenBN": FrozenBatchNorm2d,
                "GN": lambda c: nn.GroupNorm(32, c),
            }[norm]
        return norm(out_channels)

    class Backbone(nn.Module, metaclass=ABCMeta):
        @abstractmethod
        def forward(self):
            pass

        @property
        def size_divisibility(self) -> int:
            return 0

        @property
        def padding_constraints(self):
            return {}

        def output_shape(self):
            return {
                n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
                for n in self._out_features
            }

    class LastLevelMaxPool(nn.Module):
        num_levels, in_feature = 1, "p5"

        def forward(self, x):
            return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]

    class LastLevelP6P7(nn.Module):
        num_levels, in_feature = 2, "res5"

        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
            self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)

        def forward(self, c5):
            p6 = self.p6(c5)
            return [p6, self.p7(F.relu(p6))]

    class FPN(Backbone):
        def __init__(self, bottom_up, in_features, out_channels, norm="", top_block=None, fuse_type="sum"):
            super().__init__()
            assert isinstance(bottom_up, Backbone)
            shapes = bottom_up.output_shape()
            strides = [shapes[f].stride for f in in_features]
            for a, b in itertools.pairwise(strides):
                assert b == 2 * a, f"Strides {b} {a} are not log2 contiguous"
            self.lateral_convs = nn.ModuleList(
                nn.Conv2d(shapes[f].channels, out_channels, 1) for f in in_features[::-1]
            )
            self.output_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_features)
            self.bottom_up, self.in_features, self.top_block = bottom_up, in_features, top_block
            self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
            last = int(math.log2(strides[-1]))
            for s in range(last, last + (top_block.num_levels if top_block else 0)):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
            self._out_features = list(self._out_feature_strides)
            self._out_feature_channels = {k: out_channels for k in self._out_features}
            self._size_divisibility = strides[-1]

        @property
        def size_divisibility(self):
            return self._size_divisibility

        def forward(self, x):
            bottom_up = self.bottom_up(x)
            xs = [bottom_up[f] for f in self.in_features[::-1]]
            prev = self.lateral_convs[0](xs[0])
            results = [self.output_convs[0](prev)]
            for feat, lateral, output in zip(xs[1:], self.lateral_convs[1:], self.output_convs[1:]):
                prev = lateral(feat) + F.interpolate(prev, scale_factor=2, mode="nearest")
                results.insert(0, output(prev))
            if self.top_block is not None:
                source = bottom_up.get(self.top_block.in_feature)
                if source is None:
                    source = results[self._out_features.index(self.top_block.in_feature)]
                results.extend(self.top_block(source))
            return dict(zip(self._out_features, results))

    def get_cfg():
        cfg = CfgNode()
        cfg.MODEL = CfgNode()
        cfg.MODEL.BACKBONE = CfgNode({"NAME": "build_resnet_backbone", "FREEZE_AT": 2})
        cfg.MODEL.FPN = CfgNode({"IN_FEATURES": [], "OUT_CHANNELS": 256, "NORM": "", "FUSE_TYPE": "sum"})
        return cfg

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    registry = fvcore_registry.Registry("BACKBONE")
    return {
        "detectron2": module("detectron2", __path__=[]),
        "detectron2.config": module("detectron2.config", CfgNode=CfgNode, get_cfg=get_cfg),
        "detectron2.layers": module(
            "detectron2.layers", ShapeSpec=ShapeSpec, FrozenBatchNorm2d=FrozenBatchNorm2d, get_norm=get_norm
        ),
        "detectron2.modeling": module(
            "detectron2.modeling", __path__=[], BACKBONE_REGISTRY=registry, Backbone=Backbone
        ),
        "detectron2.modeling.backbone": module(
            "detectron2.modeling.backbone", __path__=[], BACKBONE_REGISTRY=registry, Backbone=Backbone, FPN=FPN
        ),
        "detectron2.modeling.backbone.fpn": module(
            "detectron2.modeling.backbone.fpn", FPN=FPN, LastLevelMaxPool=LastLevelMaxPool, LastLevelP6P7=LastLevelP6P7
        ),
    }


@pytest.fixture(scope="module")
def d2():
    """The stand-in ``detectron2`` in ``sys.modules`` and the adapter imported against it."""
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in _stand_in().items():
            mp.setitem(sys.modules, name, mod)
        mp.delitem(sys.modules, MODULE, raising=False)
        adapter = importlib.import_module(MODULE)
        yield types.SimpleNamespace(
            adapter=adapter, **{k.split(".")[-1]: v for k, v in sys.modules.items() if k.startswith("detectron2")}
        )
        mp.delitem(sys.modules, MODULE)


def _cfg(d2, **crnas):
    cfg = d2.config.get_cfg()
    d2.adapter.add_crnas_config(cfg)
    cfg.MODEL.CRNAS.WIDTH = WIDTH
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    for k, v in crnas.items():
        cfg.MODEL.CRNAS[k] = v
    return cfg


def test_import_without_detectron2_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "detectron2", None)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    with pytest.raises(
        ImportError, match=r"needs detectron2.*pip install 'git\+https://github.com/facebookresearch/detectron2"
    ):
        importlib.import_module(MODULE)


def test_importing_crnas_imports_no_framework():
    code = (
        "import sys, crnas, crnas.integrations, crnas.models; "
        "bad = [m for m in ('timm', 'mmdet', 'mmengine', 'detectron2', 'crnas.integrations.detectron2') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_builders_are_registered(d2):
    for name in ("build_crresnet_backbone", "build_crresnet_fpn_backbone", "build_retinanet_crresnet_fpn_backbone"):
        assert d2.backbone.BACKBONE_REGISTRY.get(name) is getattr(d2.adapter, name)
    importlib.reload(d2.adapter)  # registering again must not raise (fvcore's Registry refuses duplicates)


def test_add_crnas_config_defaults(d2):
    cfg = d2.config.get_cfg()
    d2.adapter.add_crnas_config(cfg)
    assert cfg.MODEL.CRNAS.ARCH == "cr_resnet50"
    assert cfg.MODEL.CRNAS.WIDTH is None
    assert cfg.MODEL.CRNAS.NORM == "FrozenBN"
    assert cfg.MODEL.CRNAS.OUT_FEATURES == ["res2", "res3", "res4", "res5"]
    cfg.merge_from_list(["MODEL.CRNAS.WIDTH", "0.5", "MODEL.CRNAS.ARCH", "scr_resnet50"])  # yacs accepts the types
    assert cfg.MODEL.CRNAS.WIDTH == 0.5


def test_missing_crnas_config_is_explained(d2):
    with pytest.raises(KeyError, match="add_crnas_config"):
        d2.adapter.build_crresnet_backbone(d2.config.get_cfg(), d2.layers.ShapeSpec(channels=3))


def test_backbone_output_shape_matches_tensors(d2):
    cfg = _cfg(d2)
    backbone = d2.backbone.BACKBONE_REGISTRY.get("build_crresnet_backbone")(cfg, d2.layers.ShapeSpec(channels=3))
    assert isinstance(backbone, d2.backbone.Backbone)
    assert backbone.size_divisibility == 0  # as detectron2's ResNet; the FPN asks for 32
    shapes = backbone.output_shape()
    assert list(shapes) == ["res2", "res3", "res4", "res5"]
    x = torch.randn(2, 3, 64, 96)
    out = backbone(x)
    assert list(out) == list(shapes)
    for name, t in out.items():
        assert t.shape == (2, shapes[name].channels, 64 // shapes[name].stride, 96 // shapes[name].stride)
    assert [s.channels for s in shapes.values()] == [32, 64, 128, 256]
    assert backbone.architecture.blocks == [1, 3, 5, 7]


def test_out_features_drop_later_stages(d2):
    backbone = d2.adapter.CRResNetBackbone("cr_resnet50", width=WIDTH, out_features=["res3", "res4"])
    assert not hasattr(backbone, "layer4")  # res5 is not built (no unused parameters under DDP)
    out = backbone(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[1:] for k, v in out.items()} == {"res3": (64, 8, 8), "res4": (128, 4, 4)}


def test_state_dict_keys_are_torchvision_names(d2):
    from crnas.models import build

    backbone = d2.adapter.CRResNetBackbone("cr_resnet50", width=WIDTH, norm="BN")
    reference = build(backbone.architecture)  # crnas CRResNet: torchvision's names
    assert set(backbone.state_dict()) == set(reference.state_dict())


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 5])
def test_freeze_at_follows_detectron2_resnet(d2, freeze_at):
    cfg = _cfg(d2, NORM="BN")
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    backbone = d2.adapter.build_crresnet_backbone(cfg, d2.layers.ShapeSpec(channels=3))
    parts = {1: ["conv1", "bn1"], 2: ["layer1"], 3: ["layer2"], 4: ["layer3"], 5: ["layer4"]}
    for level, names in parts.items():
        frozen = level <= freeze_at
        modules = [m for name in names for m in getattr(backbone, name).modules()]
        params = [p for m in modules for p in m.parameters(recurse=False)]
        norms = [m for m in modules if isinstance(m, (nn.BatchNorm2d, d2.layers.FrozenBatchNorm2d))]
        assert params and all(p.requires_grad != frozen for p in params), (names, freeze_at)
        assert norms and all(isinstance(m, d2.layers.FrozenBatchNorm2d) == frozen for m in norms), (names, freeze_at)


def test_norm_callable_and_frozen_bn_default(d2):
    default = d2.adapter.CRResNetBackbone(width=WIDTH)
    assert isinstance(default.layer3[0].bn2, d2.layers.FrozenBatchNorm2d)
    gn = d2.adapter.CRResNetBackbone(width=WIDTH, norm=lambda c: nn.GroupNorm(4, c))
    assert isinstance(gn.layer3[0].bn2, nn.GroupNorm)
    assert gn(torch.randn(1, 3, 32, 32))["res5"].shape == (1, 256, 1, 1)


def test_fpn_builder(d2):
    cfg = _cfg(d2)
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    fpn = d2.backbone.BACKBONE_REGISTRY.get("build_crresnet_fpn_backbone")(cfg, d2.layers.ShapeSpec(channels=3))
    assert fpn.size_divisibility == 32
    shapes = fpn.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "p2": (16, 4),
        "p3": (16, 8),
        "p4": (16, 16),
        "p5": (16, 32),
        "p6": (16, 64),
    }
    out = fpn(torch.randn(1, 3, 128, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (1, 16, 128 // s.stride, 128 // s.stride) for k, s in shapes.items()
    }


def test_retinanet_fpn_builder(d2):
    cfg = _cfg(d2)
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    fpn = d2.adapter.build_retinanet_crresnet_fpn_backbone(cfg, d2.layers.ShapeSpec(channels=3))
    assert {k: s.stride for k, s in fpn.output_shape().items()} == {"p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}
    assert fpn(torch.randn(1, 3, 128, 128))["p7"].shape == (1, 16, 1, 1)
    cfg.MODEL.CRNAS.OUT_FEATURES = ["res3", "res4"]
    with pytest.raises(ValueError, match="LastLevelP6P7 reads res5"):
        d2.adapter.build_retinanet_crresnet_fpn_backbone(cfg, d2.layers.ShapeSpec(channels=3))


def test_input_channels_from_input_shape(d2):
    backbone = d2.adapter.build_crresnet_backbone(_cfg(d2), d2.layers.ShapeSpec(channels=1))
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
def test_invalid_arguments(d2, kwargs, error, match):
    kwargs = dict({"width": WIDTH}, **kwargs)
    with pytest.raises(error, match=match):
        d2.adapter.CRResNetBackbone(kwargs.pop("arch", "cr_resnet50"), **kwargs)


def test_save_inherited_checkpoint_matches_fpn_keys(d2, tmp_path):
    from crnas.models import ResNet50

    source = ResNet50(width=WIDTH, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet50.pth")
    report = d2.adapter.save_inherited_checkpoint(
        "cr_resnet50", tmp_path / "d2.pth", weights=tmp_path / "resnet50.pth", width=WIDTH
    )
    assert report.adapted and not report.initialised
    ckpt = torch.load(tmp_path / "d2.pth", weights_only=True)
    fpn = d2.adapter.build_crresnet_fpn_backbone(_cfg(d2), d2.layers.ShapeSpec(channels=3))
    model_keys = {f"backbone.{k}": v.shape for k, v in fpn.state_dict().items() if k.startswith("bottom_up.")}
    assert {k: v.shape for k, v in ckpt["model"].items()} == model_keys
    # layer4 has 7 blocks, the source 3: block 6 repeats the source's block 2 (crnas.weights.inherit)
    torch.testing.assert_close(ckpt["model"]["backbone.bottom_up.layer4.6.conv2.weight"], source.layer4[2].conv2.weight)
