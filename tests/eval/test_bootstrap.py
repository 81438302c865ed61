"""Bootstrap AP: per-image matching re-accumulated under weights equals pycocotools on the resampled
images (copies as distinct images), and the confidence intervals are scipy's percentile intervals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from crnas.data.base import DetectionDataset
from crnas.eval import collect_detections, score_detections
from crnas.eval.bootstrap import ImageEvaluation, bootstrap_weights, percentile_interval
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
