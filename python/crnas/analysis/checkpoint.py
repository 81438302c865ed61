"""The backbone + FPN of a trained detector, for analyses that need only the features (the ERF)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN

from crnas.arch import ArchLike
from crnas.detection import cr_backbone_with_fpn, fpn_extra_blocks, fpn_returned_layers, group_norm

__all__ = ["load_backbone"]


def _state_dict(checkpoint: str | PathLike[str] | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        state = checkpoint
    else:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"checkpoint: cannot load {str(checkpoint)!r} ({type(err).__name__}: {err})") from None
    if isinstance(state.get("model"), Mapping):  # crnas.train's last.pt
        state = state["model"]
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return backbone or dict(state)


def load_backbone(
    arch: ArchLike,
    checkpoint: str | PathLike[str] | Mapping[str, Any] | None = None,
    *,
    fpn_channels: int | None = None,
    seed: int = 0,
) -> BackboneWithFPN:
    """The ``BackboneWithFPN`` of ``arch``, with a detector's weights or random ones.

    Args:
        arch: anything :func:`crnas.arch.get_architecture` accepts (set its width to the checkpoint's).
        checkpoint: ``None`` (random weights, torchvision's initialisation seeded with ``seed``), a
            detector's state dict (keys ``backbone.*``), a ``BackboneWithFPN`` state dict, or a path to
            either or to a :func:`crnas.train.train_detector` ``last.pt`` (``{"model": state_dict}``).
        fpn_channels: FPN width (default: read from the checkpoint, else 256).

    R-CNN checkpoints give ``C2..C5`` and ``P2..P6``; RetinaNet / FCOS ones (``fpn.extra_blocks.p6``)
    ``C3..C5`` and ``P3..P7``. BatchNorm statistics load into ``nn.BatchNorm2d`` (``FrozenBatchNorm2d``
    checkpoints fit too): run the result in eval mode. A checkpoint without running statistics is a
    GroupNorm backbone's (``--norm group``) and loads into :func:`crnas.detection.group_norm`.
    """
    state = _state_dict(checkpoint) if checkpoint is not None else {}
    inner = state.get("fpn.inner_blocks.0.0.weight")
    if fpn_channels is None:
        fpn_channels = int(inner.shape[0]) if inner is not None else 256
    elif inner is not None and inner.shape[0] != fpn_channels:
        raise ValueError(f"fpn_channels: expected {inner.shape[0]} (the checkpoint's), got {fpn_channels}")
    # RetinaNet / FCOS checkpoints carry P6/P7; both lay out their FPN alike (as do R-CNNs).
    detector = "retinanet_fpn" if "fpn.extra_blocks.p6.weight" in state else "faster_rcnn_fpn"
    group = bool(state) and not any(k.endswith("running_mean") for k in state)
    torch.manual_seed(seed)
    model = cr_backbone_with_fpn(
        arch, trainable_layers=5, norm_layer=group_norm if group else nn.BatchNorm2d, out_channels=fpn_channels,
        returned_layers=fpn_returned_layers(detector), extra_blocks=fpn_extra_blocks(detector, fpn_channels),
    )
    if checkpoint is None:
        return model
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches: the first one is enough
        lines = str(err).splitlines()
        detail = (lines[1] if len(lines) > 1 else lines[0]).strip()
        raise ValueError(f"checkpoint: does not fit {model.architecture!r} (check the width): {detail}") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint: expected the weights of {model.architecture!r}, got {len(missing)} missing keys "
            f"({', '.join(missing[:3])}) and {len(unexpected)} unexpected ({', '.join(unexpected[:3])})"
        )
    return model
