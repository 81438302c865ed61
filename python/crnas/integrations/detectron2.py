"""CR backbones in detectron2: ``CRResNetBackbone`` and three ``BACKBONE_REGISTRY`` entries.

detectron2 is not on PyPI; this module imports it and raises an ``ImportError`` that says how to
install it when it is missing. Nothing in crnas imports this module: do it yourself (e.g. at the top of
your ``train_net.py``) before building a model.

Yacs configs::

    from detectron2.config import get_cfg
    from crnas.integrations.detectron2 import add_crnas_config

    cfg = get_cfg()
    add_crnas_config(cfg)                  # adds cfg.MODEL.CRNAS (defaults below)
    cfg.merge_from_file("configs/COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
    cfg.MODEL.BACKBONE.NAME = "build_crresnet_fpn_backbone"
    cfg.MODEL.CRNAS.ARCH = "cr_resnet50"   # name, Architecture JSON or result.json path

Keys read:

- ``MODEL.CRNAS.ARCH`` (``"cr_resnet50"``), ``MODEL.CRNAS.WIDTH`` (``None``: the architecture's own),
  ``MODEL.CRNAS.NORM`` (``"FrozenBN"``; anything ``detectron2.layers.get_norm`` takes except ``""``),
  ``MODEL.CRNAS.OUT_FEATURES`` (``["res2", "res3", "res4", "res5"]``);
- ``MODEL.BACKBONE.FREEZE_AT`` (as detectron2's ResNet: 0 nothing, 1 the stem, k the stem and
  res2..res(k); frozen parts get ``requires_grad=False`` and ``FrozenBatchNorm2d``);
- ``MODEL.FPN.IN_FEATURES``, ``OUT_CHANNELS``, ``NORM``, ``FUSE_TYPE`` for the FPN builders.

``MODEL.RESNETS.*`` belongs to detectron2's own ResNet and is not read (CR architectures fix their
depth, dilations and the torchvision V1.5 stride placement).

LazyConfig users instantiate the class directly:
``L(FPN)(bottom_up=L(CRResNetBackbone)(arch="cr_resnet50", freeze_at=2), in_features=["res2", "res3",
"res4", "res5"], out_channels=256, top_block=L(LastLevelMaxPool)())``.

Module names are torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4``); a detectron2 checkpoint of
an inherited backbone is written by :func:`save_inherited_checkpoint`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

try:
    from detectron2.config import CfgNode
    from detectron2.layers import FrozenBatchNorm2d, ShapeSpec, get_norm
    from detectron2.modeling.backbone import BACKBONE_REGISTRY, Backbone
    from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7
except ModuleNotFoundError as err:  # only a missing detectron2; its own broken imports propagate as they are
    if (err.name or "").split(".")[0] != "detectron2":
        raise
    raise ImportError(
        "crnas.integrations.detectron2 needs detectron2, which is not on PyPI; install it from source: "
        "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
        "(see https://detectron2.readthedocs.io/en/latest/tutorials/install.html)"
    ) from err

from crnas.arch import ArchLike
from crnas.integrations._common import architecture, inherited_state_dict, stem_conv
from crnas.models import STAGE_STRIDES, CRResNet, build
from crnas.models.weights import InheritReport

__all__ = [
    "CRResNetBackbone",
    "add_crnas_config",
    "build_crresnet_backbone",
    "build_crresnet_fpn_backbone",
    "build_retinanet_crresnet_fpn_backbone",
    "save_inherited_checkpoint",
]

STAGE_NAMES = ("res2", "res3", "res4", "res5")
_MOBILENET_HINT = "; detectron2 integration supports ResNet-series families only"


class CRResNetBackbone(Backbone):
    """A CR-NAS reallocated ResNet/ResNeXt as a detectron2 ``Backbone``.

    Args:
        arch: the architecture: a name (``"cr_resnet50"``, ``"resnet50"``, ...), Architecture JSON, a
            dict or the path of an architecture JSON or search ``result.json``.
        width: channel multiplier overriding the architecture's.
        in_channels: input channels (a new stem convolution when not 3).
        norm: normalisation, as ``detectron2.layers.get_norm`` takes it (``"FrozenBN"``, ``"BN"``,
            ``"SyncBN"``, ``"GN"``, a callable); not ``""``: the convolutions have no bias.
        out_features: outputs among ``res2``..``res5`` (strides 4, 8, 16, 32); stages after the last
            one are not built, as in detectron2's ResNet.
        freeze_at: 0 nothing, 1 the stem, k (2..5) the stem and res2..res(k).
    """

    def __init__(
        self,
        arch: ArchLike = "cr_resnet50",
        *,
        width: float | None = None,
        in_channels: int = 3,
        norm: Any = "FrozenBN",
        out_features: Sequence[str] = STAGE_NAMES,
        freeze_at: int = 0,
    ) -> None:
        super().__init__()
        arch = architecture(arch, width, resnet_only=True, hint=_MOBILENET_HINT)
        out_features = list(out_features)
        if not out_features or any(f not in STAGE_NAMES for f in out_features):
            raise ValueError(f"out_features: expected a non-empty subset of {list(STAGE_NAMES)}, got {out_features}")
        if isinstance(freeze_at, bool) or not isinstance(freeze_at, int) or not 0 <= freeze_at <= 5:
            raise ValueError(f"freeze_at: expected an int in the range [0, 5], got {freeze_at!r}")
        if norm is None or norm == "":
            raise ValueError(
                f"norm: CR blocks have bias-free convolutions and need a norm ('FrozenBN', 'BN', 'SyncBN', 'GN', ...), got {norm!r}"
            )

        model = build(arch, norm_layer=lambda channels: get_norm(norm, channels))
        assert isinstance(model, CRResNet), "architecture(resnet_only=True) refuses MobileNetV2"
        num_stages = max(STAGE_NAMES.index(f) for f in out_features) + 1
        self.conv1 = stem_conv(model.conv1, in_channels)
        self.bn1, self.relu, self.maxpool = model.bn1, model.relu, model.maxpool
        self.res_layers = [f"layer{i}" for i in range(1, num_stages + 1)]
        for name in self.res_layers:
            self.add_module(name, getattr(model, name))
        self.architecture = arch
        self.meta = model.meta
        self.stage_channels: list[int] = list(model.stage_channels)
        self._out_features = [f for f in STAGE_NAMES if f in out_features]
        self._out_feature_channels = dict(zip(STAGE_NAMES, self.stage_channels))
        self._out_feature_strides = dict(zip(STAGE_NAMES, STAGE_STRIDES))
        self.freeze(freeze_at)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``{"res<k>": Tensor[N, C_k, H/2^k, W/2^k]}`` for the requested ``out_features``."""
        if x.dim() != 4:
            raise ValueError(f"x: expected a Tensor[N, C, H, W], got shape {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = {}
        for stage, layer in zip(STAGE_NAMES, self.res_layers):
            x = getattr(self, layer)(x)
            if stage in self._out_features:
                outputs[stage] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
            for f in self._out_features
        }

    def freeze(self, freeze_at: int = 0) -> CRResNetBackbone:
        """Freeze the first ``freeze_at`` parts (1 = the stem, 2 = res2, ...) as detectron2's
        ``ResNet.freeze``: ``requires_grad=False`` and BatchNorm converted to ``FrozenBatchNorm2d``."""
        if freeze_at >= 1:
            for p in (*self.conv1.parameters(), *self.bn1.parameters()):
                p.requires_grad = False
            self.bn1 = FrozenBatchNorm2d.convert_frozen_batchnorm(self.bn1)
        for idx, name in enumerate(self.res_layers, start=2):
            if freeze_at >= idx:
                layer = getattr(self, name)
                for p in layer.parameters():
                    p.requires_grad = False
                setattr(self, name, FrozenBatchNorm2d.convert_frozen_batchnorm(layer))
        return self


