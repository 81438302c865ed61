"""The depth-fit stage ranking (docs/design.md#depth-fit): its probes, its line and a search with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from crnas import StageSpace
from crnas.data import split
from crnas.data.spec import load_dataset
from crnas.search import SearchResult
from crnas.search.audit import AuditConfig, run_audit
from crnas.search.config import preset
from crnas.search.depth import depth_fit, farthest_point, linear_predictions
from crnas.search.driver import PROBES, STAGE_SUPERNET, run_search
from crnas.search.estimate import estimate_search
from crnas.search.standalone import StandaloneCache, job_factory


def test_the_line_through_the_probes_scores_every_allocation_as_the_normal_equations_do():
    space = StageSpace.paper("resnet50")
    allocations = space.allocations()
    probes = farthest_point(allocations, [3, 4, 6, 3], 12)
    truth = lambda b: 20 + 0.9 * b[0] + 0.7 * b[1] + 0.2 * b[2]  # noqa: E731 - AP of moving a block from C5 into C2 / C3 / C4
    exact = linear_predictions(probes, [truth(b) for b in probes], allocations)
    assert exact is not None
    np.testing.assert_allclose(exact, [truth(b) for b in allocations], atol=1e-9)

    noisy = [truth(b) + e for b, e in zip(probes, np.random.default_rng(0).normal(0, 1.5, len(probes)))]
    predicted = linear_predictions(probes, noisy, allocations)
    x = np.column_stack([np.ones(len(probes)), np.asarray(probes, dtype=float)[:, :3]])  # C5 is the others' complement
    beta = np.linalg.solve(x.T @ x, x.T @ np.asarray(noisy))
    np.testing.assert_allclose(predicted, np.column_stack([np.ones(len(allocations)), np.asarray(allocations)[:, :3]]) @ beta, atol=1e-9)
    fit = depth_fit(probes, noisy)
    assert fit is not None and fit.last_stage_is_reference
    np.testing.assert_allclose(fit.linear.coefficients, beta[1:], atol=1e-9)
    assert linear_predictions(probes[:5], noisy[:5], allocations) is None  # 4 parameters need 6 allocations
    assert linear_predictions([[3, 4, 6, 3]] * 8, list(range(8)), allocations) is None  # depths that never vary


def test_probes_start_at_the_baseline_and_spread_over_the_space():
    allocations = StageSpace.paper("resnet50").allocations()
    probes = farthest_point(allocations, [3, 4, 6, 3], 12)
    assert probes[0] == [3, 4, 6, 3] and len({tuple(p) for p in probes}) == 12 and all(p in allocations for p in probes)
    def gap(a: list[int], picked: list[list[int]]) -> int:
        return min(sum(abs(x - y) for x, y in zip(a, p)) for p in picked)

    for k in range(1, len(probes)):
        assert gap(probes[k], probes[:k]) == max(gap(a, probes[:k]) for a in allocations if a not in probes[:k])
    assert sorted(farthest_point(allocations[:3], allocations[0], 12)) == allocations[:3]  # asked for more: all of them


def test_a_depth_fit_search_ranks_by_the_line_through_its_probes_and_resumes(tmp_path, one_torch_thread):
    config = preset(
        "tiny", family="resnet18", stage_ranker="depth-fit", probes=7, probe_iterations=2, op_iterations=3, finetune_check=1, beam=1,
    )
    dataset = load_dataset(config.data)
    estimate = estimate_search(config, dataset, steps=1)
    phases = [p.name for p in estimate.phases]
    assert phases[0] == "probes" and "stage supernet" not in phases and "stage search" not in phases
    assert "probe step" in estimate.measured and "stage step" not in estimate.measured

    result = run_search(config, dataset, tmp_path, progress=False)
    stage, space = result.stage_search, config.space()
    assert stage.probes is not None and stage.confidence is None and not (tmp_path / STAGE_SUPERNET).exists()
    probes = [p.blocks for p in stage.probes.allocations]
    assert probes == farthest_point(space.allocations(), [2, 2, 2, 2], 7)
    # the probes' AP is that of their stand-alone runs, trained on archtrain and evaluated on archval
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    jobs = [job_factory(config, archtrain, archval, 2, [config.seed])((b, [1] * sum(b), 0.0, 0))[0] for b in probes]
    cached = [StandaloneCache(tmp_path / PROBES).get(j) for j in jobs]
    assert [p.metrics for p in stage.probes.allocations] == cached
    # every allocation, best first, by the line through the probes' AP
    ap = [100 * m["AP"] for m in cached if m is not None]
    predicted = dict(zip(map(tuple, space.allocations()), linear_predictions(probes, ap, space.allocations()) or []))
    assert sorted(a.blocks for a in stage.allocations) == space.allocations()
    np.testing.assert_allclose([100 * a.metrics["AP"] for a in stage.allocations], [predicted[tuple(a.blocks)] for a in stage.allocations])
    assert [a.metrics["AP"] for a in stage.allocations] == sorted((a.metrics["AP"] for a in stage.allocations), reverse=True)
    assert stage.best == stage.allocations[0].blocks == result.architecture.blocks
    assert stage.probes.fit == depth_fit(probes, ap)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert SearchResult.from_dict(saved).to_dict() == saved == result.to_dict()

    again = run_search(config, dataset, tmp_path, progress=False)  # resumes: every run cached or checkpointed
    assert again.to_dict() == result.to_dict()

    # an audit takes the line's predictions as the ranking it checks
    audit = AuditConfig(allocations=4, iterations=2, seeds=[1], dilation=False, eval_images=4, resamples=100)
    truth = lambda job, run_dir, progress: {"AP": predicted[tuple(job.architecture["blocks"])] / 100}  # noqa: E731
    record = run_audit(tmp_path, audit, cache=StandaloneCache(tmp_path / "audit_cache"), trainer=truth, progress=False)
    assert [p.supernet_AP for p in record.stage.pairs] == [p.standalone_AP for p in record.stage.pairs]
    assert record.stage.kendall_tau.value == pytest.approx(1.0) and record.stage.pick == stage.best


def test_depth_fit_settings_are_checked():
    with pytest.raises(ValueError, match="stage_ranker: expected one of supernet, depth-fit, got 'probes'"):
        preset("tiny", stage_ranker="probes")
    with pytest.raises(ValueError, match=r"probes: expected 7 \(a line through 4 stage depths and two more\) to 153 .*got 6"):
        preset("tiny", stage_ranker="depth-fit", probes=6)
    with pytest.raises(ValueError, match="probe_iterations: expected an int >= 1, got 0"):
        preset("tiny", stage_ranker="depth-fit", probe_iterations=0)
    with pytest.raises(ValueError, match="split_stage: expected None with stage_ranker depth-fit"):
        preset("tiny", stage_ranker="depth-fit", split_stage=0, split_iterations=5)
