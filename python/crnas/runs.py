"""``run.json``, the record of one trained detector (``crnas train``), and loading the detector back.

A run directory holds ``run.json`` (:class:`RunRecord`: the architecture, the detector settings, the
data and split, the schedule and the held-out metrics) and ``last.pt`` (:func:`crnas.train.train_detector`'s
checkpoint). :func:`load_detector` is the one way back to the trained ``nn.Module``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crnas.arch import get_architecture
from crnas.detection import backbone_training, build_detector, detection_limit
from crnas.eval.coco import MAX_DETECTIONS
from crnas.jsonfile import read_record, write_json
from crnas.train import CHECKPOINT_NAME

__all__ = ["RUN_FILE", "ModelSettings", "RunRecord", "load_detector"]

RUN_FILE = "run.json"


@dataclass
class ModelSettings:
    """What builds the (untrained) detector of a run."""

    detector: str
    num_classes: int
    min_size: int
    max_size: int
    fpn_channels: int = 256
    representation_size: int | None = None
    max_detections: int = MAX_DETECTIONS
    #: The backbone was initialised from ImageNet weights (fewer trainable stages, frozen BatchNorm).
    pretrained: bool = False
    #: Normalisation of a backbone trained from scratch (``crnas.detection.NORMS``; ignored when pretrained).
    norm: str = "batch"


@dataclass
class RunRecord:
    """``run.json`` of a ``crnas train`` run directory."""

    architecture: dict[str, Any]
    model: ModelSettings
    data: dict[str, Any]
    classes: list[str]
    split: dict[str, Any]
    weights_backbone: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        model = dict(d["model"])
        if "frozen_bn" in model:  # run.json of crnas 0.1.0: trainable_layers / frozen_bn spelled out
            model["pretrained"] = bool(model.pop("frozen_bn"))
            model.pop("trainable_layers", None)
        return cls(**{**d, "model": ModelSettings(**model)})

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        path = Path(run_dir) / RUN_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> RunRecord:
        path = Path(run_dir)
        path = path / RUN_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"run: expected a run directory of `crnas train` holding {RUN_FILE}, got {str(run_dir)!r}")
        return read_record(path, "a crnas run record", cls.from_dict)

    def detector(self, max_detections: int | None = None) -> nn.Module:
        """The untrained detector of this run (keeping ``max_detections`` per image, default the run's)."""
        m = self.model
        layers, norm = backbone_training(m.pretrained, m.norm)
        limit = detection_limit(m.detector, m.max_detections if max_detections is None else max_detections)
        return build_detector(
            m.detector, get_architecture(self.architecture), num_classes=m.num_classes, trainable_layers=layers, norm_layer=norm,
            fpn_channels=m.fpn_channels, representation_size=m.representation_size, min_size=m.min_size, max_size=m.max_size, **limit,
        )


def load_detector(run_dir: str | os.PathLike[str], *, max_detections: int | None = None) -> nn.Module:
    """The trained detector of a run directory (``run.json`` + ``last.pt``), in eval mode, on the CPU."""
    record = RunRecord.load(run_dir)
    model = record.detector(max_detections)
    checkpoint = Path(run_dir) / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise FileNotFoundError(f"run: {run_dir} has no trained weights ({CHECKPOINT_NAME})")
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["model"])
    return model.eval()
