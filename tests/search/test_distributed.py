"""A search run by two gloo processes (torchrun): DDP supernet training and sharded scoring."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from crnas import Architecture
from crnas.cli.common import load_dataset
from crnas.data import split
from crnas.search import Scorer, SearchConfig, supernet_of
from crnas.search.driver import supernet_detector


def config_joint(result: dict) -> bool:
    return result["config"]["joint"] is True and result["dilation_search"]["joint"] is True


def test_two_process_search_matches_single_process_scoring(tmp_path, one_torch_thread):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "crnas", "search", "--synthetic",
        "--family", "resnet18", "--preset", "tiny", "--stage-iterations", "6", "--op-iterations", "6", "--joint", "--out", str(out), "--no-progress",
        "--stage-sandwich",  # three passes per step: the first two without DDP's gradient reduction (no_sync)
        "--normalize-outputs",  # running scales per depth, kept by each process, broadcast by DDP
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["versions"]["processes"] == "2" and result["config"]["stage_sandwich"] is True
    assert result["config"]["normalize_outputs"] is True
    arch = Architecture.from_json(json.dumps(result["architecture"]))
    assert arch.family == "resnet18" and len(arch.dilations) == sum(arch.blocks)
    assert "found allocation" in proc.stdout and proc.stdout.count("found allocation") == 1  # rank 0 reports

    # The last greedy step (scored jointly, archval sharded), re-scored here by one process, gives the
    # APs the two processes logged.
    assert config_joint(result)
    config = SearchConfig.from_dict(result["config"])
    dataset = load_dataset({**config.data})
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    model = supernet_detector(config, config.space(), len(dataset.classes) + 1)
    model.load_state_dict(torch.load(out / "op_supernet" / "last.pt", weights_only=True)["model"])
    supernet_of(model).set_allocation(arch.blocks)
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    last = result["dilation_search"]["steps"][-1]
    prefixes = [c["dilations"] for c in last["candidates"]]
    rescored = scorer.score_candidates(prefixes, last["step"], joint=config.joint, common_random=config.common_random)
    assert rescored == [c["metrics"] for c in last["candidates"]]
