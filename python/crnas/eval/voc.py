"""Pascal VOC mAP at IoU 0.5 (the metric of the paper's Table 2), the devkit's way.

Per class, detections are sorted by score (ties keep record order) and each is matched to the
highest-IoU ground-truth box of its image and class: IoU > 0.5 with an unmatched box is a true positive,
with an already matched box a false positive, and with a ``difficult`` (or crowd) box nothing at all;
difficult boxes do not count as positives either. AP is the 11-point interpolated precision
(``use_07_metric=True``, the VOC2007 test protocol) or the area under the interpolated
precision/recall curve (VOC2010 and later). IoU is continuous (no ``+1`` pixel), matching the pixel-edge
boxes of :mod:`crnas.data`. Values are fractions in [0, 1]; a class without any non-difficult ground
truth gets ``-1.0`` and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torchvision.ops import box_iou

from crnas.data.base import DetectionDataset
from crnas.eval.detections import Record, ground_truth

__all__ = ["voc_ap50"]


def _average_precision(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    if use_07_metric:
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0.0, 1.0, 11)]))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_ap50(
    detections: Sequence[Record], dataset: DetectionDataset, *, use_07_metric: bool = True
) -> dict[str, float]:
    """VOC mAP@0.5 of ``detections`` (records of :func:`crnas.eval.collect_detections`) on ``dataset``.

    Returns:
        ``{"AP50": mean over classes, "AP50/<class name>": per class, ...}``.
    """
    pairs = ground_truth(detections, dataset)
    result: dict[str, float] = {}
    for label, name in enumerate(dataset.classes, start=1):
        positives = 0
        candidates: list[tuple[float, int, int]] = []  # (score, image position, detection position)
        images: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (IoU [D, G], ignore [G], used [G])
        for p, (record, target) in enumerate(pairs):
            gt = target["labels"] == label
            ignore = target["iscrowd"][gt] != 0
            if "difficult" in target:
                ignore |= target["difficult"][gt]
            positives += int((~ignore).sum())
            dt = record["labels"] == label
            iou = box_iou(record["boxes"][dt], target["boxes"][gt]).numpy()
            images.append((iou, ignore.numpy(), np.zeros(int(gt.sum()), dtype=bool)))
            candidates.extend((score, p, d) for d, score in enumerate(record["scores"][dt].tolist()))
        if positives == 0:
            result[f"AP50/{name}"] = -1.0
            continue
        hits: list[float] = []  # 1.0 true positive, 0.0 false positive (ignored detections left out)
        for _, p, d in sorted(candidates, key=lambda c: -c[0]):
            iou, ignore, used = images[p]
            j = int(iou[d].argmax()) if iou.shape[1] else -1
            if j < 0 or iou[d, j] <= 0.5:
                hits.append(0.0)
            elif not ignore[j]:
                hits.append(0.0 if used[j] else 1.0)
                used[j] = True
        tp = np.cumsum(hits)
        fp = np.cumsum(1.0 - np.asarray(hits))
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        result[f"AP50/{name}"] = _average_precision(recall, precision, use_07_metric)
    defined = [v for v in result.values() if v >= 0]
    return {"AP50": float(np.mean(defined)) if defined else -1.0, **result}
