"""scripts/allocation_spread.py, scripts/search_quality.py and scripts/fallback_check.py end to end at
the tiny preset: one ground truth checks a search's ranking, the retraining reuses the ground truth's
stand-alone runs, and the fallback's final check replays from a search's checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ["--preset", "tiny", "--family", "resnet18", "--iterations", "2", "--train-images", "8", "--eval-images", "6", "--no-progress"]


def run(tmp_path: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    """``python cmd`` with the stand-alone cache under ``tmp_path``; asserts it succeeded (``ok``) or failed with exit status 1."""
    env = {**os.environ, "CRNAS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == (0 if ok else 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scripts")
    search = tmp / "search"
    run(tmp, "-m", "crnas", "search", "--synthetic", "24", "--family", "resnet18", "--preset", "tiny", "--stage-iterations", "3",
        "--op-iterations", "3", "--no-progress", "--out", str(search))
    spread = tmp / "spread.json"
    run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "1", "--out", str(spread),
        "--searches", str(search))
    return tmp, search, json.loads(spread.read_text())


def test_allocation_spread_ranks_a_search_against_its_ground_truth(searched):
    _, search, spread = searched
    result = json.loads((search / "result.json").read_text())
    rows = {tuple(r["blocks"]): r for r in spread["allocations"]}
    assert list(rows)[0] == (2, 2, 2, 2)  # the baseline first
    assert tuple(result["stage_search"]["best"]) in rows and all(len(r["AP"]) == 2 for r in rows.values())
    assert result["stage_search"]["best"] == result["stage_search"]["allocations"][0]["blocks"]  # no stage fallback by default
    assert not result["stage_search"]["fallback"] and not result["config"]["stage_fallback"]
    check = spread["searches"][str(search)]
    supernet = {tuple(a["blocks"]): a["AP"] for a in result["stage_search"]["allocations"]}
    truth = [r["mean"] for r in rows.values()]
    tau = scipy.stats.kendalltau([supernet[b] for b in rows], truth).statistic
    assert check["kendall_tau"]["value"] == pytest.approx(tau)
    assert check["pick"] == result["stage_search"]["best"] and check["baseline_AP"] == rows[(2, 2, 2, 2)]["mean"]
    assert check["depth_baseline"] is None and spread["depth_baseline_from_subsets"] is None  # 3 allocations: too few to fit


def test_the_depth_baseline_from_subsets_predicts_the_allocations_left_out():
    """allocation_spread.py's depth baseline as an audit of 12 would fit it: exact on AP linear in the
    depths (τ 1 on every draw), reproducible by its seed, and None below 16 allocations."""
    import importlib.util

    from crnas import StageSpace

    spec = importlib.util.spec_from_file_location("allocation_spread", ROOT / "scripts" / "allocation_spread.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    blocks = StageSpace.paper("resnet50").allocations()[::5]
    slopes = [2**0.5, 3**0.5 / 2, np.pi / 10]  # no two allocations tie
    rows = [{"blocks": b, "mean": 20 + float(np.dot(slopes, b[:3]))} for b in blocks]
    exact = script.baseline_from_subsets(rows, draws=20)
    assert exact["kendall_tau_mean"] == pytest.approx(1.0) and exact["predicted"] == len(rows) - 12
    rng = np.random.default_rng(1)
    noisy = [{**r, "mean": r["mean"] + rng.normal(0, 2)} for r in rows]
    assert script.baseline_from_subsets(noisy, draws=20) == script.baseline_from_subsets(noisy, draws=20)
    assert script.baseline_from_subsets(noisy, draws=20)["kendall_tau_mean"] < 1
    assert script.baseline_from_subsets(rows[:15]) is None


@pytest.fixture(scope="module")
def retrained(searched):
    tmp, search, _ = searched
    out = tmp / "quality.json"
    proc = run(tmp, str(ROOT / "scripts" / "search_quality.py"), str(search), *TRUTH[4:], "--seeds", "0", "1",
               "--spread", str(tmp / "spread.json"), "--out", str(out))
    return proc, out


def test_search_quality_reuses_the_ground_truth_and_writes_the_comparison(searched, retrained):
    tmp, search, spread = searched
    proc, out = retrained
    assert "runs to train" in proc.stdout and "| found |" in proc.stdout
    quality = json.loads(out.read_text())
    result = json.loads((search / "result.json").read_text())
    truth = {tuple(r["blocks"]): r["AP"] for r in spread["allocations"]}
    assert quality["baseline"]["AP"] == truth[(2, 2, 2, 2)]  # the same cached stand-alone runs
    assert quality["stage_only"]["AP"] == truth[tuple(result["stage_search"]["best"])]
    assert quality["found"]["dilations"] == result["architecture"]["dilations"]
    final = result["dilation_search"]["final"]  # the pick the final check set aside is retrained too
    if final["fallback"]:
        assert quality["dilation_pick"]["dilations"] == final["confidence"]["winner"] != quality["found"]["dilations"]
        assert len(quality["dilation_pick"]["AP"]) == 2 and "dilation_pick_vs_baseline" in quality
    else:
        assert "dilation_pick" not in quality
    assert quality["stage_only"]["dilations"] == [1] * sum(result["architecture"]["blocks"])
    assert (quality["baseline"]["macs"], quality["found"]["macs"]) == (result["macs"]["baseline"], result["macs"]["found"])
    assert quality["stage_only"]["macs"] == quality["found"]["macs"]  # dilation keeps the MACs
    gain = quality["found_vs_baseline"]["gain"]
    assert gain == pytest.approx(sum(quality["found"]["AP"]) / 2 - sum(quality["baseline"]["AP"]) / 2)
    welch = scipy.stats.ttest_ind(quality["found"]["AP"], quality["baseline"]["AP"], equal_var=False)
    expected = None if np.isnan(welch.statistic) else pytest.approx(welch.statistic)
    assert quality["found_vs_baseline"]["welch_t"] == expected
    paired = scipy.stats.ttest_rel(quality["found"]["AP"], quality["baseline"]["AP"])  # seed by seed: the same data order
    assert quality["found_vs_baseline"]["paired_t"] == (None if np.isnan(paired.statistic) else pytest.approx(paired.statistic))
    assert quality["found_vs_baseline"]["seeds_won"] == sum(f > b for f, b in zip(quality["found"]["AP"], quality["baseline"]["AP"]))
    assert quality["audit"]["kendall_tau"] == spread["searches"][str(search)]["kendall_tau"] and not quality["audit"]["partial"]
    assert "left_out" not in quality and not spread["cached_only"] and "left_out" not in spread  # only a --cached-only report has them
    assert quality["search"]["config"]["preset"] == "tiny" and quality["retraining"]["seeds"] == [0, 1]


def test_search_quality_retrains_the_models_a_summary_records(searched, retrained):
    """A summary stands in for its search (whose directory may be gone): the same models rebuilt from its
    configuration, the same cached runs, its audit carried over; --models picks some, the baseline always."""
    tmp, _, _ = searched
    first = json.loads(retrained[1].read_text())
    out = tmp / "again.json"
    proc = run(tmp, str(ROOT / "scripts" / "search_quality.py"), str(retrained[1]), *TRUTH[4:], "--seeds", "1", "0",
               "--models", "found", "baseline", "--out", str(out))
    assert "2 models x 2 seeds" in proc.stdout and "0 runs to train" in proc.stdout
    again = json.loads(out.read_text())
    assert [k for k in again if k in ("baseline", "stage_only", "found", "dilation_pick")] == ["baseline", "found"]
    for name in ("baseline", "found"):
        assert {k: again[name][k] for k in ("blocks", "dilations", "macs")} == {k: first[name][k] for k in ("blocks", "dilations", "macs")}
        assert again[name]["AP"] == first[name]["AP"][::-1]  # seeds 1, 0: the same cached runs
    assert again["audit"] == first["audit"] and again["search"] == {**first["search"], "via": str(retrained[1])}
    bad = run(tmp, str(ROOT / "scripts" / "search_quality.py"), str(retrained[1]), "--models", "found", "--out", str(tmp / "bad.json"), ok=False)
    assert bad.stderr.strip() == "--models: expected the baseline among them (every gain is over it), got found"
    edited = json.loads(retrained[1].read_text())
    edited["found"]["macs"] += 1
    (tmp / "edited.json").write_text(json.dumps(edited))
    bad = run(tmp, str(ROOT / "scripts" / "search_quality.py"), str(tmp / "edited.json"), "--out", str(tmp / "bad.json"), ok=False)
    assert bad.stderr.startswith(f"search: expected the MACs {tmp / 'edited.json'} records")


def test_allocation_spread_without_picks_trains_nothing_new(searched):
    tmp, search, spread = searched
    out = tmp / "nopicks.json"
    proc = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "1", "--out", str(out),
               "--searches", str(search), "--no-picks", "--archval-noise")
    assert "0 runs to train" in proc.stdout
    check = json.loads(out.read_text())["searches"][str(search)]
    result = json.loads((search / "result.json").read_text())
    table = [tuple(a["blocks"]) for a in result["stage_search"]["allocations"]]
    truth = [tuple(r["blocks"]) for r in spread["allocations"][:3]]
    assert tuple(check["pick"]) == min(truth, key=table.index) and check["pick_among"] == "ground truth allocations"
    # --archval-noise: the whole table's split-half reliability, and tau over the 3 under archval resampling
    halves, resampled = check["archval_noise"]["split_half"], check["archval_noise"]["kendall_tau_archval_resampled"]
    assert (halves["candidates"], halves["images"]) == (len(table), result["data"]["archval"])
    assert halves["reliability"] == pytest.approx(2 * halves["r"] / (1 + halves["r"])) and -1 <= halves["r"] <= 1
    assert halves == result["stage_search"]["archval"]  # the halving the search itself recorded
    assert resampled["allocations"] == 3 and resampled["resamples"] == result["config"]["bootstrap_resamples"]
    assert resampled["interval"][0] <= resampled["interval"][1]
    assert "  archval: split-half r" in proc.stdout


def test_allocation_spread_checks_a_search_still_in_its_later_phases(searched):
    """A search with its stage table but no result.json yet is ranked as the finished one (and two
    searches compared pairwise); an incomplete stage table is one clear error."""
    import shutil

    tmp, search, spread = searched
    running = tmp / "running"
    running.mkdir()
    for name in ("config.json", "stage_search.jsonl"):
        shutil.copy(search / name, running / name)
    out = tmp / "running.json"
    proc = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "1", "--out", str(out),
               "--searches", str(search), str(running))
    checked = json.loads(out.read_text())
    check, finished = checked["searches"][str(running)], spread["searches"][str(search)]
    assert (check["kendall_tau"], check["pick"], check["regret"]) == (finished["kendall_tau"], finished["pick"], finished["regret"])
    # the two rank alike: their paired difference in tau is 0 over every allocation trained (the pick's too)
    difference, n = checked["tau_differences"][f"{search} - {running}"], len(checked["allocations"])
    assert difference == {"allocations": n, "kendall_tau": {"value": 0.0, "ci": [0.0, 0.0]}} and check["split"] is None
    assert f"tau of {search} - {running}: +0.00 [+0.00, +0.00] over {n} allocations (paired bootstrap)" in proc.stdout
    proc = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "1", "--out", str(out),
               "--searches", str(running), "--no-picks", "--archval-noise", ok=False)  # its table, not its detections
    assert proc.stderr.strip().splitlines()[-1].startswith(f"--archval-noise: expected the archval detections of every allocation in {running}")
    lines = (running / "stage_search.jsonl").read_text().splitlines()
    (running / "stage_search.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    proc = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--out", str(out),
               "--searches", str(running), ok=False)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"searches: {running}'s stage search is not complete ({len(lines) - 1} of {len(lines)} allocations scored)"
    )


def test_allocation_spread_cached_only_reports_a_partial_ground_truth(searched):
    """A ground truth still being trained: --cached-only trains nothing, reports over the allocations
    whose every seed is cached and names the ones left out; --compare ranks it against another one;
    --eval-noise re-evaluates the cached runs."""
    tmp, search, spread = searched
    out = tmp / "partial.json"
    proc = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "5", "--seeds", "0", "1", "--out", str(out),
               "--searches", str(search), "--no-picks", "--cached-only", "--compare", str(tmp / "spread.json"), "--eval-noise")
    partial = json.loads(out.read_text())
    cached = {tuple(r["blocks"]): r for r in spread["allocations"]}
    assert "0 runs to train" in proc.stdout and f"{len(partial['left_out'])} of 5 groups left out" in proc.stdout and partial["cached_only"]
    assert len(partial["allocations"]) + len(partial["left_out"]) == 5 and partial["left_out"]
    assert all(cached[tuple(r["blocks"])] == r for r in partial["allocations"])  # train_loss_end too, read from the same checkpoints
    assert not any(tuple(b) in cached for b in partial["left_out"]) and partial["runs_trained_this_run"] == 0
    assert all(isinstance(x, float) for r in partial["allocations"] for x in r["train_loss_end"])  # the cached runs' checkpoints
    vs_loss = partial["seed_noise_vs_train_loss"]
    if vs_loss is not None:
        loss = [x for r in partial["allocations"] for x in r["train_loss_end"]]
        assert vs_loss["raw_r"] == pytest.approx(scipy.stats.pearsonr(loss, [a for r in partial["allocations"] for a in r["AP"]]).statistic)
    sampling = partial["eval_noise"]  # every run evaluated again from its checkpoint gives its cached AP
    assert sampling["runs"] == 2 * len(partial["allocations"]) and sampling["max_reevaluation_diff"] < 1e-9 and sampling["sd_within_eval"] >= 0
    against = partial["compared"][str(tmp / "spread.json")]  # the same runs' means: ranked alike
    assert against["allocations"] == len(partial["allocations"]) and against["kendall_tau"]["value"] == pytest.approx(1.0)


def test_allocation_spread_extends_a_recorded_ground_truth_without_its_cache(searched):
    """--extend: a ground truth's recorded runs stand in for a lost cache; only the new allocation trains,
    the recorded rows (and the search's pick among them) stay as they were; a summary of other settings
    is one clear error."""
    tmp, search, spread = searched
    fresh = tmp / "fresh"  # another stand-alone cache: none of the recorded runs is in it
    out = fresh / "extended.json"
    proc = run(fresh, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "5", "--seeds", "0", "1", "--out", str(out),
               "--searches", str(search), "--extend", str(tmp / "spread.json"))
    extended = json.loads(out.read_text())
    rows = {tuple(r["blocks"]): r for r in extended["allocations"]}
    recorded = {tuple(r["blocks"]): r for r in spread["allocations"]}
    new = [b for b in rows if b not in recorded]
    assert new and f"({len(recorded)} recorded in {tmp / 'spread.json'}, not trained) x 2 seeds" in proc.stdout  # the 3 + the pick, kept
    assert f"{2 * len(new)} runs to train" in proc.stdout and extended["runs_trained_this_run"] == 2 * len(new)
    assert all(rows[b] == r for b, r in recorded.items())
    assert extended["extended_from"] == {"file": str(tmp / "spread.json"), "allocations": len(recorded)}
    result = json.loads((search / "result.json").read_text())
    supernet = {tuple(a["blocks"]): a["AP"] for a in result["stage_search"]["allocations"]}
    tau = scipy.stats.kendalltau([supernet[b] for b in rows], [r["mean"] for r in rows.values()]).statistic
    assert extended["searches"][str(search)]["kendall_tau"]["value"] == pytest.approx(tau)
    proc = run(fresh, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "4", "--seeds", "0", "--out", str(out),
               "--extend", str(tmp / "spread.json"), ok=False)
    assert proc.stderr.strip().splitlines()[-1] == f"--extend: expected a ground truth with seeds [0], got [0, 1] in {tmp / 'spread.json'}"
    proc = run(fresh, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--out", str(out), "--extend", str(search / "result.json"), ok=False)
    assert proc.stderr.strip().splitlines()[-1].startswith("--extend: expected a JSON summary of this script (with its allocations), got")


def test_stage_finetune_ranking_ranks_the_ground_truth_after_fine_tuning(searched):
    """Each ground-truth allocation fine-tuned from the stage supernet and scored: tau against the same
    means as allocation_spread.py's check, before (the supernet's own scores) and after."""
    tmp, search, spread = searched
    out = tmp / "stage-finetune.json"
    proc = run(tmp, str(ROOT / "scripts" / "stage_finetune_ranking.py"), str(search), "--spread", str(tmp / "spread.json"),
               "--finetune", "2", "--work", str(tmp / "ft"), "--out", str(out))
    summary = json.loads(out.read_text())
    before, after = summary["rankings"]
    assert (before["finetune_iterations"], after["finetune_iterations"]) == (0, 2) and "after 2 fine-tuning iterations" in proc.stdout
    assert before["kendall_tau"]["value"] == spread["searches"][str(search)]["kendall_tau"]["value"]
    truth = [r["mean"] for r in spread["allocations"]]
    tuned = [after["AP"][str(r["blocks"])] for r in spread["allocations"]]
    tau = scipy.stats.kendalltau(tuned, truth).statistic
    assert after["kendall_tau"]["value"] == (None if np.isnan(tau) else pytest.approx(tau))
    assert len(list((tmp / "ft" / "2").iterdir())) == len(spread["allocations"])  # one resumable fine-tune per allocation


def test_fallback_check_replays_the_searchs_final_check_and_judges_it_by_an_audit(searched):
    """A search without a recorded final check (an older crnas) gets the same check computed from its
    operation supernet, fine-tuning included; an audit's stand-alone AP of the pick and all-dilation-1
    judges each decision."""
    import shutil

    from crnas.search.audit import AuditRecord, Estimate, Pair, RankingAudit

    tmp, search, _ = searched
    older = tmp / "older"
    shutil.copytree(search, older)
    shutil.rmtree(older / "final_check")
    result = json.loads((search / "result.json").read_text())
    old = json.loads(json.dumps(result))
    del old["dilation_search"]["final"], old["stage_search"]["fallback"], old["config"]["finetune_check"]
    (older / "result.json").write_text(json.dumps(old))
    final, blocks = result["dilation_search"]["final"], result["stage_search"]["best"]
    pick, ones = final["confidence"]["winner"], [1] * sum(blocks)
    assert pick != ones and result["config"]["finetune_check"] == 3  # (this tiny search's pick, fixed by its seeds)
    pairs = [Pair(blocks, pick, 0.1, 10.0 / 100, [], 1), Pair(blocks, ones, 0.05, 12.5 / 100, [], 2)]
    ranking = RankingAudit(Estimate(-1.0, None), Estimate(-1.0, None), 1, 0.025, pick, pairs)
    winner, baseline = result["stage_search"]["allocations"][0]["blocks"], result["baseline"]["blocks"]
    stage_pairs = [Pair(b, [1] * sum(b), 0.1, ap, [], i + 1) for i, (b, ap) in enumerate([(winner, 0.20), (baseline, 0.15)])]
    stage = RankingAudit(Estimate(1.0, None), Estimate(1.0, None), 1, 0.0, blocks, stage_pairs)
    (older / "audit").mkdir(exist_ok=True)
    AuditRecord(stage, ranking, {}, {}).save(older / "audit" / "audit.json")
    out = tmp / "fallback.json"
    proc = run(tmp, str(ROOT / "scripts" / "fallback_check.py"), str(search), str(older), "--finetune", "3", "--out", str(out))
    recorded, replayed = json.loads(out.read_text())["rows"]
    assert [c["finetune_iterations"] for c in recorded["checks"]] == [c["finetune_iterations"] for c in replayed["checks"]] == [0, 3]
    assert [c["recorded_in_search"] for c in recorded["checks"]] == [False, True]  # the search's own check is the fine-tuned one
    assert not any(c["recorded_in_search"] for c in replayed["checks"])
    for mine, again in zip(recorded["checks"], replayed["checks"]):
        for key in ("pick", "AP", "lead", "fallback"):
            assert again[key] == mine[key], key  # the same checks, made again from the checkpoint
    fine = recorded["checks"][1]
    assert fine["fallback"] == final["fallback"] and fine["lead"]["value"] == pytest.approx(100 * final["confidence"]["lead"]["value"])
    assert fine["AP"]["pick"] == pytest.approx(100 * final["finetuned"][0]["metrics"]["AP"])
    plain = {tuple(c["dilations"]): 100 * c["metrics"]["AP"] for c in final["candidates"]}
    assert recorded["checks"][0]["AP"] == pytest.approx({"pick": plain[tuple(pick)], "all_1": plain[tuple(ones)]})
    assert "standalone_AP" not in recorded and not (older / "final_check").exists()  # no audit there; nothing written
    assert (replayed["standalone_AP"]["pick"], replayed["standalone_AP"]["all_1"]) == pytest.approx((10.0, 12.5))
    for c in replayed["checks"]:  # all-dilation-1 trained better here
        assert c["decision_right"] == c["fallback"] and c["gain_over_the_pick"] == pytest.approx(2.5 if c["fallback"] else 0.0)
    assert f"{older} (after 3 fine-tuning iterations each): pick" in proc.stdout
    # the stage search's decision, from its recorded confidence, judged by the audit's stand-alone AP
    for row in (recorded, replayed):
        lead = result["stage_search"]["confidence"]["lead"]
        assert row["stage"]["winner"] == winner and row["stage"]["lead"]["value"] == pytest.approx(100 * lead["value"])
        assert row["stage"]["fallback"] == (winner != baseline and lead["ci"][0] <= 0)  # what --stage-fallback would decide
    assert replayed["stage"]["standalone_AP"]["winner"] == pytest.approx(20.0) and "standalone_AP" not in recorded["stage"]
    assert winner != baseline and replayed["stage"]["decision_right"] == (not replayed["stage"]["fallback"])  # the winner trained better


def test_allocation_spread_checks_a_depth_model_fitted_elsewhere_and_trains_its_pick(searched):
    """--depth-model: the linear depth fit of another ground truth's means ranks this one (τ by scipy) and
    picks the space's best by the fit, which --also trains here; bad files and allocations get one line."""
    from crnas.search import preset

    tmp, search, _ = searched
    space = preset("tiny", family="resnet18").space().allocations()
    slopes = [1.3, 0.6, 0.2]  # C2 first: the fit picks the allocation with the most early blocks
    other = tmp / "other.json"
    other.write_text(json.dumps({"allocations": [{"blocks": b, "mean": 20 + float(np.dot(slopes, b[:3])) + 0.01 * i} for i, b in enumerate(space)]}))
    pick = max(space, key=lambda b: float(np.dot(slopes, b[:3])))
    out = tmp / "depth-model.json"
    run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "--out", str(out),
        "--searches", str(search), "--no-picks", "--depth-model", str(other), "--also", *map(str, pick))
    checked = json.loads(out.read_text())
    truth = {tuple(r["blocks"]): r["mean"] for r in checked["allocations"]}
    model = checked["depth_model"]
    assert pick in [r["blocks"] for r in checked["allocations"]] and model["pick"] == pick and model["pick_AP"] == truth[tuple(pick)]
    fitted = {b: float(np.dot(model["linear"]["coefficients"], b[:3])) for b in truth}
    assert model["kendall_tau"]["value"] == pytest.approx(scipy.stats.kendalltau(list(fitted.values()), list(truth.values())).statistic)
    assert list(model["minus_searches"]) == [str(search)] and model["ranked"] == len(truth)
    bad = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--out", str(out), "--also", "9", "9", "9", "9", ok=False)
    assert bad.stderr.strip() == "--also: expected an allocation of the tiny preset's resnet18 space, got [9, 9, 9, 9]"
    bad = run(tmp, str(ROOT / "scripts" / "allocation_spread.py"), *TRUTH, "--allocations", "3", "--seeds", "0", "--out", str(out),
              "--depth-model", str(tmp / "none.json"), ok=False)
    assert bad.stderr.strip().endswith("(no such file)")
