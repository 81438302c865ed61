"""``crnas search --dry-run``: the space, the phases and an estimate from timed iterations; nothing written."""

from __future__ import annotations

from crnas.cli import main
from crnas.data import SyntheticDetection
from crnas.search.config import preset
from crnas.search.estimate import _greedy_candidates, estimate_search


def test_estimate_on_the_tiny_preset(tmp_path, capsys):
    config = preset("tiny", family="resnet18", stage_iterations=30, op_iterations=20)
    estimate = estimate_search(config, SyntheticDetection(10, image_size=(64, 64), seed=0), steps=1)
    assert [p.name for p in estimate.phases] == ["stage supernet", "stage search", "op supernet", "dilation search", "final check"]
    assert estimate.space_size == 9 and estimate.budget == "8 blocks"
    scored = 2 + 2 * 4  # archval 2 + 2 recal batches of 4
    # the final check: the beam and all-dilation-1 scored, the pick and all-dilation-1 fine-tuned 3 iterations each and scored
    assert config.finetune_check == 3 and estimate.phases[-1].work == "4 finalists scored; 2 x 3 fine-tuning iterations"
    assert [p.images for p in estimate.phases] == [30 * 4, 9 * scored, 20 * 4, 66 * scored, 4 * scored + 2 * (3 * 4 + scored)]
    assert all(p.seconds > 0 for p in estimate.phases)
    stage, _, op, _, _ = estimate.phases
    assert stage.seconds == 30 * estimate.measured["stage step"] and op.seconds == 20 * estimate.measured["op step"]
    data = SyntheticDetection(10, image_size=(64, 64), seed=0)
    plain = estimate_search(preset("tiny", family="resnet18", finetune_check=0), data, steps=1)
    assert plain.phases[-1].work == "4 finalists scored" and plain.phases[-1].images == 4 * scored
    unchecked = estimate_search(preset("tiny", family="resnet18", dilation_fallback=False), data, steps=1)
    assert [p.name for p in unchecked.phases][-1] == "dilation search"
    assert _greedy_candidates(8, 3, 3) == 3 + 7 * 9 and _greedy_candidates(2, 3, 1) == 6
    assert main(["search", "--synthetic", "10", "--image-size", "64", "--preset", "tiny", "--family", "resnet18",
                 "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("9 allocations, budget 8 blocks") and out[-1].startswith("estimated total on cpu: ~")
    assert not (tmp_path / "run").exists()


def test_estimate_counts_the_few_shot_parts(tmp_path, capsys):
    config = preset("tiny", family="resnet18", stage_iterations=30, split_stage=0, split_groups=2, split_iterations=10)
    estimate = estimate_search(config, SyntheticDetection(10, image_size=(64, 64), seed=0), steps=1)
    stage, parts = estimate.phases[:2]
    assert parts.name == "stage supernet parts" and parts.work == "2 x 10 iterations (few-shot split)"
    assert parts.images == 2 * 10 * 4 and parts.seconds == 20 * estimate.measured["stage step"]
    args = ["search", "--synthetic", "10", "--image-size", "64", "--preset", "tiny", "--family", "resnet18", "--out", str(tmp_path / "run")]
    assert main([*args, "--split-stage", "C3", "--dry-run"]) == 0  # each part as long as the shared supernet by default
    printed = [line.split()[:7] for line in capsys.readouterr().out.splitlines()]
    assert ["stage", "supernet", "parts", "3", "x", "30", "iterations"] in printed
    assert main([*args, "--split-groups", "2", "--dry-run"]) == 2
    assert "--split-groups, --split-iterations: expected them with --split-stage" in capsys.readouterr().err


def test_estimate_times_the_sandwich_and_the_cli_checks_distillation(tmp_path, capsys):
    """--stage-sandwich: the stage step is timed with its three passes and the images count them;
    --stage-distill without the sandwich is one line naming the setting."""
    args = ["search", "--synthetic", "10", "--image-size", "64", "--preset", "tiny", "--family", "resnet18", "--out", str(tmp_path / "run")]
    assert main([*args, "--stage-sandwich", "--stage-distill", "0.5", "--dry-run"]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    stage = next(line for line in printed if line[:2] == ["stage", "supernet"])
    assert stage[2:12] == ["30", "iterations", "of", "4", "images", "(sandwich:", "3", "sub-networks", "each)", "360"]
    assert main([*args, "--stage-distill", "0.5", "--dry-run"]) == 1
    assert capsys.readouterr().err.strip() == (
        "crnas search: error: stage_distill: expected 0 without stage_sandwich (it distils from the sandwich's deepest), got 0.5"
    )
