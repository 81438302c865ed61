"""Detection data: COCO, Pascal VOC and the built-in synthetic dataset, the search split, seeded loading.

Every dataset returns ``(image Tensor[3, H, W] float in [0, 1], target)`` with the target in
torchvision's detection format (see :mod:`crnas.data.target`), and reports what it had to clip, drop or
convert in ``dataset.report``. Augmentation takes an explicit generator (see
:mod:`crnas.data.transforms`), which is what makes training resume bit-identically.
"""

from __future__ import annotations

from crnas.data import transforms
from crnas.data.base import DetectionDataset
from crnas.data.coco import CocoDataset
from crnas.data.loader import EpochBatchSampler, collate_fn, make_loader
from crnas.data.report import DataReport
from crnas.data.seeding import augmentation_generator, derive_seed
from crnas.data.split import DetectionSubset, split
from crnas.data.synthetic import SyntheticDetection
from crnas.data.target import filter_ignored
from crnas.data.voc import VOCDataset

__all__ = [
    "CocoDataset",
    "DataReport",
    "DetectionDataset",
    "DetectionSubset",
    "EpochBatchSampler",
    "SyntheticDetection",
    "VOCDataset",
    "augmentation_generator",
    "collate_fn",
    "derive_seed",
    "filter_ignored",
    "make_loader",
    "split",
    "transforms",
]
