"""CR backbones in MMDetection 3.x: the ``CRResNet`` backbone in ``mmdet.registry.MODELS``.

In a config::

    custom_imports = dict(imports=['crnas.integrations.mmdet'], allow_failed_imports=False)
    model = dict(
        backbone=dict(
            _delete_=True,
            type='CRResNet',
            arch='cr_resnet50',               # name, Architecture JSON, dict or result.json path
            out_indices=(0, 1, 2, 3),         # 0 = C2 ... 3 = C5
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            init_cfg=dict(type='Pretrained', checkpoint='cr_resnet50_inherited.pth')),
        neck=dict(in_channels=[256, 512, 1024, 2048]))

``CRResNet`` behaves like mmdet's ``ResNet`` (``forward`` returns a tuple of the ``out_indices``
stages; ``frozen_stages``, ``norm_eval``, ``zero_init_residual``, ``init_cfg`` mean the same), with
torchvision's module and state-dict names (``conv1``, ``bn1``, ``layer1``..``layer4``) whatever the
norm, so ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')`` maps keys directly.

.. note:: A reallocated architecture has a different number of blocks per stage than the checkpoint
   it starts from, so ``torchvision://resnet50`` leaves the extra blocks at their initialisation
   (mmengine lists them as missing keys). :func:`save_inherited_checkpoint` writes a checkpoint
   initialised with :func:`crnas.weights.inherit` instead (every block mapped); load it with
   ``init_cfg=dict(type='Pretrained', checkpoint=path)``.

.. note:: ResNet-series families only. For a (CR-)MobileNetV2 in mmdet, use mmpretrain's
   ``TIMMBackbone`` with ``model_name='crnas_mobilenet_v2'`` (:mod:`crnas.integrations.timm`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from crnas.arch import ArchLike
from crnas.integrations._common import architecture, inherited_state_dict
from crnas.models import STAGE_STRIDES, build
from crnas.models.resnet import CRResNet as TorchCRResNet
from crnas.models.resnet import zero_init_residual_
from crnas.models.weights import InheritReport

__all__ = ["CRResNet", "save_inherited_checkpoint"]

_MOBILENET_HINT = (
    "; for MobileNetV2 use mmpretrain's TIMMBackbone with model_name='crnas_mobilenet_v2' (crnas.integrations.timm)"
)


class CRResNet(BaseModule):
    """A CR-NAS reallocated ResNet/ResNeXt backbone with mmdet's ``ResNet`` contract.

    Args:
        arch: the architecture: ``'cr_resnet50'``, ``'scr_resnet50'``, a baseline family name
            (``'resnet50'``, ...), Architecture JSON text, a dict, or the path of an architecture JSON or
            a search ``result.json``.
        width: channel multiplier overriding the architecture's (``None`` keeps it).
        out_indices: stages to output, 0 = C2 (stride 4) … 3 = C5 (stride 32).
        frozen_stages: stages to freeze (eval mode, ``requires_grad=False``): -1 none, 0 the stem,
            k the stem and C2..C(k+1).
        norm_cfg: mmcv norm config, default ``dict(type='BN', requires_grad=True)`` (``BN``, ``SyncBN``,
            ``GN`` with ``num_groups``, …; ``requires_grad=False`` freezes the affine parameters).
        norm_eval: keep every BatchNorm in eval mode while training (frozen statistics).
        zero_init_residual: zero the last norm of each residual branch (only when ``init_cfg`` is
            ``None``, as mmdet's ``ResNet``).
        init_cfg: mmengine initialisation config, e.g. ``dict(type='Pretrained', checkpoint=...)``;
            ``None`` keeps the construction-time initialisation, which equals mmdet's default
            (Kaiming fan-out for convolutions, norms at 1/0).
    """

    def __init__(
        self,
        arch: ArchLike = "cr_resnet50",
        width: float | None = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_cfg: dict | None = None,
        norm_eval: bool = True,
        zero_init_residual: bool = True,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        arch = architecture(arch, width, resnet_only=True, hint=_MOBILENET_HINT)
        out_indices = tuple(out_indices)
        if not out_indices or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 3 for i in out_indices
        ):
            raise ValueError(
                f"out_indices: expected stage indices in the range [0, 3] (0 = C2 … 3 = C5), got {out_indices}"
            )
        if len(set(out_indices)) != len(out_indices):
            raise ValueError(f"out_indices: expected distinct stage indices, got {out_indices}")
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages: expected an int in the range [-1, 4], got {frozen_stages!r}")
        norm_cfg = {"type": "BN", "requires_grad": True} if norm_cfg is None else norm_cfg
        if not isinstance(norm_cfg, dict) or "type" not in norm_cfg:
            raise ValueError(f"norm_cfg: expected a dict with a 'type' key (e.g. dict(type='BN')), got {norm_cfg!r}")

        model = build(arch, norm_layer=lambda channels: build_norm_layer(norm_cfg, channels)[1])
        assert isinstance(model, TorchCRResNet), "architecture(resnet_only=True) refuses MobileNetV2"
        # Adopt torchvision's children under their names (no avgpool/fc: mmdet backbones have no head).
        self.res_layers = ["layer1", "layer2", "layer3", "layer4"]
        for name in ("conv1", "bn1", "relu", "maxpool", *self.res_layers):
            self.add_module(name, getattr(model, name))
        self.architecture = arch
        self.meta = model.meta
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        #: Channels of C2..C5, and of the stages in ``out_indices`` (the neck's ``in_channels``).
        self.stage_channels: list[int] = list(model.stage_channels)
        self.out_channels: list[int] = [self.stage_channels[i] for i in out_indices]
        self.out_strides: list[int] = [STAGE_STRIDES[i] for i in out_indices]
        if init_cfg is None and zero_init_residual:
            zero_init_residual_(self)
        self._freeze_stages()

    @property
    def norm1(self) -> torch.nn.Module:
        """mmdet's name of the stem norm (``bn1`` here)."""
        return self.bn1

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.bn1.eval()
            for m in (self.conv1, self.bn1):
                for param in m.parameters():
                    param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f"layer{i}")
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """The ``out_indices`` stages, ``Tensor[N, C_i, H/s_i, W/s_i]`` with ``s = 4, 8, 16, 32``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        last = max(self.out_indices)
        for i, name in enumerate(self.res_layers[: last + 1]):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> CRResNet:
        """Train mode, keeping frozen stages (and, with ``norm_eval``, every BatchNorm) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def save_inherited_checkpoint(
    arch: ArchLike,
    path: str | os.PathLike,
    *,
    weights: Any = "torchvision",
    width: float | None = None,
    prefix: str = "",
    progress: bool = True,
) -> InheritReport:
    """Write an mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``) of ``arch``'s backbone
    initialised from ``weights`` with :func:`crnas.weights.inherit`, for
    ``init_cfg=dict(type='Pretrained', checkpoint=path)``. Returns the inheritance report.

    Args:
        arch: the architecture (as :class:`CRResNet` takes it).
        path: where to write the checkpoint.
        weights: ``"torchvision"`` (the family's ImageNet weights), a torchvision ``WeightsEnum`` or the
            path of a state dict of the family's baseline.
        width: channel multiplier overriding the architecture's.
        prefix: prepended to every key (e.g. ``'backbone.'`` for a whole-detector checkpoint).
        progress: show the download progress of ``weights``.
    """
    arch = architecture(arch, width, resnet_only=True, hint=_MOBILENET_HINT)
    state, report = inherited_state_dict(arch, weights, progress=progress)
    meta = {"crnas_architecture": arch.to_json(), "crnas_inherit": str(report)}
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}, "meta": meta}, os.fspath(path))
    return report


def _register() -> None:
    existing = MODELS.module_dict.get("CRResNet")
    if existing is not None and existing.__module__ != __name__:
        raise RuntimeError(
            f"mmdet's MODELS already has a 'CRResNet' (from {existing.__module__}); crnas will not overwrite it"
        )
    MODELS.register_module(name="CRResNet", module=CRResNet, force=True)


_register()
