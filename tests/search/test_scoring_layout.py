"""Scoring that cannot be silently wrong: each candidate is scored on its own outputs (joint and one by
one), a dilation made clearly better wins the greedy step, and the differentiable search's
architecture step moves the probabilities toward the dilation that lowers the loss."""

from __future__ import annotations

import pytest
import torch
from crnas import StageSpace
from crnas.data import SyntheticDetection, split
from crnas.search import Scorer
from crnas.search.algorithms import greedy_dilation_search
from crnas.search.callbacks import DifferentiableSearch
from crnas.search.supernet import build_supernet_detector, supernet_of
from torch import nn

GOOD = 1  # index of dilation 2: the path that "detects perfectly"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


def supernet_detector():
    torch.manual_seed(0)
    space = StageSpace("resnet18", [[1, 2], [1, 2], [2], [2]], budget=6, width=0.125)
    model = build_supernet_detector("faster_rcnn_fpn", space, num_classes=3, min_size=64, max_size=64, fpn_channels=16, representation_size=16)
    supernet_of(model).set_allocation([1, 2, 2, 2])
    return model


class PathOracle(nn.Module):
    """A detector whose output for each input row is the ground truth when the first searched block
    runs dilation 2 on that row, and a box beside every object otherwise: the AP of a candidate tells
    exactly which rows ran its path. Recalibration runs the real supernet backbone."""

    def __init__(self, model: nn.Module, archval) -> None:
        super().__init__()
        self.backbone, self.transform, self.roi_heads = model.backbone, model.transform, model.roi_heads
        self.known = [(archval.load_image(i), archval.target(i)) for i in range(len(archval))]

    def _target(self, image: torch.Tensor):
        return next(t for im, t in self.known if im.shape == image.shape and torch.equal(im, image))

    def forward(self, images):
        path = supernet_of(self).active_convs[0].path
        if isinstance(path, int):
            rows = [path] * len(images)
        else:  # per-image dilation indices, or one-hot mix rows
            rows = path.tolist() if not path.is_floating_point() else path.argmax(-1).tolist()
        assert len(rows) == len(images)
        out = []
        for image, dilation in zip(images, rows):
            t = self._target(image)
            boxes = t["boxes"] if dilation == GOOD else t["boxes"] + 40.0
            out.append({"boxes": boxes, "scores": torch.ones(len(boxes)), "labels": t["labels"]})
        return out


@pytest.fixture(scope="module")
def oracle_scorer():
    archtrain, archval = split(SyntheticDetection(10, image_size=(64, 64), num_classes=2, seed=4), 0.4, 0)
    oracle = PathOracle(supernet_detector(), archval)
    return Scorer(oracle, archtrain, archval, batch_size=3, recal_batches=1, seed=2)


@pytest.mark.parametrize("joint", [True, False])
def test_every_candidate_is_scored_on_its_own_outputs(oracle_scorer, joint):
    candidates = [[1, 1], [2, 1], [3, 2], [2, 3], [1, 2]]
    aps = [m["AP"] for m in oracle_scorer.score_candidates(candidates, 1, joint=joint)]
    assert aps == pytest.approx([0.0, 1.0, 0.0, 1.0, 0.0], abs=1e-9)


def test_joint_and_one_by_one_scoring_agree_when_only_the_layout_matters(oracle_scorer):
    candidates = [[3], [2], [1]]
    joint = oracle_scorer.evaluate_candidates(candidates, 0, joint=True)
    single = oracle_scorer.evaluate_candidates(candidates, 0, joint=False)
    assert [m for m, _ in joint] == [m for m, _ in single]
    for (_, a), (_, b) in zip(joint, single):
        assert [r["index"] for r in a] == [r["index"] for r in b]
        assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(a, b))


def test_the_clearly_better_dilation_wins_the_greedy_step(oracle_scorer, tmp_path):
    result = greedy_dilation_search(oracle_scorer, tmp_path / "log.jsonl", k=2, joint=True, progress=False)
    first = result.steps[0]
    assert first.beam[0] == [2]
    assert result.dilations[0] == 2


class LossOfPaths(nn.Module):
    """A 'detector' whose training loss is lowest when every block's mix puts its weight on dilation 2."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone

    def forward(self, images, targets):
        paths = [conv.path for conv in supernet_of(self).active_convs]
        return {"loss": sum(-torch.log(p[..., GOOD]).mean() for p in paths)}


def test_the_differentiable_step_moves_toward_the_better_dilation():
    archval = SyntheticDetection(4, image_size=(64, 64), num_classes=2, seed=1)
    model = LossOfPaths(supernet_detector())
    blocks = len(supernet_of(model).active_convs)
    search = DifferentiableSearch(archval, blocks, (1, 2, 3), batch_size=1, lr=0.05, seed=0)
    before = search.probabilities()
    for step in range(5):
        search.on_step_start(step, [], [], model)
    after = search.probabilities()
    assert (after[:, GOOD] > before[:, GOOD] + 0.05).all()
    assert search.architecture() == [2] * blocks
