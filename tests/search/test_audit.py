"""The ranking audit: statistics equal scipy's, stratified picks, bookkeeping, cache and resume with a
stand-in trainer (the real trainer runs in test_search.py's end-to-end audit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
from crnas import Architecture
from crnas.data.spec import load_dataset
from crnas.search import preset
from crnas.search.audit import (
    AuditConfig,
    AuditRecord,
    StandaloneCache,
    pick_allocations,
    rank_correlation,
    run_audit,
    tau_difference,
    variance_components,
)
from crnas.search.result import DilationSearch, ScoredAllocation, SearchData, SearchedSpace, SearchMacs, SearchResult, StageSearch
from crnas.search.standalone import data_fingerprint

PAIRS = ([0.31, 0.12, 0.25, 0.08, 0.4, 0.22, 0.18, 0.05], [0.20, 0.15, 0.24, 0.10, 0.26, 0.12, 0.21, 0.02])


@pytest.mark.parametrize("kind, fn", [("kendall", scipy.stats.kendalltau), ("spearman", scipy.stats.spearmanr)])
def test_rank_correlation_and_its_interval_are_scipys(kind, fn):
    x, y = PAIRS
    est = rank_correlation(x, y, kind, resamples=500, level=0.9, seed=7)
    assert est.value == pytest.approx(fn(x, y).statistic, abs=1e-12)
    ref = scipy.stats.bootstrap(
        (np.array(x), np.array(y)), lambda a, b: fn(a, b).statistic, paired=True, vectorized=False, n_resamples=500,
        confidence_level=0.9, method="percentile", rng=np.random.default_rng(7),
    )
    assert est.ci == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
    assert est.ci[0] <= est.value <= est.ci[1]


def test_tau_difference_and_its_interval_are_scipys():
    """Two rankings of one truth: the difference of scipy's τ-b, with the interval of scipy's paired
    bootstrap over the items."""
    x, truth = PAIRS
    other = [0.30, 0.10, 0.05, 0.22, 0.12, 0.40, 0.18, 0.08]
    est = tau_difference(x, other, truth, resamples=500, level=0.9, seed=3)
    tau = lambda a, t: scipy.stats.kendalltau(a, t).statistic  # noqa: E731
    assert est.value == pytest.approx(tau(x, truth) - tau(other, truth), abs=1e-12) and est.value > 0
    ref = scipy.stats.bootstrap(
        (np.array(x), np.array(other), np.array(truth)), lambda a, b, t: tau(a, t) - tau(b, t), paired=True, vectorized=False,
        n_resamples=500, confidence_level=0.9, method="percentile", rng=np.random.default_rng(3),
    )
    assert est.ci == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
    same = tau_difference(x, x, truth, resamples=200)
    assert same.value == 0 and same.ci == (0, 0)
    assert tau_difference([1, 2], [2, 1], [1, 2]).value is None
    with pytest.raises(ValueError, match="a, b, truth: expected equal lengths, got 3, 3 and 2"):
        tau_difference([1, 2, 3], [1, 2, 3], [1, 2])


def test_rank_correlation_needs_three_pairs_and_a_known_kind():
    assert rank_correlation([0.1, 0.2], [0.3, 0.1], "kendall").value is None
    with pytest.raises(ValueError, match="kind"):
        rank_correlation([1, 2, 3], [1, 2, 3], "pearson")


def test_printed_audit_says_why_a_correlation_is_missing():
    from crnas.cli.audit import format_audit
    from crnas.search.audit import Pair, ranking_audit

    def record(standalone: list[float]) -> str:
        pairs = [Pair([i, 1, 1, 1], [1] * (i + 3), 0.1 * i, ap, [{"AP": ap}], i + 1) for i, ap in enumerate(standalone)]
        stage = ranking_audit(pairs, [0, 1, 1, 1], key=lambda p: p.blocks, resamples=50)
        return format_audit(AuditRecord(stage=stage, dilation=None, config={}, search={}))

    assert "Kendall tau: n/a (fewer than 3 architectures)" in record([0.2, 0.3])
    assert "Kendall tau: n/a (one side's APs are all equal)" in record([0.2, 0.2, 0.2, 0.2])
    assert "Kendall tau: +1.000" in record([0.1, 0.2, 0.3, 0.4])
    # two seeds each: the seed-noise line says how many seeds a ceiling of 0.6 would take
    pairs = [Pair([i, 1, 1, 1], [1] * (i + 3), 0.1 * i, 0.1 * i, [{"AP": 0.1 * i - 0.1}, {"AP": 0.1 * i + 0.1}], i + 1) for i in range(4)]
    noisy = ranking_audit(pairs, [0, 1, 1, 1], key=lambda p: p.blocks, resamples=50)
    assert noisy.seed_noise is not None and noisy.seed_noise.seeds_for_target == 6  # 0.02 * 0.655 / (0.00667 * 0.345) = 5.7
    printed = format_audit(AuditRecord(stage=noisy, dilation=None, config={}, search={}))
    assert ("a perfect ranking would reach tau 0.44 against these means; a ceiling of 0.60 takes 6 seeds per architecture at these variances "
                           "(2 measured)") in printed


def test_picks_are_stratified_and_always_hold_winner_baseline_and_worst():
    ranked = [[i, 20 - i] for i in range(20)]
    picks = pick_allocations(ranked, [13, 7], 6)
    assert len(picks) == 6 and {0, 13, 19} <= set(picks) and picks == sorted(picks)
    assert max(np.diff(picks)) <= 7  # spread over the ranking, not bunched at the top
    assert pick_allocations(ranked, [99, 99], 3) == [0, 9, 19]  # baseline outside the space
    assert pick_allocations(ranked[:4], [1, 19], 12) == [0, 1, 2, 3]


@pytest.fixture
def search_dir(tmp_path):
    """A stand-in finished search (result.json only) on tiny synthetic data; supernet AP falls with rank."""
    config = preset("tiny", family="resnet18", data={"kind": "synthetic", "num_images": 12, "image_size": 64, "seed": 0})
    space = config.space()
    allocations = space.allocations()
    table = [ScoredAllocation(b, 1, {"AP": 0.5 - 0.01 * i}) for i, b in enumerate(allocations)]
    found = space.architecture(allocations[0])
    SearchResult(
        architecture=found, baseline=Architecture.baseline("resnet18").replace(width=config.width),
        macs=SearchMacs(1, 1, [800, 1088], config.detector, {}), stage_search=StageSearch(allocations[0], table),
        dilation_search=DilationSearch("greedy", found.dilations, {"AP": 0.5}, k=3, joint=True, common_random=True),
        space=SearchedSpace(space.family, space.choices, space.budget, space.width, len(space)),
        data=SearchData(config.data, 12, 9, 3, ["disc"], data_fingerprint(load_dataset(config.data))),
        config=config, seeds={}, versions={},
    ).save(tmp_path / "result.json")
    return tmp_path, table


class StandIn:
    """Stand-alone 'training': AP from a rule on the blocks; stops the audit after ``budget`` runs."""

    def __init__(self, rule, budget=None):
        self.rule, self.budget, self.calls = rule, budget, []

    def __call__(self, job, run_dir, progress):
        if self.budget is not None and len(self.calls) >= self.budget:
            raise KeyboardInterrupt("killed")
        self.calls.append((tuple(job.architecture["blocks"]), job.seed))
        return {"AP": self.rule(job.architecture["blocks"]) + 0.001 * job.seed, "AP50": 0.0}


def test_audit_bookkeeping_with_a_stand_in_trainer(search_dir, tmp_path):
    directory, table = search_dir
    rank = {tuple(r.blocks): i for i, r in enumerate(table)}
    agree = StandIn(lambda b: 0.3 - 0.01 * rank[tuple(b)])
    config = AuditConfig(allocations=5, iterations=3, seeds=[0, 1], dilation=False, eval_images=4, resamples=200)
    record = run_audit(directory, config, cache=StandaloneCache(tmp_path / "cache"), trainer=agree, progress=False)
    stage = record.stage
    assert len(stage.pairs) == 5 and len(agree.calls) == 10  # 5 architectures x 2 seeds
    assert stage.kendall_tau.value == pytest.approx(1.0) and stage.spearman_rho.value == pytest.approx(1.0)
    assert stage.top3_overlap == 3 and stage.regret == pytest.approx(0.0)
    assert stage.pick == table[0].blocks and [p.supernet_rank for p in stage.pairs][0] == 1
    assert all(p.standalone_AP == pytest.approx(np.mean([r["AP"] for r in p.standalone_runs])) for p in stage.pairs)
    assert AuditRecord.load(directory) == record  # audit/audit.json round-trips
    assert stage.depth_response is None  # 5 allocations: fewer than the log model's 5 parameters + 2
    older = record.to_dict()  # an audit.json from before seeds_for_target gets it from its stored variances
    for key in ("seeds", "seeds_for_target", "target_tau"):
        del older["stage"]["seed_noise"][key]
    assert AuditRecord.from_dict(older) == record
    # two seeds: the architectures (0.01 AP apart) differ far beyond the seeds (0.001 apart)
    noise = stage.seed_noise
    assert noise is not None and noise.p < 1e-6 and noise.sd_within == pytest.approx(np.sqrt(0.001**2 / 2))
    assert noise.seeds == 2 and noise.seeds_for_target == 1
    assert noise.sd_within_eval is None and noise.eval_advice() is None  # a stand-in trainer leaves no checkpoints to evaluate again
    assert noise.seeds_advice() == "the 2 seeds measured already give a ceiling of 0.60 (1 would)"
    assert noise == variance_components([[r["AP"] for r in p.standalone_runs] for p in stage.pairs])

    # another audit of the same data reuses every cached run; a reversed truth gives tau = -1
    again = StandIn(lambda b: 0.0)
    run_audit(directory, config, cache=StandaloneCache(tmp_path / "cache"), trainer=again, progress=False)
    assert again.calls == []
    disagree = StandIn(lambda b: 0.01 * rank[tuple(b)])
    reversed_ = run_audit(directory, config, cache=StandaloneCache(tmp_path / "other"), trainer=disagree, progress=False).stage
    assert reversed_.kendall_tau.value == pytest.approx(-1.0) and reversed_.top3_overlap < 3
    assert reversed_.regret == pytest.approx(max(p.standalone_AP for p in reversed_.pairs) - reversed_.pairs[0].standalone_AP)


@pytest.mark.parametrize("kill_after", [1, 3])
def test_a_killed_audit_continues_to_the_identical_record(search_dir, tmp_path, kill_after):
    directory, table = search_dir
    rule = lambda b: 0.1 * b[0] - 0.03 * b[3]  # noqa: E731
    config = AuditConfig(allocations=4, iterations=3, seeds=[0], dilation=False, eval_images=4, resamples=200)
    reference = run_audit(directory, config, out_dir=tmp_path / "ref", cache=StandaloneCache(tmp_path / "c1"), trainer=StandIn(rule), progress=False)
    cache = StandaloneCache(tmp_path / "c2")
    with pytest.raises(KeyboardInterrupt):
        run_audit(directory, config, out_dir=tmp_path / "run", cache=cache, trainer=StandIn(rule, budget=kill_after), progress=False)
    resumed = StandIn(rule)
    run_audit(directory, config, out_dir=tmp_path / "run", cache=cache, trainer=resumed, progress=False)
    assert len(resumed.calls) == 4 - kill_after
    assert (tmp_path / "run" / "audit.json").read_text() == (tmp_path / "ref" / "audit.json").read_text().replace("c1", "c2")
    assert AuditRecord.load(tmp_path / "run" / "audit.json") is not None and reference.stage.pairs


def test_audit_refuses_changed_data_and_bad_settings(search_dir, tmp_path):
    directory, _ = search_dir
    result = json.loads((directory / "result.json").read_text())
    result["data"]["fingerprint"] = "0" * 64
    (directory / "result.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        run_audit(directory, AuditConfig(dilation=False), cache=StandaloneCache(tmp_path / "c"), trainer=StandIn(lambda b: 0), progress=False)
    with pytest.raises(ValueError, match="allocations: expected an int >= 3"):
        AuditConfig(allocations=2).validate()


def test_variance_components_against_sums_of_squares():
    """F and p are scipy's one-way ANOVA; the standard deviations follow from the textbook sums of squares."""
    rng = np.random.default_rng(3)
    groups = [list(rng.normal(mu, 1.5, size=3)) for mu in (20.0, 21.0, 24.0, 22.5)]
    out = variance_components(groups)
    k, s = len(groups), 3
    grand = np.mean(groups)
    ssb = s * sum((np.mean(g) - grand) ** 2 for g in groups)
    ssw = sum(((np.asarray(g) - np.mean(g)) ** 2).sum() for g in groups)
    msb, msw = ssb / (k - 1), ssw / (k * (s - 1))
    assert msb / msw == pytest.approx(out.F, rel=1e-12)
    assert out.p == pytest.approx(scipy.stats.f.sf(msb / msw, k - 1, k * (s - 1)), rel=1e-9)
    assert out.sd_within == pytest.approx(np.sqrt(msw), rel=1e-12)
    assert out.sd_between == pytest.approx(np.sqrt((msb - msw) / s), rel=1e-12)
    reliability = (msb - msw) / s / ((msb - msw) / s + msw / s)
    assert out.reliability == pytest.approx(reliability, rel=1e-12)
    # identical groups: no between-allocation variance at all, so no ranking can agree beyond chance
    flat = variance_components([[1.0, 2.0], [1.0, 2.0]])
    assert flat.sd_between == 0.0 and flat.reliability == 0.0 and flat.tau_ceiling == 0.0
    assert flat.seeds_for_target is None and "estimated at 0 (F <= 1), so no seed count" in flat.seeds_advice()
    # F = 1 exactly, up to rounding (MSB = MSW): no between variance either, not a seed count of 1e16
    assert variance_components([[0.1, 0.3], [0.2, 0.4], [0.3, 0.5]]).seeds_for_target is None
    with pytest.raises(ValueError, match=r"groups: expected >= 2 groups of >= 2 values, equal counts, got sizes \[2, 1\]"):
        variance_components([[1.0, 2.0], [1.0]])
    for target in (0.0, 0.999999999):
        with pytest.raises(ValueError, match=rf"target_tau: expected a Kendall tau in \(0, 0.99\], got {target}"):
            variance_components(groups, target_tau=target)


