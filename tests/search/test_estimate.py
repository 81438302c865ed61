"""``crnas search --dry-run``: the space, the phases and an estimate from timed iterations; nothing written."""

from __future__ import annotations

from crnas.cli import main
from crnas.data import SyntheticDetection
from crnas.search.config import preset
from crnas.search.estimate import _greedy_candidates, estimate_search


def test_estimate_on_the_tiny_preset(tmp_path, capsys):
    config = preset("tiny", family="resnet18", stage_iterations=30, op_iterations=20)
    estimate = estimate_search(config, SyntheticDetection(10, image_size=(64, 64), seed=0), steps=1)
    assert [p.name for p in estimate.phases] == ["stage supernet", "stage search", "op supernet", "dilation search"]
    assert estimate.space_size == 9 and estimate.budget == "8 blocks"
    assert [p.images for p in estimate.phases] == [30 * 4, 9 * (2 + 2 * 4), 20 * 4, 66 * (2 + 2 * 4)]  # archval 2 + 2 recal batches of 4
    assert all(p.seconds > 0 for p in estimate.phases)
    stage, _, op, _ = estimate.phases
    assert stage.seconds == 30 * estimate.measured["stage step"] and op.seconds == 20 * estimate.measured["op step"]
    assert _greedy_candidates(8, 3, 3) == 3 + 7 * 9 and _greedy_candidates(2, 3, 1) == 6
    assert main(["search", "--synthetic", "10", "--image-size", "64", "--preset", "tiny", "--family", "resnet18",
                 "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("9 allocations, budget 8 blocks") and out[-1].startswith("estimated total on cpu: ~")
    assert not (tmp_path / "run").exists()
