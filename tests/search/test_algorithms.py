"""The search algorithms with a stand-in scorer: beam bookkeeping, exhaustive tables, resumable logs."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from crnas import StageSpace
from crnas.data import SyntheticDetection
from crnas.eval import score_detections
from crnas.eval.detections import detection_record
from crnas.search.algorithms import final_check, greedy_dilation_search, stage_search
from crnas.search.result import GreedyStep
from crnas.search.searchlog import read_log

WEIGHTS = [3, 1, 2, 2, 1, 3]  # the additive objective's preferred dilation per block


class FakeSupernet:
    dilations = (1, 2, 3)

    def __init__(self, blocks: int) -> None:
        self.active_convs = [None] * blocks


class FakeScorer:
    """AP of a (partial) assignment: +1 per block matching WEIGHTS; stops the run after ``budget`` calls."""

    def __init__(self, blocks: int = 6, budget: int | None = None) -> None:
        self.supernet = FakeSupernet(blocks)
        self.calls: list[tuple] = []
        self.budget = budget

    def _tick(self):
        if self.budget is not None and len(self.calls) >= self.budget:
            raise KeyboardInterrupt("killed")

    def evaluate_candidates(self, prefixes, step, *, joint=True, common_random=True):
        out = []
        for p in prefixes:
            self._tick()
            self.calls.append(tuple(p))
            out.append(({"AP": sum(d == w for d, w in zip(p, WEIGHTS)) / 10 + 0.001 * (p[-1] == 2)}, []))
        return out

    def evaluate_allocation(self, blocks):
        self._tick()
        self.calls.append(tuple(blocks))
        return {"AP": -abs(blocks[0] - 2) - abs(blocks[3] - 6) + 0.01 * blocks[1]}, []


def test_beam_search_bookkeeping(tmp_path):
    scorer = FakeScorer()
    result = greedy_dilation_search(scorer, tmp_path / "log.jsonl", k=3, progress=False)
    assert result.method == "greedy" and result.dilations == WEIGHTS and result.k == 3
    steps = read_log(tmp_path / "log.jsonl")
    assert [GreedyStep.from_dict(s) for s in steps] == result.steps  # the log holds the returned steps
    assert [len(s["candidates"]) for s in steps] == [3] + [9] * 5  # Algorithm 1: p x O_i
    assert len(scorer.calls) == 3 + 9 * 5
    for step in steps:
        assert len(step["beam"]) == 3
        ranked = sorted(step["candidates"], key=lambda c: (-c["metrics"]["AP"], c["dilations"]))
        assert step["beam"] == [c["dilations"] for c in ranked[:3]]
    assert greedy_dilation_search(FakeScorer(), tmp_path / "k1.jsonl", k=1, progress=False).dilations == WEIGHTS


@pytest.mark.parametrize("kill_after", [1, 4, 20, 47])
def test_greedy_search_resumes_to_the_same_result(tmp_path, kill_after):
    reference = greedy_dilation_search(FakeScorer(), tmp_path / "ref.jsonl", progress=False)
    log = tmp_path / "log.jsonl"
    with pytest.raises(KeyboardInterrupt):
        greedy_dilation_search(FakeScorer(budget=kill_after), log, progress=False)
    completed = len(read_log(log))  # steps whose record was written before the kill
    with open(log, "a") as f:
        f.write('{"step": 99, "cand')  # a torn line from the kill
    resumed_scorer = FakeScorer()
    resumed = greedy_dilation_search(resumed_scorer, log, progress=False)
    assert resumed == reference
    scored_before = 0 if completed == 0 else 3 + 9 * (completed - 1)
    assert len(resumed_scorer.calls) == 3 + 9 * 5 - scored_before  # completed steps are not scored again


def test_stage_search_scores_every_allocation_once_and_resumes(tmp_path):
    space = StageSpace("resnet50", [[1, 2, 3], [1, 2], [2, 3, 5], [2, 3, 4, 6]], budget=10)
    full = stage_search(FakeScorer(), space, tmp_path / "ref.jsonl", progress=False)
    assert sorted(r.blocks for r in full) == space.allocations()
    assert full[0].blocks == max(space.allocations(), key=lambda b: (-abs(b[0] - 2) - abs(b[3] - 6) + 0.01 * b[1]))
    with pytest.raises(KeyboardInterrupt):
        stage_search(FakeScorer(budget=3), space, tmp_path / "log.jsonl", progress=False)
    again = FakeScorer()
    assert stage_search(again, space, tmp_path / "log.jsonl", progress=False) == full
    assert len(again.calls) == len(space) - 3
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == len(space) and len({tuple(r["blocks"]) for r in rows}) == len(space)


def test_exhaustive_enumeration_matches_itertools():
    space = StageSpace("resnet18", [[1, 2], [1, 2, 3], [2, 3], [2, 3]], budget=8)
    brute = [list(c) for c in itertools.product([1, 2], [1, 2, 3], [2, 3], [2, 3]) if sum(c) == 8]
    assert space.allocations() == brute


class RecordScorer:
    """A scorer of complete dilation assignments on a real archval: ``quality[tuple(candidate)]`` in
    [0, 1] is the fraction of each image's objects found exactly (the others missed, one false positive)."""

    max_detections = 100

    def __init__(self, quality: dict[tuple[int, ...], float]) -> None:
        self.archval = SyntheticDetection(40, image_size=(128, 128), num_classes=2, max_objects=4, seed=3)
        self.quality = quality
        self.calls: list[tuple[list[list[int]], int, bool]] = []

    def _records(self, q: float) -> list[dict]:
        records = []
        for i in range(len(self.archval)):
            t = self.archval.target(i)
            g = torch.Generator().manual_seed(i)
            keep = torch.rand(len(t["boxes"]), generator=g) < q
            boxes = torch.cat([t["boxes"][keep], torch.tensor([[1.0, 1.0, 30.0, 30.0]])])
            labels = torch.cat([t["labels"][keep], torch.ones(1, dtype=torch.int64)])
            out = {"boxes": boxes, "scores": torch.linspace(1, 0.5, len(boxes)), "labels": labels}
            records.append(detection_record(i, int(t["image_id"]), out))
        return records

    def evaluate_candidates(self, prefixes, step, *, joint=True, common_random=True):
        self.calls.append(([list(p) for p in prefixes], step, joint))
        out = []
        for p in prefixes:
            records = self._records(self.quality[tuple(p)])
            out.append((score_detections(records, self.archval), records))
        return out