def test_sampling_variance_is_half_the_variance_of_a_two_seed_difference():
    from crnas.search.audit import sampling_variance

    rng = np.random.default_rng(0)
    two = rng.normal(20.0, 1.0, size=(2, 500))
    assert sampling_variance(two) == pytest.approx(np.var(two[0] - two[1]) / 2)
    assert sampling_variance(np.stack([two[0], two[0] + 3.0, two[0] - 1.0])) == pytest.approx(0.0)  # fixed gaps: no sampling part
    # independent draws of S seeds with sd 1.5 each: the estimate is their variance
    assert sampling_variance(rng.normal(0.0, 1.5, size=(4, 200_000))) == pytest.approx(1.5**2, rel=0.01)
    with pytest.raises(ValueError, match="curves: expected >= 2 seeds, got 1"):
        sampling_variance(two[:1])


def test_eval_sampling_evaluates_a_shared_run_once(tmp_path):
    """Runs already in ``evaluated`` are not loaded again (their checkpoints here are not even readable):
    the pooled sd comes from the recorded curves, the re-evaluation check from the recorded APs."""
    from crnas.search.audit import StandaloneCache, StandaloneJob, eval_sampling, sampling_variance
    from crnas.train import CHECKPOINT_NAME

    cache = StandaloneCache(tmp_path)
    arch = Architecture.baseline("resnet18").to_dict()
    jobs = [StandaloneJob(arch, seed, 2, "train", "eval", {}, {}) for seed in (0, 1, 2)]
    rng = np.random.default_rng(0)
    evaluated = {}
    for job in jobs:
        cache.put(job, {"AP": 0.25})
        (cache.run_dir(job) / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
        evaluated[job.key()] = (0.25 + 1e-3 * job.seed, rng.normal(0.25, 0.01, size=50))
    config = preset("tiny")
    measured = eval_sampling([jobs[:2], jobs[1:]], cache, config, list(range(10)), 3, resamples=50, evaluated=evaluated)
    curves = [evaluated[j.key()][1] for j in jobs]
    expected = (sampling_variance(np.stack(curves[:2])) + sampling_variance(np.stack(curves[1:]))) / 2
    assert measured is not None and measured.sd_within == pytest.approx(expected**0.5) and measured.max_reevaluation_diff == pytest.approx(2e-3)


def test_processes_sharing_a_cache_train_each_run_once(tmp_path):
    """Two workers on one cache (threads here; the lock is flock, as between processes) split the runs."""
    import threading
    import time

    from crnas.search.audit import StandaloneJob, run_jobs

    jobs = [StandaloneJob({"blocks": [i, 1, 1, 1], "dilations": [1]}, 0, 3, "t", "e", {}, {}) for i in range(6)]
    calls: list[tuple[int, str]] = []

    def trainer(name):
        def train(job, run_dir, progress):
            calls.append((job.architecture["blocks"][0], name))
            time.sleep(0.05)
            return {"AP": 0.1 * job.architecture["blocks"][0]}

        return train

    cache = StandaloneCache(tmp_path / "cache")
    workers = [threading.Thread(target=run_jobs, args=(jobs, cache, trainer(n)), kwargs={"progress": False}) for n in "ab"]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(i for i, _ in calls) == list(range(6))  # every run trained exactly once
    assert {n for _, n in calls} == {"a", "b"}  # by both workers
    assert [cache.get(j)["AP"] for j in jobs] == pytest.approx([0.1 * i for i in range(6)])
    # every worker returns every job's metrics in order, the other worker's runs included; nothing is retrained
    assert [m["AP"] for m in run_jobs(jobs[::-1], cache, trainer("c"), progress=False)] == pytest.approx([0.1 * i for i in range(5, -1, -1)])
    assert len(calls) == 6


def test_tau_ceiling_is_what_a_perfect_ranker_reaches_against_noisy_means():
    """Simulated architectures with known effects: Kendall tau between the true effects and their 2-seed
    means matches the ceiling estimated from the noisy runs alone (and is far below 1)."""
    rng = np.random.default_rng(0)
    for sd_between, sd_within in ((1.0, 1.0), (1.0, 2.5), (2.0, 0.5)):
        truth = rng.normal(0.0, sd_between, size=3000)
        runs = truth[:, None] + rng.normal(0.0, sd_within, size=(3000, 2))
        out = variance_components(runs.tolist())
        reached = scipy.stats.kendalltau(truth, runs.mean(1)).statistic
        assert out.tau_ceiling == pytest.approx(reached, abs=0.03)
        expected = 2 / np.pi * np.arcsin(np.sqrt(sd_between**2 / (sd_between**2 + sd_within**2 / 2)))
        assert out.tau_ceiling == pytest.approx(expected, abs=0.03)


def test_seeds_for_target_reach_the_target_ceiling_in_simulation():
    """The advised seed count: means over that many seeds of simulated architectures reach the target
    tau against the true effects, three seeds fewer do not (the estimate's own noise aside)."""
    rng = np.random.default_rng(1)
    sd_between, sd_within = 1.0, 2.5
    truth = rng.normal(0.0, sd_between, size=4000)
    out = variance_components((truth[:, None] + rng.normal(0.0, sd_within, size=(4000, 2))).tolist(), target_tau=0.6)
    exact = 2.5**2 * np.sin(0.3 * np.pi) ** 2 / np.cos(0.3 * np.pi) ** 2  # sigma_w^2 R / (sigma_b^2 (1 - R)) = 11.8
    assert out.seeds_for_target in (int(np.ceil(exact)) - 1, int(np.ceil(exact)), int(np.ceil(exact)) + 1)
    tau = lambda seeds: scipy.stats.kendalltau(truth, (truth[:, None] + rng.normal(0.0, sd_within, size=(4000, seeds))).mean(1)).statistic  # noqa: E731
    assert tau(int(np.ceil(exact))) >= 0.6 - 0.02 and tau(int(np.ceil(exact)) - 3) < 0.6


def test_depth_fit_recovers_exact_models_and_its_r2_is_the_squared_correlation():
    from crnas import StageSpace
    from crnas.search.audit import depth_fit

    blocks = StageSpace.paper("resnet50").allocations()
    d = np.array(blocks, dtype=float)
    linear = depth_fit(blocks, list(20 + d[:, :3] @ [0.8, 0.6, 0.2]))
    assert linear is not None and linear.linear.coefficients == pytest.approx([0.8, 0.6, 0.2]) and linear.linear.r2 == pytest.approx(1)
    assert linear.last_stage_is_reference and linear.log.r2 < 1 and linear.shape == "linear"
    logs = depth_fit(blocks, list(30 + np.log(d) @ [1.7, 1.5, 1.3, 0.8]))
    assert logs is not None and logs.log.coefficients == pytest.approx([1.7, 1.5, 1.3, 0.8]) and logs.log.r2 == pytest.approx(1)
    assert logs.shape == "log"
    noisy = 25 + d[:, :3] @ [0.8, 0.6, 0.2] + np.random.default_rng(0).normal(0, 2, len(d))
    fit = depth_fit(blocks, list(noisy))
    assert fit is not None
    predicted = 25 + d[:, :3] @ fit.linear.coefficients  # R2 of least squares with an intercept: squared r of fit and data
    assert fit.linear.r2 == pytest.approx(scipy.stats.pearsonr(predicted, noisy).statistic ** 2)
    assert depth_fit(blocks[:6], list(range(6))) is None and depth_fit(blocks, [1.0] * len(blocks)) is None
    c2_fixed = [b for b in blocks if b[0] == 2]
    assert depth_fit(c2_fixed, list(range(len(c2_fixed)))) is None
    free = depth_fit([[1, 2, 3, 4], [2, 2, 3, 4], [1, 3, 3, 4], [1, 2, 4, 4], [1, 2, 3, 5], [2, 3, 4, 5], [3, 1, 2, 6]],
                     [1.0, 2.0, 1.5, 1.2, 1.1, 3.0, 2.0])
    assert free is not None and not free.last_stage_is_reference and len(free.linear.coefficients) == 4


def test_a_stage_audit_fits_both_sides_on_the_depths_and_prints_them():
    """depth_response: the stand-alone means and the supernet APs (fractions) fitted in percent on the same
    allocations; audit.json round-trips it (an older one without it loads as None); the printed audit
    gives both sides' per-block AP and their better-fitting shape."""
    from crnas import StageSpace
    from crnas.cli.audit import format_audit
    from crnas.search.audit import Pair, depth_response, ranking_audit

    blocks = StageSpace.paper("resnet50").allocations()[::10]
    d = np.array(blocks, dtype=float)
    alone = (20 + d[:, :3] @ [0.8, 0.6, 0.2]) / 100
    supernet = (30 + np.log(d) @ [1.7, 1.5, 1.3, 0.8]) / 100
    pairs = [Pair(b, [1] * 16, float(s), float(a), [{"AP": float(a)}], i + 1) for i, (b, s, a) in enumerate(zip(blocks, supernet, alone))]
    stage = ranking_audit(pairs, blocks[0], key=lambda p: p.blocks, resamples=50)
    response = depth_response(pairs)
    assert response is not None and response.standalone.linear.coefficients == pytest.approx([0.8, 0.6, 0.2])
    assert response.supernet.log.coefficients == pytest.approx([1.7, 1.5, 1.3, 0.8])
    assert (response.standalone.shape, response.supernet.shape) == ("linear", "log")
    assert depth_response(pairs[:6]) is None
    stage.depth_response = response
    record = AuditRecord(stage=stage, dilation=None, config={}, search={})
    assert AuditRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    older = record.to_dict()
    del older["stage"]["depth_response"]
    assert AuditRecord.from_dict(older).stage.depth_response is None
    line = format_audit(record).splitlines()[-1]
    s = response.supernet
    assert line == (
        "  depth response (docs/audit.md#depth-response): AP per block moved from C5 into C2/C3/C4: stand-alone +0.80/+0.60/+0.20 "
        f"(R2 linear 1.00, log {response.standalone.log.r2:.2f}: linear); supernet "
        f"{'/'.join(f'{c:+.2f}' for c in s.linear.coefficients)} (R2 linear {s.linear.r2:.2f}, log 1.00: log)"
    )


def test_the_depth_baseline_ranks_by_a_leave_one_out_fit_and_the_supernet_is_compared_with_it():
    """depth_baseline: each allocation predicted by the linear depth fit on the others (checked against the
    hat-matrix closed form of leave-one-out residuals), τ of the predictions by scipy, the supernet's τ
    minus it; audit.json round-trips it (older ones load None) and the printed audit gives the verdict."""
    from crnas import StageSpace
    from crnas.cli.audit import format_audit
    from crnas.search.audit import Pair, depth_baseline, loo_depth_predictions, ranking_audit

    blocks = StageSpace.paper("resnet50").allocations()[::10]
    d = np.array(blocks, dtype=float)
    alone = (20 + d[:, :3] @ [0.8, 0.6, 0.2] + np.random.default_rng(0).normal(0, 0.5, len(d))) / 100
    design = np.column_stack([np.ones(len(d)), d[:, :3]])
    hat = design @ np.linalg.pinv(design)
    residual = alone - hat @ alone
    predicted = loo_depth_predictions(blocks, alone)
    assert predicted == pytest.approx(alone - residual / (1 - np.diag(hat)))
    assert loo_depth_predictions(blocks, 2 * alone + 1) == pytest.approx(2 * np.array(predicted) + 1)  # the fit is affine-equivariant
    assert loo_depth_predictions(blocks[:5], alone[:5]) is None  # 4 left to fit 4 parameters
    assert loo_depth_predictions([b for b in blocks if b[0] == 1], alone[: sum(b[0] == 1 for b in blocks)]) is None  # C2 never varies
    supernet = (30 + np.log(d) @ [1.7, 1.5, 1.3, 0.8]) / 100
    pairs = [Pair(b, [1] * 16, float(s), float(a), [{"AP": float(a)}], i + 1) for i, (b, s, a) in enumerate(zip(blocks, supernet, alone))]
    baseline = depth_baseline(pairs, resamples=50)
    assert baseline is not None and depth_baseline(pairs[:5]) is None
    tau = scipy.stats.kendalltau(predicted, alone).statistic
    assert baseline.kendall_tau.value == pytest.approx(tau)
    assert baseline.supernet_minus_baseline.value == pytest.approx(scipy.stats.kendalltau(supernet, alone).statistic - tau)
    stage = ranking_audit(pairs, blocks[0], key=lambda p: p.blocks, resamples=50)
    stage.depth_baseline = baseline
    record = AuditRecord(stage=stage, dilation=None, config={}, search={})
    assert AuditRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    older = record.to_dict()
    del older["stage"]["depth_baseline"]
    assert AuditRecord.from_dict(older).stage.depth_baseline is None
    line = format_audit(record).splitlines()[-1]
    lo, hi = baseline.supernet_minus_baseline.ci
    verdict = "WORSE than the stage depths fitted on the other 15 stand-alone results" if hi < 0 else "cannot be told apart"
    assert line.startswith(f"  depth baseline (docs/audit.md#depth-baseline): a linear fit on the stage depths, leaving each allocation out, ranks "
                           f"the stand-alone APs at tau {tau:+.3f}") and verdict in line
