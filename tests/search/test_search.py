"""The hierarchical search end to end (tiny preset): result, kill/resume, differentiable mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from crnas import Architecture, StageSpace
from crnas.models import from_json

ARGS = ["--synthetic", "--family", "resnet18", "--preset", "tiny", "--no-progress", "--stage-fallback"]


def search(out: Path, *extra: str, kill_when=None) -> subprocess.CompletedProcess | None:
    """Run ``crnas search``; with ``kill_when(out)``, SIGKILL it as soon as that returns True."""
    cmd = [sys.executable, "-m", "crnas", "search", *ARGS, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    if kill_when is None:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while proc.poll() is None and not kill_when(out):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search finished before the kill point"
    return None


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    proc = search(out)
    return out, json.loads((out / "result.json").read_text()), proc.stdout


def test_result_is_complete_and_valid(reference):
    out, result, stdout = reference
    arch = Architecture.from_json(json.dumps(result["architecture"]))
    space = StageSpace.paper("resnet18")
    assert arch.family == "resnet18" and arch.blocks in space and arch.width == 0.125
    # the exhaustive stage table: every feasible allocation once, best first, with MACs
    table = result["stage_search"]["allocations"]
    assert sorted(r["blocks"] for r in table) == space.allocations()
    assert [r["AP"] for r in table] == sorted((r["AP"] for r in table), reverse=True)
    # the winner, or the baseline when archval cannot tell them apart (docs/design.md#fallback)
    stage = result["stage_search"]
    lead_significant = stage["confidence"]["lead"]["ci"][0] > 0
    assert stage["fallback"] == (table[0]["blocks"] != result["baseline"]["blocks"] and not lead_significant)
    assert arch.blocks == stage["best"] == (result["baseline"]["blocks"] if stage["fallback"] else table[0]["blocks"])
    assert all(r["macs"] == result["macs"]["baseline"] for r in table)  # equal block counts, equal MACs
    # Algorithm 1's bookkeeping
    steps = result["dilation_search"]["steps"]
    assert len(steps) == sum(arch.blocks) and [len(s["candidates"]) for s in steps] == [3] + [9] * (len(steps) - 1)
    for step in steps:
        ranked = sorted(step["candidates"], key=lambda c: (-c["metrics"]["AP"], c["dilations"]))
        assert step["beam"] == [c["dilations"] for c in ranked[:3]]
        assert all(len(c["dilations"]) == step["step"] + 1 for c in step["candidates"])
    # the final check: the pick (the final beam's best), the rest of the beam and all-dilation-1, each with
    # its own paths; then the pick and all-dilation-1 fine-tuned (the tiny preset's 3 iterations each) and
    # compared; all-dilation-1 is kept unless the pick leads it significantly
    final, ones = result["dilation_search"]["final"], [1] * sum(arch.blocks)
    finalists = [c["dilations"] for c in final["candidates"]]
    assert finalists == steps[-1]["beam"] + ([ones] if ones not in steps[-1]["beam"] else [])
    assert [c["dilations"] for c in final["finetuned"]] == [steps[-1]["beam"][0], ones] and final["confidence"]["candidates"] == 2
    assert final["finetuned"] != [final["candidates"][0], final["candidates"][finalists.index(ones)]]  # trained: new scores
    assert final["confidence"]["winner"] == steps[-1]["beam"][0] and final["confidence"]["reference"] == ones
    for dilations in (steps[-1]["beam"][0], ones):  # resumable fine-tuning runs
        assert (out / "final_check" / "-".join(map(str, dilations)) / "last.pt").is_file()
    assert final["fallback"] == (steps[-1]["beam"][0] != ones and final["confidence"]["lead"]["ci"][0] <= 0)
    assert arch.dilations == result["dilation_search"]["dilations"] == (ones if final["fallback"] else steps[-1]["beam"][0])
    assert result["dilation_search"]["metrics"] == final["candidates"][finalists.index(arch.dilations)]["metrics"]
    assert result["macs"]["found"] == result["macs"]["baseline"]
    assert len(result["data"]["fingerprint"]) == 64 and result["data"]["archval"] == 8
    assert result["versions"]["torch"] == torch.__version__ and result["config"]["preset"] == "tiny"
    assert from_json(out / "result.json").architecture == arch
    assert f"found allocation {arch.blocks}" in stdout and "result: " in stdout
    assert ("fallback: kept the baseline allocation" in stdout) == stage["fallback"]
    assert ("fallback: kept all-dilation-1" in stdout) == final["fallback"]


def test_result_loads_into_its_record_and_round_trips(reference, tmp_path):
    from crnas.search import SearchResult, load_result

    out, result, _ = reference
    record = SearchResult.load(out)
    assert record.to_dict() == result and load_result(result) == record == load_result(out / "result.json")
    assert record.architecture == Architecture.from_dict(result["architecture"]) and record.config.preset == "tiny"
    assert record.stage_search.confidence is not None and record.dilation_search.steps[-1].confidence is not None
    assert (record.save(tmp_path / "result.json")).read_bytes() == (out / "result.json").read_bytes()  # the bytes the driver wrote


def test_kill_at_any_point_and_resume_gives_the_identical_result(reference, tmp_path):
    _, expected, _ = reference
    out = tmp_path / "run"
    search(out, kill_when=lambda o: (o / "stage_supernet" / "last.pt").is_file())  # during supernet training
    search(out, "--resume", kill_when=lambda o: lines(o / "stage_search.jsonl") >= 3)  # inside the stage search
    search(out, "--resume", kill_when=lambda o: lines(o / "dilation_search.jsonl") >= 2)  # inside the dilation search
    search(out, "--resume")
    assert json.loads((out / "result.json").read_text()) == expected


def test_existing_directory_needs_resume(reference):
    out, _, _ = reference
    proc = subprocess.run([sys.executable, "-m", "crnas", "search", *ARGS, "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and "already holds a search: add --resume" in proc.stderr


def test_differentiable_mode(tmp_path):
    from crnas.cli.common import load_dataset
    from crnas.search import SearchResult, preset, run_search

    config = preset(
        "tiny", family="resnet18", method="differentiable", stage_iterations=6, op_iterations=8, data=dict(num_images=24), dilation_fallback=False,
    )
    result = run_search(config, load_dataset({**config.data, "seed": 0}), tmp_path, progress=False)
    found = result.dilation_search
    assert found.final is None and not result.stage_search.fallback  # the winners as they are
    assert not (tmp_path / "final_check").exists()
    assert result.architecture.blocks == result.stage_search.allocations[0].blocks
    probabilities = torch.tensor(found.probabilities)
    assert probabilities.shape == (sum(result.architecture.blocks), 3) and found.choices == [1, 2, 3] and found.steps == []
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(len(probabilities)))
    assert (probabilities - 1 / 3).abs().max() > 1e-4  # the architecture weights were trained
    assert found.dilations == [(1, 2, 3)[i] for i in probabilities.argmax(-1).tolist()]
    assert result.architecture.dilations == found.dilations
    assert SearchResult.load(tmp_path) == result and SearchResult.load(tmp_path).to_dict() == json.loads((tmp_path / "result.json").read_text())
    # the final check of a differentiable search: its argmax is the one finalist, against all-dilation-1
    from crnas.data import split
    from crnas.search.audit import final_check_of

    archtrain, archval = split(load_dataset({**config.data, "seed": 0}), config.val_fraction, config.seed)
    final = final_check_of(tmp_path, result, archtrain, archval, finetune=0)
    ones = [1] * len(found.dilations)
    assert [c.dilations for c in final.candidates] == [found.dilations] + ([ones] if found.dilations != ones else [])
    assert final.confidence.winner == found.dilations and final.finetuned is None
    assert final.kept == (ones if final.confidence.keeps_reference else found.dilations)


def test_preset_data_defaults_complete_only_their_own_kind():
    from crnas.search import preset

    assert preset("tiny", data=dict(num_images=24)).data == {**preset("tiny").data, "num_images": 24}
    coco = {"kind": "coco", "ann_file": "ann.json", "image_root": "images"}
    assert preset("demo", data=coco).data == coco  # no synthetic num_images / image_size recorded for COCO data
    # synthetic data: COCO's size mix at the preset's detector input unless the spec says otherwise
    assert preset("demo").data["sizes"] == "coco" and preset("demo").data["size_reference"] == 192
    assert preset("demo", data=dict(sizes="log-uniform")).data["sizes"] == "log-uniform"


def test_quality_preset_is_the_demo_detector_with_the_measured_search_recipe():
    from crnas.cli import main
    from crnas.cli.search import preset_defaults
    from crnas.search import PRESETS, preset

    quality, demo = preset("quality"), preset("demo")
    recipe = {
        "stage_iterations", "op_iterations", "checkpoint_every", "val_fraction", "stage_sampling", "finetune_check", "norm", "data", "preset",
        "stage_ranker",
    }
    differing = {k for k in quality.to_dict() if quality.to_dict()[k] != demo.to_dict()[k]}
    assert differing == recipe  # same detector, data distribution and training; only the search recipe differs
    assert (quality.stage_iterations, quality.op_iterations, quality.stage_sampling, quality.norm) == (4000, 1000, "balanced", "group")
    assert (quality.stage_ranker, quality.probes, quality.probe_iterations) == ("depth-fit", 12, 1000)  # docs/results.md#depth-fit-search
    # GroupNorm is for backbones trained from scratch: pretrained weights keep BatchNorm unless asked otherwise
    assert preset("quality", weights_backbone="torchvision").norm == "batch" and preset("demo", norm="group").norm == "group"
    with pytest.raises(ValueError, match="norm: expected 'batch' with pretrained backbone weights"):
        preset("quality", weights_backbone="torchvision", norm="group")
    assert (quality.finetune_check, demo.finetune_check) == (400, 100)  # the fine-tuning measured in docs/results.md#fallback
    assert round(quality.data["num_images"] * quality.val_fraction) == 160  # the archval of docs/results.md
    assert quality.data["size_reference"] == demo.data["size_reference"] == 192
    for name in PRESETS:  # every preset is offered by the CLI
        with pytest.raises(SystemExit) as exit_:
            main(["search", "--synthetic", "--preset", name, "--out", "x", "--help"])
        assert exit_.value.code == 0
    # --help's preset defaults are read from the presets, not retyped
    assert preset_defaults("stage_ranker") == "supernet (tiny, demo, paper), depth-fit (quality)"
    assert preset_defaults("probe_iterations") == "1000 (tiny, demo, quality), 90000 (paper)"


def test_stage_sampling_and_switches_are_checked():
    from crnas.search import preset

    assert preset("tiny").stage_sampling == "uniform" and preset("tiny", stage_sampling="balanced").stage_sampling == "balanced"
    with pytest.raises(ValueError, match="stage_sampling: expected one of uniform, balanced, independent, got 'fair'"):
        preset("tiny", stage_sampling="fair")
    assert all(preset(name).dilation_fallback and not preset(name).stage_fallback for name in ("tiny", "demo", "quality", "paper"))
    with pytest.raises(ValueError, match="finetune_check: expected an int >= 0, got -1"):
        preset("tiny", finetune_check=-1)
    with pytest.raises(ValueError, match="stage_fallback: expected true or false, got 'no'"):
        preset("tiny", stage_fallback="no")
    with pytest.raises(ValueError, match="stage_distill: expected 0 without stage_sandwich"):
        preset("tiny", stage_distill=1.0)
    with pytest.raises(ValueError, match="stage_distill: expected a finite weight >= 0, got -1.0"):
        preset("tiny", stage_sandwich=True, stage_distill=-1.0)
    with pytest.raises(ValueError, match="normalize_outputs: expected true or false, got 1"):
        preset("tiny", normalize_outputs=1)


def test_a_search_by_an_older_crnas_resumes_and_loads(reference, tmp_path):
    """config.json and result.json written before the fallback existed: the search resumes with the new
    settings of this run (to the same result), and the old result loads without them (their defaults);
    a setting that shapes the trained weights (norm) keeps the value the older crnas ran."""
    import shutil

    from crnas.search import SearchResult

    out, expected, _ = reference
    run = tmp_path / "run"
    shutil.copytree(out, run)
    config = json.loads((run / "config.json").read_text())
    del config["dilation_fallback"], config["stage_fallback"], config["finetune_check"], config["norm"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(subprocess.CalledProcessError) as failed:  # it trained BatchNorm backbones: not this run's GroupNorm
        search(run, "--resume", "--norm", "group")
    assert "holds a search with another configuration (differs in norm)" in failed.value.stderr
    before = json.loads((run / "timing.json").read_text())
    scored_before = (run / "detections" / "dilation" / "final.pt").stat().st_mtime_ns
    search(run, "--resume")
    assert json.loads((run / "result.json").read_text()) == expected
    after = json.loads((run / "timing.json").read_text())  # each phase's seconds, summed over both runs
    phases = ("stage_supernet_s", "stage_search_s", "op_supernet_s", "dilation_search_s", "final_check_s")
    assert set(before) == set(after) == set(phases) and all(after[p] >= before[p] for p in phases)
    assert (run / "detections" / "dilation" / "final.pt").stat().st_mtime_ns > scored_before  # the final check ran again
    old = json.loads(json.dumps(expected))
    del old["stage_search"]["fallback"], old["dilation_search"]["final"], old["config"]["dilation_fallback"], old["stage_search"]["archval"]
    record = SearchResult.from_dict(old)
    # ... and it ran without the final check (nor the archval reliability)
    assert not record.stage_search.fallback and record.dilation_search.final is None and not record.config.dilation_fallback
    assert record.stage_search.archval is None


def test_result_records_the_confidence_of_every_ranking(reference):
    out, result, stdout = reference
    stage = result["stage_search"]["confidence"]
    assert stage["winner"] == result["stage_search"]["allocations"][0]["blocks"] and stage["reference"] == result["baseline"]["blocks"]
    lo, hi = stage["lead"]["ci"]
    assert lo <= stage["lead"]["value"] <= hi and 0 <= stage["indistinguishable"] < stage["candidates"] == len(result["stage_search"]["allocations"])
    assert stage["images"] == result["data"]["archval"] and stage["resamples"] == 200
    for step in result["dilation_search"]["steps"][1:]:
        conf = step["confidence"]
        assert conf["winner"] == step["beam"][0] and conf["reference"] == step["beam"][1]
        assert conf["lead"]["value"] >= 0 and conf["lead"]["ci"][0] <= conf["lead"]["value"] <= conf["lead"]["ci"][1]
    assert len(list((out / "detections" / "stage").glob("*.pt"))) == len(result["stage_search"]["allocations"])
    # the table's split-half archval reliability, from the same stored detections (None: no AP differences to correlate)
    from crnas.cli.common import load_dataset
    from crnas.data import split
    from crnas.data.seeding import derive_seed
    from crnas.search.confidence import DetectionStore, split_half, stage_evaluations
    from crnas.search.driver import CONFIDENCE

    config = result["config"]
    _, archval = split(load_dataset(config["data"]), config["val_fraction"], config["seed"])
    blocks = [a["blocks"] for a in result["stage_search"]["allocations"]]
    evaluations = stage_evaluations(blocks, DetectionStore(out / "detections" / "stage"), archval, max_detections=config["max_detections"])
    try:
        expected = split_half(evaluations, seed=derive_seed(config["seed"], CONFIDENCE)).to_dict()
    except ValueError:
        expected = None
    assert result["stage_search"]["archval"] == expected
    assert ("stage search: archval reliability" in stdout) == (expected is not None)
    final = result["dilation_search"]["final"]["confidence"]  # the fine-tuned pick against fine-tuned all-dilation-1
    assert final["candidates"] == 2 and final["resamples"] == 200 and final["images"] == result["data"]["archval"]
    assert (out / "detections" / "dilation" / "final.pt").is_file() and (out / "detections" / "dilation" / "final-finetuned.pt").is_file()


def test_audit_dry_run_lists_the_runs_and_estimates_their_time(reference, tmp_path):
    """`crnas audit --dry-run` trains nothing: it names every stand-alone run and times a few steps."""
    out, result, _ = reference
    cmd = [sys.executable, "-m", "crnas", "audit", str(out), "--allocations", "3", "--iterations", "2", "--eval-images", "4",
           "--seeds", "0", "1", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "audit"), "--dry-run"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    assert "seeds [0, 1]" in proc.stdout and "(0 cached)" in proc.stdout and "estimated:" in proc.stdout
    assert f"stage    rank    1  {result['stage_search']['allocations'][0]['blocks']}" in proc.stdout
    assert not (tmp_path / "audit" / "audit.json").exists() and not (tmp_path / "cache").exists()


def test_tiny_end_to_end_audit(reference, tmp_path):
    out, result, _ = reference
    cmd = [sys.executable, "-m", "crnas", "audit", str(out), "--allocations", "3", "--iterations", "2", "--eval-images", "4",
           "--seeds", "0", "1", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "audit"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    stage = audit["stage"]
    assert [p["blocks"] for p in stage["pairs"]][0] == result["stage_search"]["allocations"][0]["blocks"]
    assert stage["pick"] == result["stage_search"]["best"]
    assert result["baseline"]["blocks"] in [p["blocks"] for p in stage["pairs"]] and len(stage["pairs"]) == 3
    assert -1 <= stage["kendall_tau"]["value"] <= 1 and len(stage["spearman_rho"]["ci"]) == 2
    assert stage["regret"] >= 0 and 0 <= stage["top3_overlap"] <= 3
    assert all(0 <= p["standalone_AP"] <= 1 for p in stage["pairs"])
    dilation = audit["dilation"]
    assert [1] * sum(result["stage_search"]["best"]) in [p["dilations"] for p in dilation["pairs"]]
    final = result["dilation_search"]["final"]  # the audit ranks the final check's scores
    assert {tuple(p["dilations"]): p["supernet_AP"] for p in dilation["pairs"]} == {
        tuple(c["dilations"]): c["metrics"]["AP"] for c in final["candidates"]
    }
    assert dilation["pick"] == result["dilation_search"]["dilations"]
    from crnas.analysis.audit_figures import plot_audit

    fig = plot_audit(tmp_path / "audit" / "audit.json", path=tmp_path / "audit.png")
    assert len(fig.axes) == 2 and (tmp_path / "audit.png").stat().st_size > 0
    # the winner's all-dilation-1 network is trained once for both audits
    assert "Kendall tau" in proc.stdout and len(list((tmp_path / "cache").iterdir())) == 2 * (3 + len(dilation["pairs"]) - 1)
    # two seeds: the seed noise, with the part that evaluation-image sampling alone gives (runs evaluated again from their checkpoints)
    for ranking in (stage, dilation):
        noise = ranking["seed_noise"]
        assert noise["seeds"] == 2 and noise["sd_within_eval"] >= 0 and len(ranking["pairs"][0]["standalone_runs"]) == 2
    assert "evaluation-image sampling alone gives a seed sd of" in proc.stdout


def test_pretrained_supernet(tmp_path, caplog):
    """--weights-backbone FILE: the stage supernet starts from the file (logged with the mapping's
    report), and the audit's stand-alone runs are keyed by the file's content."""
    import logging

    from crnas.arch import get_architecture
    from crnas.cli.common import load_dataset
    from crnas.models import build
    from crnas.search import preset, run_search
    from crnas.search.audit import job_factory

    weights = tmp_path / "resnet18.pt"
    torch.save(build(get_architecture("resnet18", width=0.125), num_classes=1000).state_dict(), weights)
    config = preset("tiny", family="resnet18", stage_iterations=2, op_iterations=2, data=dict(num_images=24), weights_backbone=str(weights))
    dataset = load_dataset({**config.data, "seed": 0})
    with caplog.at_level(logging.INFO, logger="crnas.search.driver"):
        run_search(config, dataset, tmp_path / "run", progress=False)
    assert any(f"stage supernet initialised from {weights}: InheritReport:" in r.message for r in caplog.records)
    entry = ([2, 2, 2, 2], [1] * 8, 0.0, 1)
    (job,) = job_factory(config, dataset, dataset, 3, [0])(entry)
    assert job.detector["weights_backbone"].startswith("sha256:")
    (scratch,) = job_factory(preset("tiny", family="resnet18"), dataset, dataset, 3, [0])(entry)
    assert "weights_backbone" not in scratch.detector  # runs from scratch keep their cache keys
    with pytest.raises(ValueError, match="norm: expected 'batch' with pretrained backbone weights"):
        preset("tiny", weights_backbone=str(weights), norm="group")


def test_group_norm_search(tmp_path):
    """norm="group": the supernet and the audit's stand-alone runs use GroupNorm (nothing to recalibrate),
    the search runs end to end, and only those runs' cache keys name the normalisation."""
    from crnas.cli.common import load_dataset
    from crnas.search import preset, run_search
    from crnas.search.audit import job_factory, standalone_detector
    from crnas.search.driver import STAGE_SUPERNET, trained_supernet

    config = preset("tiny", family="resnet18", stage_iterations=2, op_iterations=2, data=dict(num_images=24), norm="group")
    dataset = load_dataset({**config.data, "seed": 0})
    result = run_search(config, dataset, tmp_path / "run", progress=False)
    model = trained_supernet(config, tmp_path / "run", STAGE_SUPERNET, result.stage_search.best, len(dataset.classes) + 1)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    entry = (list(result.stage_search.best), [1] * sum(result.stage_search.best), 0.0, 1)
    (job,) = job_factory(config, dataset, dataset, 3, [0])(entry)
    assert job.detector["norm"] == "group"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in standalone_detector(config, job.architecture, 3).modules())
    (batch,) = job_factory(preset("tiny", family="resnet18"), dataset, dataset, 3, [0])(entry)
    assert "norm" not in batch.detector
    with pytest.raises(ValueError, match="norm: expected one of batch, group, got 'layer'"):
        preset("tiny", norm="layer")


