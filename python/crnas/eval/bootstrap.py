"""COCO AP under resampling of the images: match once per image, re-accumulate per resample.

A paired bootstrap over images asks how an AP difference between two sets of detections on the same
images would vary with another draw of those images. Re-running pycocotools on every resample would
repeat its expensive part, the per-image matching of detections to ground truth, which does not
depend on the draw. :class:`ImageEvaluation` runs that matching once (pycocotools' ``evaluate``, area
"all", up to ``max_detections`` per image) and computes COCO AP for many image weightings at once: a resample
that draws image *i* ``w_i`` times weighs its detections and ground truth by ``w_i``, which gives the
same precision/recall curve as concatenating ``w_i`` copies of it (copies of a detection are
consecutive in the score order, and COCO's interpolated precision is the same whether such a run of
points is stepped through one by one or at once). With unit weights the result is pycocotools' AP.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crnas.data.base import DetectionDataset
from crnas.eval.coco import MAX_DETECTIONS, coco_evaluator
from crnas.eval.detections import Record

__all__ = ["ImageEvaluation", "bootstrap_weights", "percentile_interval"]


@dataclass(frozen=True)
class _Category:
    """One category's detections over all images, in pycocotools' score order."""

    image: NDArray[np.intp]  # [D] position of each detection's image
    tp: NDArray[np.float64]  # [T, D] 1 where the detection matches (a non-ignored) ground truth
    fp: NDArray[np.float64]  # [T, D] 1 where it matches nothing and is not ignored
    gt: NDArray[np.float64]  # [I] non-ignored ground-truth boxes per image


class ImageEvaluation:
    """The per-image COCO matching of one set of detections, re-accumulated under image weights.

    Build it with :meth:`of`; :meth:`ap` gives COCO AP (IoU .50:.05:.95, area all) for
    each row of a weight matrix; ``image_ids`` orders the weight columns.
    """

    def __init__(self, image_ids: Sequence[int], categories: list[_Category], iou_thresholds: int, recall_thresholds: NDArray[np.float64]):
        self.image_ids = list(image_ids)
        self._categories = categories
        self._num_iou = iou_thresholds
        self._recall = recall_thresholds

    @classmethod
    def of(cls, detections: Sequence[Record], dataset: DetectionDataset, *, max_detections: int = MAX_DETECTIONS) -> ImageEvaluation:
        """Match ``detections`` (records of :func:`crnas.eval.collect_detections`) against ``dataset``,
        up to ``max_detections`` per image."""
        evaluator = coco_evaluator(detections, dataset, max_detections=max_detections)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate()
        p = evaluator.params
        image_ids, num_images, num_areas = list(p.imgIds), len(p.imgIds), len(p.areaRng)
        max_det = p.maxDets[-1]
        num_iou = len(p.iouThrs)
        categories = []
        for k in range(len(p.catIds)):
            scores, images, matches, ignores = [], [], [], []
            gt = np.zeros(num_images)
            for i in range(num_images):
                e = evaluator.evalImgs[k * num_areas * num_images + i]  # area range 0: "all"
                if e is None:
                    continue
                d = len(e["dtScores"][:max_det])
                scores.append(np.asarray(e["dtScores"][:max_det], dtype=np.float64))
                images.append(np.full(d, i, dtype=np.intp))
                matches.append(np.asarray(e["dtMatches"][:, :max_det]).reshape(num_iou, d))
                ignores.append(np.asarray(e["dtIgnore"][:, :max_det]).reshape(num_iou, d))
                gt[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            if not scores:
                categories.append(_Category(np.zeros(0, np.intp), np.zeros((num_iou, 0)), np.zeros((num_iou, 0)), gt))
                continue
            order = np.argsort(-np.concatenate(scores), kind="mergesort")  # pycocotools' order
            matched = np.concatenate(matches, axis=1)[:, order] != 0
            ignored = np.concatenate(ignores, axis=1)[:, order] != 0
            tp = (matched & ~ignored).astype(np.float64)
            fp = (~matched & ~ignored).astype(np.float64)
            categories.append(_Category(np.concatenate(images)[order], tp, fp, gt))
        return cls(image_ids, categories, num_iou, np.asarray(p.recThrs, dtype=np.float64))

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def ap(self, weights: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
        """COCO AP (a fraction; -1 where no category has ground truth) for each row of ``weights``
        ``[B, num_images]`` (how often each image is drawn); unit weights (one row) by default."""
        w = np.ones((1, self.num_images)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.num_images:
            raise ValueError(f"weights: expected shape [B, {self.num_images}], got {list(w.shape)}")
        total = np.zeros(len(w))
        counted = np.zeros(len(w))
        eps = np.spacing(1)
        for cat in self._categories:
            npig = w @ cat.gt  # [B]
            present = npig > 0
            if not present.any():
                continue
            dw = w[:, cat.image]  # [B, D]
            cat_ap = np.zeros(len(w))
            for t in range(self._num_iou):
                tp = np.cumsum(dw * cat.tp[t], axis=1)
                fp = np.cumsum(dw * cat.fp[t], axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    rc = tp / npig[:, None]
                pr = tp / (fp + tp + eps)
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # interpolated precision
                for b in np.flatnonzero(present):
                    idx = np.searchsorted(rc[b], self._recall, side="left")
                    inside = idx < rc.shape[1]
                    cat_ap[b] += pr[b, idx[inside]].sum() / len(self._recall)
            total += np.where(present, cat_ap / self._num_iou, 0.0)
            counted += present
        return np.where(counted > 0, total / np.maximum(counted, 1), -1.0)


def bootstrap_weights(num_images: int, resamples: int, seed: int) -> NDArray[np.float64]:
    """``[resamples, num_images]`` draw counts of ``resamples`` bootstrap samples of the images
    (each draws ``num_images`` images with replacement), from ``numpy.random.default_rng(seed)``."""
    if num_images < 1 or resamples < 1:
        raise ValueError(f"bootstrap: expected at least one image and one resample, got {num_images} images, {resamples} resamples")
    draws = np.random.default_rng(seed).integers(0, num_images, size=(resamples, num_images))
    counts = np.zeros((resamples, num_images))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts


def percentile_interval(samples: NDArray[np.floating], level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (scipy's ``percentile`` method)."""
    alpha = (1 - level) / 2
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)
