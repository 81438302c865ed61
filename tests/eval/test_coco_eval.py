"""COCO scoring through pycocotools: perfect is 1, worse is less, batches combine, mode is restored."""

from __future__ import annotations

import pytest
import torch
from crnas.eval import METRICS, coco_eval, collect_detections, score_detections
from oracles import Oracle, noisy, perfect
from torch import nn


def test_perfect_detections_score_one_in_every_range(synthetic):
    areas = torch.cat([synthetic.target(i)["area"] for i in range(len(synthetic))])
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any() and (areas >= 96**2).any()
    oracle = Oracle(perfect)
    detections = collect_detections(oracle, synthetic, batch_size=3, before_batch=oracle.before_batch)
    assert [r["index"] for r in detections] == list(range(10))
    assert oracle.batches == [(0, 3), (1, 3), (2, 3), (3, 1)]
    # exactly 1 up to pycocotools' tp / (tp + fp + eps)
    assert score_detections(detections, synthetic) == pytest.approx({name: 1.0 for name in METRICS}, abs=1e-12)


def test_worse_detections_score_less(synthetic):
    def shifted(target):
        out = perfect(target)
        size = out["boxes"][:, 2:] - out["boxes"][:, :2]
        out["boxes"] = out["boxes"] + torch.cat([size * 0.1, size * 0.1], 1)  # IoU 0.81 / 1.19 = 0.68
        return out

    def wrong_class(target):
        out = perfect(target)
        out["labels"] = out["labels"] % 3 + 1
        return out

    scores = {}
    for name, predict in (("shifted", shifted), ("wrong_class", wrong_class), ("noisy", noisy)):
        oracle = Oracle(predict)
        detections = collect_detections(oracle, synthetic, before_batch=oracle.before_batch)
        scores[name] = score_detections(detections, synthetic)
    assert scores["shifted"]["AP50"] == pytest.approx(1.0) and scores["shifted"]["AP75"] == 0.0
    assert scores["shifted"]["AP"] == pytest.approx(0.4)  # IoU thresholds 0.50, 0.55, 0.60, 0.65 of ten
    assert scores["wrong_class"]["AP"] == 0.0
    assert 0.1 < scores["noisy"]["AP"] < scores["noisy"]["AP50"] < 1.0


def test_scoring_batches_collected_apart_equals_scoring_at_once(synthetic):
    oracle = Oracle(noisy)
    whole = collect_detections(oracle, synthetic, batch_size=4, before_batch=oracle.before_batch)
    parts = []
    for indices, batch_size in (([7, 2, 9], 2), ([0, 1, 3, 4], 3), ([8, 6, 5], 1)):
        parts += collect_detections(
            oracle, synthetic, batch_size=batch_size, indices=indices, before_batch=oracle.before_batch
        )
    parallel = collect_detections(oracle, synthetic, batch_size=4, before_batch=oracle.before_batch, num_workers=2)
    assert all(torch.equal(a["boxes"], b["boxes"]) and a["index"] == b["index"] for a, b in zip(whole, parallel))
    at_once = score_detections(whole, synthetic)
    assert score_detections(parts[::-1], synthetic) == at_once
    assert 0.0 < at_once["AP"] < 1.0
    # a subset of the images is scored on its own ground truth only
    assert score_detections(parts[:3], synthetic) != at_once


def test_category_ids_and_crowd_regions_of_coco_data(coco_with_crowd):
    ds = coco_with_crowd
    assert ds.label_to_cat_id == {1: 5, 2: 9}

    def perfect_plus_crowd_hit(target):
        out = perfect(target)
        if target["image_id"] == 3:  # a detection inside the crowd region is ignored, not a false positive
            out["boxes"] = torch.cat([out["boxes"], torch.tensor([[10.0, 0, 40, 10]])])
            out["scores"] = torch.cat([out["scores"], torch.tensor([0.99])])
            out["labels"] = torch.cat([out["labels"], torch.tensor([1])])
        return out

    oracle = Oracle(perfect_plus_crowd_hit)
    result = score_detections(collect_detections(oracle, ds, before_batch=oracle.before_batch), ds)
    assert result["AP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    assert result["APl"] == -1.0  # no large object: undefined, as pycocotools reports it


def test_difficult_objects_are_neither_required_nor_penalised(voc_with_difficult):
    ds = voc_with_difficult

    def with_difficult(target):
        return {"boxes": target["boxes"], "scores": torch.ones(len(target["boxes"])), "labels": target["labels"]}

    for predict in (perfect, with_difficult):
        oracle = Oracle(predict)
        result = score_detections(collect_detections(oracle, ds, before_batch=oracle.before_batch), ds)
        assert result["AP"] == pytest.approx(1.0)


class Broken(nn.Module):
    def forward(self, images):
        raise RuntimeError("boom")


def test_training_mode_is_restored_even_on_error(synthetic):
    oracle = Oracle(perfect).train()
    collect_detections(oracle, synthetic, indices=[0], before_batch=oracle.before_batch)
    assert oracle.training
    broken = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        collect_detections(broken, synthetic, indices=[0])
    assert broken.training
    oracle.eval()
    collect_detections(oracle, synthetic, indices=[1], before_batch=oracle.before_batch)
    assert not oracle.training


class Empty(nn.Module):
    def forward(self, images):
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
                for _ in images]