def test_few_shot_split_search(tmp_path, monkeypatch):
    """split_stage: after the shared stage supernet each part trains its own copy on its allocations;
    every allocation is scored with its part's weights, and the operation supernet starts from the
    winner's part."""
    from crnas.cli.common import load_dataset
    from crnas.data import split
    from crnas.search import driver, preset, run_search
    from crnas.search.driver import STAGE_SUPERNET, stage_checkpoint, trained_supernet
    from crnas.search.scoring import Scorer

    loaded: list[Path] = []
    load = driver._load_weights
    monkeypatch.setattr(driver, "_load_weights", lambda model, checkpoint: (loaded.append(checkpoint), load(model, checkpoint)))

    config = preset("tiny", family="resnet18", stage_iterations=2, op_iterations=2, data=dict(num_images=24), split_stage=0, split_groups=2,
                    split_iterations=2)
    dataset = load_dataset({**config.data, "seed": 0})
    run = tmp_path / "run"
    result = run_search(config, dataset, run, progress=False)
    parts = config.stage_parts()
    assert [p.choices[0] for p in parts] == [[1], [2, 3]] and sum(map(len, parts)) == len(result.stage_search.allocations) == 9
    weights = [torch.load(run / STAGE_SUPERNET / f"part{i}" / "last.pt", weights_only=True)["model"] for i in range(2)]
    shared = torch.load(run / STAGE_SUPERNET / "last.pt", weights_only=True)["model"]
    key = next(k for k, v in shared.items() if v.is_floating_point() and "layer1" in k)
    assert not torch.equal(weights[0][key], shared[key]) and not torch.equal(weights[0][key], weights[1][key])
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    for i, part in enumerate(parts):  # each part's first allocation scores as its part's weights score it
        blocks = part.allocations()[0]
        assert stage_checkpoint(config, run, blocks) == run / STAGE_SUPERNET / f"part{i}" / "last.pt"
        model = trained_supernet(config, run, STAGE_SUPERNET, blocks, len(dataset.classes) + 1)
        metrics, _ = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed).evaluate_allocation(blocks)
        assert metrics == next(r.metrics for r in result.stage_search.allocations if r.blocks == blocks)
    # the stage search loads each part, then the operation supernet starts from the winner's
    assert loaded[:3] == [run / STAGE_SUPERNET / "part0" / "last.pt", run / STAGE_SUPERNET / "part1" / "last.pt",
                          stage_checkpoint(config, run, result.stage_search.best)]
    assert json.loads((run / "timing.json").read_text())["stage_split_s"] > 0
    with pytest.raises(ValueError, match=r"split_iterations: expected an int >= 1 with split_stage, got 0"):
        preset("tiny", split_stage=1)
    with pytest.raises(ValueError, match=r"split_stage: expected a stage index 0..3 \(C2..C5\) or None, got 4"):
        preset("tiny", split_stage=4, split_iterations=1)
    with pytest.raises(ValueError, match="split_groups: expected between 1 and the 3 feasible depths of stage C2, got 4"):
        preset("tiny", family="resnet18", split_stage=0, split_groups=4, split_iterations=1)  # at validation, before any training