ONES, TWOS, THREES = (1, 1, 1), (2, 2, 2), (3, 3, 3)


def test_final_check_keeps_a_pick_that_beats_all_dilation_1_on_evidence():
    scorer = RecordScorer({TWOS: 0.95, THREES: 0.6, ONES: 0.3})
    check = final_check(scorer, [list(TWOS), list(THREES)], resamples=200, seed=1)
    # the finalists and all-dilation-1 scored once, each with its own paths (the last step, one by one)
    assert scorer.calls == [([[2, 2, 2], [3, 3, 3], [1, 1, 1]], 2, False)]
    assert [c.dilations for c in check.candidates] == [[2, 2, 2], [3, 3, 3], [1, 1, 1]]
    assert check.confidence.winner == [2, 2, 2] and check.confidence.reference == [1, 1, 1]
    assert check.confidence.lead.significant and not check.fallback
    assert check.confidence.lead.value == pytest.approx(check.candidates[0].metrics["AP"] - check.candidates[2].metrics["AP"])


@pytest.mark.parametrize("pick_quality", [0.3, 0.2])  # tied with all-dilation-1, or worse
def test_final_check_falls_back_to_all_dilation_1_without_evidence(pick_quality):
    scorer = RecordScorer({TWOS: pick_quality, ONES: 0.3})
    check = final_check(scorer, [list(TWOS)], resamples=200, seed=1)
    assert not check.confidence.lead.significant and check.fallback


def test_final_check_of_an_all_dilation_1_pick_is_no_fallback():
    scorer = RecordScorer({ONES: 0.5, TWOS: 0.9})
    check = final_check(scorer, [list(ONES), list(TWOS)], resamples=200)
    assert [c.dilations for c in check.candidates] == [[1, 1, 1], [2, 2, 2]]  # all-dilation-1 not added twice
    assert check.confidence.winner == check.confidence.reference == [1, 1, 1] and not check.fallback
    with pytest.raises(ValueError, match="finalists: expected at least"):
        final_check(scorer, [])
