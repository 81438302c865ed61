"""COCO box AP through pycocotools: ``score_detections`` and ``coco_eval``.

Metrics are fractions in [0, 1] (not percentages), in pycocotools' order: ``AP`` (IoU .50:.05:.95),
``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (area < 32², 32²..96², > 96², from the ground truth's
``area``), all at ``max_detections`` per image (COCO's 100 by default: only an image's best-scored
100 detections count, so an image with more objects than the cap cannot reach AP 1; such images are
named in a warning — raise the cap for dense scenes, e.g. ``crnas train --max-dets 600``). A metric without ground truth (e.g. ``APs`` when no object
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

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from crnas.data.base import DetectionDataset
from crnas.eval.detections import Record, collect_detections, ground_truth

__all__ = ["MAX_DETECTIONS", "METRICS", "coco_eval", "coco_evaluator", "score_detections"]

logger = logging.getLogger(__name__)

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")

#: COCO's cap on the detections scored per image (pycocotools' ``maxDets[2]``).
MAX_DETECTIONS = 100

_AREAS = {"APs": "small", "APm": "medium", "APl": "large"}


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


def _check_max_detections(max_detections: int) -> int:
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections: expected an int >= 1, got {max_detections!r}")
    return max_detections


def _summarize(evaluator: COCOeval) -> list[float]:
    """:data:`METRICS` from the accumulated precision at the last ``maxDets`` (pycocotools'
    ``summarize`` reads AP at a hard-coded 100, which is -1 when 100 is not among ``maxDets``)."""
    params = evaluator.params
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall thresholds, classes, areas, maxDets]
    iou = {"AP": slice(None), "AP50": np.flatnonzero(np.isclose(params.iouThrs, 0.5)), "AP75": np.flatnonzero(np.isclose(params.iouThrs, 0.75))}
    values = []
    for name in METRICS:
        area = params.areaRngLbl.index(_AREAS.get(name, "all"))
        p = precision[iou.get(name, slice(None)), :, :, area, -1]
        p = p[p > -1]
        values.append(float(np.mean(p)) if p.size else -1.0)
    return values


def coco_evaluator(
    detections: Sequence[Record], dataset: DetectionDataset, *, max_detections: int = MAX_DETECTIONS
) -> COCOeval:
    """A pycocotools ``COCOeval`` (bbox, ``maxDets`` up to ``max_detections``) of ``detections`` against
    ``dataset``, ready to ``evaluate()``; only the images with a record take part. Images with more
    ground-truth objects than ``max_detections`` are named in a warning."""
    max_detections = _check_max_detections(max_detections)
    pairs = ground_truth(detections, dataset)
    _warn_dense(pairs, max_detections)
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
    evaluator = _COCOevalIgnoringDifficult(_coco(images, categories, gts), _coco(images, categories, dts), "bbox")
    evaluator.params.maxDets = sorted({1, 10, max_detections})
    return evaluator


def score_detections(
    detections: Sequence[Record], dataset: DetectionDataset, *, max_detections: int = MAX_DETECTIONS
) -> dict[str, float]:
    """COCO box metrics of ``detections`` (records of :func:`collect_detections`) against ``dataset``.

    Only the images with a record are scored, so the records of several ``collect_detections`` calls
    (e.g. one per mini-batch and sub-network) can be concatenated and scored as one set. Each image's
    ``max_detections`` best-scored detections count (COCO's 100); images with more ground-truth
    objects than that are named in a warning.
    """
    evaluator = coco_evaluator(detections, dataset, max_detections=max_detections)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug("pycocotools on %d images, at most %d detections per image:\n%s", len(evaluator.params.imgIds), max_detections, log.getvalue())
    return dict(zip(METRICS, _summarize(evaluator)))


def _warn_dense(pairs: Sequence[tuple[Record, dict[str, Any]]], max_detections: int) -> None:
    """Warn, naming them, about images with more ground-truth objects than ``max_detections``."""
    dense = [(target["image_id"], int(target["boxes"].shape[0])) for _, target in pairs if target["boxes"].shape[0] > max_detections]
    if dense:
        worst = max(n for _, n in dense)
        listed = ", ".join(f"image_id {i} ({n})" for i, n in dense[:10]) + (f" and {len(dense) - 10} more" if len(dense) > 10 else "")
        logger.warning(
            "%d images have more ground-truth objects than max_detections=%d, so their AP cannot reach 1: %s; "
            "raise the cap to at least %d (--max-dets)", len(dense), max_detections, listed, worst,
        )


def coco_eval(
    model: nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    max_detections: int = MAX_DETECTIONS,
) -> dict[str, float]:
    """COCO box AP of ``model`` on all of ``dataset``: :func:`collect_detections` then :func:`score_detections`
    at ``max_detections`` per image (set the detector's own cap to match, see
    :func:`crnas.detection.detection_limit`)."""
    max_detections = _check_max_detections(max_detections)
    detections = collect_detections(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers)
    return score_detections(detections, dataset, max_detections=max_detections)
