"""Bootstrap AP: per-image matching re-accumulated under weights equals pycocotools on the resampled
images (copies as distinct images), the confidence intervals are scipy's percentile intervals, and the
split-half reliability is scipy's Pearson r of pycocotools' AP on the two halves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from crnas.data.base import DetectionDataset
from crnas.eval import collect_detections, score_detections
from crnas.eval.bootstrap import ImageEvaluation, bootstrap_weights, percentile_interval
from crnas.search.confidence import random_halves, split_half
from oracles import Oracle, noisy, perfect


class Resampled(DetectionDataset):
    """Images ``picks`` of ``base`` (repeats allowed), each copy its own image id."""

    def __init__(self, base: DetectionDataset, picks: list[int]) -> None:
        self.base, self.picks, self.classes, self.report = base, picks, base.classes, base.report

    def __len__(self) -> int:
        return len(self.picks)

    def load_image(self, index):
        return self.base.load_image(self.picks[index])

    def target(self, index):
        return {**self.base.target(self.picks[index]), "image_id": 1000 + index}


def _records(dataset, predict=noisy):
    oracle = Oracle(predict)
    return collect_detections(oracle, dataset, batch_size=4, before_batch=oracle.before_batch)


def test_unit_weights_give_pycocotools_ap(synthetic):
    records = _records(synthetic)
    evaluation = ImageEvaluation.of(records, synthetic)
    assert evaluation.ap()[0] == pytest.approx(score_detections(records, synthetic)["AP"], abs=1e-12)
    perfect_eval = ImageEvaluation.of(_records(synthetic, perfect), synthetic)
    assert perfect_eval.ap()[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_equal_pycocotools_on_the_resampled_images(synthetic, seed):
    records = {r["index"]: r for r in _records(synthetic)}
    evaluation = ImageEvaluation.of(list(records.values()), synthetic)
    weights = bootstrap_weights(len(synthetic), 3, seed)
    aps = evaluation.ap(weights)
    order = {image_id: i for i, image_id in enumerate(evaluation.image_ids)}
    for row, ap in zip(weights, aps):
        picks = [index for index in range(len(synthetic)) for _ in range(int(row[order[synthetic.target(index)["image_id"]]]))]
        resampled = Resampled(synthetic, picks)
        copies = [{**records[p], "index": i, "image_id": 1000 + i} for i, p in enumerate(picks)]
        assert ap == pytest.approx(score_detections(copies, resampled)["AP"], abs=1e-12)


def test_a_resample_without_ground_truth_is_minus_one(synthetic):
    evaluation = ImageEvaluation.of(_records(synthetic), synthetic)
    assert evaluation.ap(np.zeros((1, len(synthetic))))[0] == -1.0
    with pytest.raises(ValueError, match="weights: expected shape"):
        evaluation.ap(np.ones((2, 3)))


def test_bootstrap_weights_draw_every_image_count_times():
    w = bootstrap_weights(7, 500, seed=3)
    assert w.shape == (500, 7) and (w.sum(1) == 7).all()
    assert np.array_equal(w, bootstrap_weights(7, 500, seed=3))
    assert abs(w.mean() - 1.0) < 0.05
    with pytest.raises(ValueError, match="bootstrap"):
        bootstrap_weights(0, 10, 0)


def test_percentile_interval_is_scipys_percentile_method():
    rng = np.random.default_rng(0)
    data = rng.normal(size=40)
    res = scipy.stats.bootstrap((data,), np.mean, n_resamples=2000, method="percentile", confidence_level=0.9, rng=np.random.default_rng(5))
    samples = res.bootstrap_distribution
    lo, hi = percentile_interval(samples, 0.9)
    assert (lo, hi) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high), abs=1e-12)


def _jittered(scale: float):
    """A candidate detector: every box jittered by ``scale`` of its size, scores random (per image)."""

    def predict(target):
        g = torch.Generator().manual_seed(int(1000 * scale) + target["image_id"])
        boxes = target["boxes"].clone()
        boxes += torch.randn(boxes.shape, generator=g) * (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2) * scale
        return {"boxes": boxes, "scores": torch.rand(len(boxes), generator=g), "labels": target["labels"].clone()}

    return predict


def test_split_half_is_the_pearson_r_of_pycocotools_ap_on_the_two_halves(synthetic):
    """The candidates' AP on each half of the images, scored by pycocotools on those images alone:
    split_half's r is scipy's Pearson r between the halves (mean over the splits), its reliability
    Spearman-Brown's 2r / (1 + r)."""
    candidates = [_records(synthetic, _jittered(scale)) for scale in (0.02, 0.08, 0.15, 0.3)]
    evaluations = [ImageEvaluation.of(records, synthetic) for records in candidates]
    result = split_half(evaluations, splits=3, seed=4)
    order = {image_id: i for i, image_id in enumerate(evaluations[0].image_ids)}
    rs = []
    for half in random_halves(len(synthetic), 3, 4):
        assert half.sum() == len(synthetic) // 2
        sides = []
        for side in (half, 1 - half):
            picks = [i for i in range(len(synthetic)) if side[order[synthetic.target(i)["image_id"]]]]
            subset = Resampled(synthetic, picks)
            aps = []
            for records in candidates:
                by_index = {r["index"]: r for r in records}
                aps.append(score_detections([{**by_index[p], "index": i, "image_id": 1000 + i} for i, p in enumerate(picks)], subset)["AP"])
            sides.append(aps)
        rs.append(scipy.stats.pearsonr(*sides).statistic)
    assert result.r == pytest.approx(np.mean(rs), abs=1e-9) and result.reliability == pytest.approx(2 * result.r / (1 + result.r))
    assert (result.splits, result.candidates, result.images) == (3, 4, len(synthetic))
    assert np.array_equal(random_halves(10, 3, 4), random_halves(10, 3, 4))
    with pytest.raises(ValueError, match="at least 3 candidates"):
        split_half(evaluations[:2])
    renumbered = Resampled(synthetic, list(range(len(synthetic))))  # the same images under other ids
    other = ImageEvaluation.of(_records(renumbered, _jittered(0.05)), renumbered)
    with pytest.raises(ValueError, match="same images"):
        split_half([*evaluations, other])
