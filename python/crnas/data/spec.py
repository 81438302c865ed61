"""Data specs: the JSON-able description of a dataset that searches and runs record (``{"kind": ...}``)."""

from __future__ import annotations

from typing import Any

from crnas.data.base import DetectionDataset
from crnas.data.coco import CocoDataset
from crnas.data.synthetic import SyntheticDetection
from crnas.data.voc import VOCDataset

__all__ = ["load_dataset"]


def load_dataset(spec: dict[str, Any]) -> DetectionDataset:
    """The dataset a spec describes: ``{"kind": "synthetic", "num_images", "image_size", "seed", "sizes",
    "size_reference"}`` (a spec without ``sizes`` predates the COCO size mix: ``"log-uniform"``),
    ``{"kind": "coco", "ann_file", "image_root"}`` or ``{"kind": "voc", "root", "image_set"}``."""
    kind = spec.get("kind")
    if kind == "synthetic":
        size = int(spec["image_size"])
        reference = spec.get("size_reference")
        return SyntheticDetection(
            int(spec["num_images"]), image_size=(size, size), seed=int(spec.get("seed", 0)), sizes=spec.get("sizes", "log-uniform"),
            size_reference=None if reference is None else int(reference),
        )
    if kind == "coco":
        return CocoDataset(spec["ann_file"], spec["image_root"])
    if kind == "voc":
        return VOCDataset(spec["root"], image_set=spec.get("image_set"))
    raise ValueError(f"data: expected kind synthetic, coco or voc, got {kind!r}")