def test_coco_eval_without_any_detection(synthetic):
    assert coco_eval(Empty(), synthetic, batch_size=4) == dict.fromkeys(METRICS, 0.0)


def test_bad_records_and_arguments(synthetic, coco_with_crowd):
    oracle = Oracle(perfect)
    records = collect_detections(oracle, synthetic, indices=[0, 1], before_batch=oracle.before_batch)
    with pytest.raises(ValueError, match="detections: image index 1 has more than one record"):
        score_detections(records + records[1:], synthetic)
    with pytest.raises(ValueError, match="has image_id 0, but the dataset's image 0 has image_id 3"):
        score_detections(records[:1], coco_with_crowd)
    records[0]["labels"] = torch.tensor([4])
    records[0]["boxes"], records[0]["scores"] = torch.zeros(1, 4), torch.ones(1)
    message = r"image index 0 has labels \[4\], but the dataset's labels are 1..3 \(3 classes\)"
    with pytest.raises(ValueError, match=message):
        score_detections(records, synthetic)
    with pytest.raises(IndexError, match=r"indices: expected ints in \[0, 10\), got \[10\]"):
        collect_detections(oracle, synthetic, indices=[10])
    with pytest.raises(TypeError, match="dataset: expected a crnas.data.DetectionDataset, got list"):
        collect_detections(oracle, [])


def test_dense_image_needs_a_cap_above_its_object_count(dense_coco, caplog):
    oracle = Oracle(perfect)
    records = collect_detections(oracle, dense_coco, before_batch=oracle.before_batch)
    assert [len(r["boxes"]) for r in records] == [300, 2]
    expected = dict.fromkeys(METRICS, 1.0) | {"APm": -1.0, "APl": -1.0}  # every object is small
    assert score_detections(records, dense_coco, max_detections=300) == pytest.approx(expected, abs=1e-12)
    # COCO's default keeps an image's 100 best-scored detections: 102 of the 302 objects can be found, so
    # precision is 1 up to recall 102/302 and the AP is the share of the 101 recall thresholds below it
    with caplog.at_level("WARNING", logger="crnas.eval.coco"):
        capped = score_detections(records, dense_coco)
    assert capped["AP"] == pytest.approx(sum(1 for r in torch.linspace(0, 1, 101).tolist() if r <= 102 / 302 + 1e-9) / 101)
    assert capped["AP"] < 0.35
    assert "1 images have more ground-truth objects than max_detections=100" in caplog.text
    assert "image_id 1 (300)" in caplog.text and "image_id 2" not in caplog.text and "at least 300" in caplog.text


def test_default_cap_reproduces_pycocotools_summary(synthetic, monkeypatch):
    import contextlib
    import io

    from crnas.eval import coco

    oracle = Oracle(noisy)
    records = collect_detections(oracle, synthetic, before_batch=oracle.before_batch)
    result = score_detections(records, synthetic)
    assert 0 < result["AP"] < 1 and 0 < result["APs"] < 1

    def pycocotools_summary(evaluator):
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.summarize()
        return [float(v) for v in evaluator.stats[:6]]

    monkeypatch.setattr(coco, "_summarize", pycocotools_summary)
    assert score_detections(records, synthetic) == pytest.approx(result, abs=1e-12)
    with pytest.raises(ValueError, match="max_detections: expected an int >= 1, got 0"):
        score_detections(records, synthetic, max_detections=0)
