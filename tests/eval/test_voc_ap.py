"""voc_ap50: the devkit's matching and both AP definitions, on hand-checked cases."""

from __future__ import annotations

import pytest
import torch
from crnas.eval import collect_detections, voc_ap50
from oracles import Oracle, noisy, perfect


def records(dataset, predict):
    oracle = Oracle(predict)
    return collect_detections(oracle, dataset, before_batch=oracle.before_batch)


def test_perfect_is_one_and_difficult_objects_are_ignored(voc_with_difficult):
    ds = voc_with_difficult
    assert voc_ap50(records(ds, perfect), ds) == {"AP50": 1.0, "AP50/cat": 1.0, "AP50/dog": 1.0}

    def also_difficult(target):
        return {"boxes": target["boxes"], "scores": torch.ones(len(target["boxes"])), "labels": target["labels"]}

    assert voc_ap50(records(ds, also_difficult), ds)["AP50"] == 1.0


def test_false_positive_first_halves_precision(voc_with_difficult):
    ds = voc_with_difficult

    def fp_then_tp(target):
        out = perfect(target)
        out["scores"] = out["scores"] * 0.8
        out["boxes"] = torch.cat([torch.tensor([[60.0, 0, 99, 20]]), out["boxes"]])
        out["scores"] = torch.cat([torch.tensor([0.9]), out["scores"]])
        out["labels"] = torch.cat([out["labels"][:1], out["labels"]])
        return out

    # cat: one object, detections [FP 0.9, TP 0.8] -> precision 1/2 at recall 1, for both AP definitions
    for use_07 in (True, False):
        result = voc_ap50(records(ds, fp_then_tp), ds, use_07_metric=use_07)
        assert result["AP50/cat"] == pytest.approx(0.5)


def test_duplicates_are_false_positives(synthetic):
    def twice(target):  # each object twice, the copy scored just below it: TP, FP, TP, FP, ...
        out = perfect(target)
        n = len(out["boxes"])
        scores = 1.0 - (target["image_id"] * 100 + torch.arange(n, dtype=torch.float32)) / 10_000
        return {"boxes": out["boxes"].repeat(2, 1), "scores": torch.cat([scores, scores - 1e-5]),
                "labels": out["labels"].repeat(2)}

    result = voc_ap50(records(synthetic, twice), synthetic, use_07_metric=False)
    for label, name in enumerate(synthetic.classes, start=1):
        n = sum(int((synthetic.target(i)["labels"] == label).sum()) for i in range(len(synthetic)))
        expected = sum(k / (2 * k - 1) for k in range(1, n + 1)) / n  # precision k/(2k-1) at recall k/n
        assert result[f"AP50/{name}"] == pytest.approx(expected)


def test_eleven_point_metric_on_partial_recall(synthetic):
    def first_object_only(target):
        out = perfect(target)
        return {k: v[:1] for k, v in out.items()}

    def with_a_low_false_positive(target):
        out = first_object_only(target)
        fp = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        return {"boxes": torch.cat([out["boxes"], fp]), "scores": torch.cat([out["scores"], torch.tensor([0.1])]),
                "labels": torch.cat([out["labels"], out["labels"][:1]])}

    for use_07 in (True, False):
        clean = voc_ap50(records(synthetic, first_object_only), synthetic, use_07_metric=use_07)
        for name, ap in clean.items():
            assert 0.0 < ap < 1.0, name
        # a false positive scored below every true positive costs nothing
        assert voc_ap50(records(synthetic, with_a_low_false_positive), synthetic, use_07_metric=use_07) == clean
    recall = {}
    for label in (1, 2, 3):
        total = sum(int((synthetic.target(i)["labels"] == label).sum()) for i in range(len(synthetic)))
        found = sum(int(synthetic.target(i)["labels"][:1].eq(label).sum()) for i in range(len(synthetic)))
        recall[label] = found / total
    area = voc_ap50(records(synthetic, first_object_only), synthetic, use_07_metric=False)
    eleven = voc_ap50(records(synthetic, first_object_only), synthetic, use_07_metric=True)
    for label, name in enumerate(synthetic.classes, start=1):
        assert area[f"AP50/{name}"] == pytest.approx(recall[label])  # precision 1 up to that recall
        points = sum(1 for t in torch.linspace(0, 1, 11).tolist() if t <= recall[label] + 1e-12)
        assert eleven[f"AP50/{name}"] == pytest.approx(points / 11)


def test_noisy_detections_score_between_zero_and_one(synthetic):
    result = voc_ap50(records(synthetic, noisy), synthetic)
    assert 0.0 < result["AP50"] < 1.0
    assert result["AP50"] == pytest.approx(sum(result[f"AP50/{c}"] for c in synthetic.classes) / 3)
