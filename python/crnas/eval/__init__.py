"""Detection evaluation: collect detections (possibly with several sub-networks), score them once.

``coco_eval(model, dataset)`` is ``score_detections(collect_detections(model, dataset), dataset)``;
``voc_ap50`` scores the same records the Pascal VOC way. Metrics are fractions in [0, 1].
"""

from __future__ import annotations

from crnas.eval.coco import MAX_DETECTIONS, METRICS, coco_eval, score_detections
from crnas.eval.detections import collect_detections, ground_truth
from crnas.eval.voc import voc_ap50

__all__ = ["MAX_DETECTIONS", "METRICS", "coco_eval", "collect_detections", "ground_truth", "score_detections", "voc_ap50"]