def add_crnas_config(cfg: CfgNode) -> None:
    """Add ``cfg.MODEL.CRNAS`` (ARCH, WIDTH, NORM, OUT_FEATURES) with its defaults to a detectron2 config."""
    cfg.MODEL.CRNAS = CfgNode()
    cfg.MODEL.CRNAS.ARCH = "cr_resnet50"
    cfg.MODEL.CRNAS.WIDTH = None
    cfg.MODEL.CRNAS.NORM = "FrozenBN"
    cfg.MODEL.CRNAS.OUT_FEATURES = list(STAGE_NAMES)


def _crnas_cfg(cfg: CfgNode) -> CfgNode:
    node = cfg.MODEL.get("CRNAS")
    if node is None:
        raise KeyError(
            "cfg.MODEL.CRNAS: missing; call crnas.integrations.detectron2.add_crnas_config(cfg) before merging your config"
        )
    return node


def _fpn(cfg: CfgNode, bottom_up: Backbone, top_block: torch.nn.Module) -> FPN:
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=top_block,
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def build_crresnet_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> CRResNetBackbone:
    """The backbone ``cfg.MODEL.CRNAS`` describes, frozen up to ``cfg.MODEL.BACKBONE.FREEZE_AT``."""
    node = _crnas_cfg(cfg)
    channels = input_shape.channels if input_shape is not None and input_shape.channels is not None else 3
    return CRResNetBackbone(
        node.ARCH,
        width=node.WIDTH,
        in_channels=channels,
        norm=node.NORM,
        out_features=node.OUT_FEATURES,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )


