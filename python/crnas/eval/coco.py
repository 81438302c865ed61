"""COCO box AP through pycocotools: ``score_detections`` and ``coco_eval``.

Metrics are fractions in [0, 1] (not percentages), in pycocotools' order: ``AP`` (IoU .50:.05:.95),
``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (area < 32², 32²..96², > 96², from the ground truth's
``area``), all at 100 detections per image. A metric without ground truth (e.g. ``APs`` when no object
is small) is ``-1.0``, as pycocotools reports it.

The ground truth is built in memory from ``dataset.target(index)`` of every image that has a detection
record, with the dataset's category ids (``label_to_cat_id``). Crowd regions are matched as COCO does;
VOC ``difficult`` objects are ignored the same way (a detection on one is neither a hit nor a miss).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from crnas.data.base import DetectionDataset
from crnas.eval.detections import Record, collect_detections, ground_truth

__all__ = ["METRICS", "coco_eval", "coco_evaluator", "score_detections"]

logger = logging.getLogger(__name__)

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


class _COCOevalIgnoringDifficult(COCOeval):
    """COCOeval that also ignores ground truth marked ``difficult`` (pycocotools only honours ``iscrowd``)."""

    def _prepare(self) -> None:
        super()._prepare()
        for gts in self._gts.values():
            for g in gts:
                if g.get("difficult"):
                    g["ignore"] = 1


def _xywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def _coco(images: list[dict[str, Any]], categories: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluator(detections: Sequence[Record], dataset: DetectionDataset) -> COCOeval:
    """A pycocotools ``COCOeval`` (bbox) of ``detections`` against ``dataset``, ready to ``evaluate()``.

    Only the images with a record take part, each as its ``image_id`` in the dataset.
    """
    pairs = ground_truth(detections, dataset)
    cat_id = dataset.label_to_cat_id
    categories = [{"id": cat_id[label], "name": name} for label, name in enumerate(dataset.classes, start=1)]
    images = [{"id": target["image_id"]} for _, target in pairs]
    gts: list[dict[str, Any]] = []
    dts: list[dict[str, Any]] = []
    for record, target in pairs:
        n = target["boxes"].shape[0]
        difficult = target.get("difficult", torch.zeros(n, dtype=torch.bool))
        for box, label, area, crowd, diff in zip(
            target["boxes"].tolist(), target["labels"].tolist(), target["area"].tolist(),
            target["iscrowd"].tolist(), difficult.tolist(),
        ):
            gts.append({
                "id": len(gts) + 1, "image_id": target["image_id"], "category_id": cat_id[label],
                "bbox": _xywh(box), "area": area, "iscrowd": int(crowd), "difficult": int(diff),
            })
        for box, score, label in zip(record["boxes"].tolist(), record["scores"].tolist(), record["labels"].tolist()):
            xywh = _xywh(box)
            dts.append({
                "id": len(dts) + 1, "image_id": target["image_id"], "category_id": cat_id[label],
                "bbox": xywh, "score": score, "area": xywh[2] * xywh[3], "iscrowd": 0,
            })
    return _COCOevalIgnoringDifficult(_coco(images, categories, gts), _coco(images, categories, dts), "bbox")


def score_detections(detections: Sequence[Record], dataset: DetectionDataset) -> dict[str, float]:
    """COCO box metrics of ``detections`` (records of :func:`collect_detections`) against ``dataset``.

    Only the images with a record are scored, so the records of several ``collect_detections`` calls
    (e.g. one per mini-batch and sub-network) can be concatenated and scored as one set.
    """
    evaluator = coco_evaluator(detections, dataset)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.debug("pycocotools on %d images:\n%s", len(evaluator.params.imgIds), log.getvalue())
    return {name: float(value) for name, value in zip(METRICS, evaluator.stats[: len(METRICS)])}


def coco_eval(
    model: nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
) -> dict[str, float]:
    """COCO box AP of ``model`` on all of ``dataset``: :func:`collect_detections` then :func:`score_detections`."""
    detections = collect_detections(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers)
    return score_detections(detections, dataset)