def build_crresnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> FPN:
    """The CR backbone with detectron2's FPN and ``LastLevelMaxPool`` (p2..p6), as
    ``build_resnet_fpn_backbone``."""
    return _fpn(cfg, build_crresnet_backbone(cfg, input_shape), LastLevelMaxPool())


def build_retinanet_crresnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> FPN:
    """The CR backbone with detectron2's FPN and ``LastLevelP6P7`` from res5 (p3..p7), as
    ``build_retinanet_resnet_fpn_backbone``."""
    bottom_up = build_crresnet_backbone(cfg, input_shape)
    if "res5" not in bottom_up.output_shape():
        raise ValueError(f"cfg.MODEL.CRNAS.OUT_FEATURES: LastLevelP6P7 reads res5, got {_crnas_cfg(cfg).OUT_FEATURES}")
    return _fpn(cfg, bottom_up, LastLevelP6P7(bottom_up.output_shape()["res5"].channels, cfg.MODEL.FPN.OUT_CHANNELS))


def save_inherited_checkpoint(
    arch: ArchLike,
    path: str | os.PathLike,
    *,
    weights: Any = "torchvision",
    width: float | None = None,
    prefix: str = "backbone.bottom_up.",
    progress: bool = True,
) -> InheritReport:
    """Write a detectron2 checkpoint (``{"model": ...}``, for ``cfg.MODEL.WEIGHTS``) of ``arch``'s
    backbone initialised from ``weights`` with :func:`crnas.weights.inherit`; returns the report.

    Args:
        arch: the architecture (as :class:`CRResNetBackbone` takes it).
        path: where to write it (``.pth``).
        weights: ``"torchvision"`` (the family's ImageNet weights), a torchvision ``WeightsEnum`` or the
            path of a state dict of the family's baseline.
        width: channel multiplier overriding the architecture's.
        prefix: the backbone's path in the model: ``"backbone.bottom_up."`` under an FPN,
            ``"backbone."`` for the bare backbone.
        progress: show the download progress of ``weights``.
    """
    arch = architecture(arch, width, resnet_only=True, hint=_MOBILENET_HINT)
    state, report = inherited_state_dict(arch, weights, progress=progress)
    model = {prefix + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": model, "__author__": "crnas", "crnas_architecture": arch.to_json()}, os.fspath(path))
    return report


for _builder in (build_crresnet_backbone, build_crresnet_fpn_backbone, build_retinanet_crresnet_fpn_backbone):
    if _builder.__name__ not in BACKBONE_REGISTRY:  # idempotent across importlib.reload
        BACKBONE_REGISTRY.register(_builder)
