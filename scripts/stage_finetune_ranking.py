"""Does a short fine-tune from the stage supernet's weights rank allocations the way training does?

The final check (docs/design.md#fallback) showed that a few hundred iterations on one fixed path, from
the operation supernet's weights, remove the supernet's bias between dilation choices. This asks the
same at the stage level: each allocation of a ground truth (an ``allocation_spread.py`` JSON) is
fine-tuned N iterations on its own from the search's stage-supernet checkpoint (archtrain, the
search's batch, learning rate per image and seed; ``crnas.search.driver.finetune_path``) and scored on
archval as the stage search scores it; Kendall τ and Spearman ρ of those scores against the ground
truth's means (bootstrap CIs, ``crnas.search.audit.rank_correlation``) stand beside the supernet's own.
The ground truth's τ ceiling (docs/audit.md#tau-ceiling) says how much any ranking can show. Fine-tunes
are checkpointed under ``--work`` (default ``SEARCH/stage_finetune``): a killed run resumes; nothing
else in the search directory changes.

    python scripts/stage_finetune_ranking.py runs/quality --spread spread-2000.json --finetune 100 400 \\
        --out docs/results/stage-finetune.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search", type=Path, help="a search directory (result.json and stage_supernet/last.pt)")
    ap.add_argument("--spread", type=Path, required=True, help="the ground truth: an allocation_spread.py JSON on data of the search's kind")
    ap.add_argument("--finetune", type=int, nargs="+", required=True, help="fine-tuning iterations per allocation (one ranking each)")
    ap.add_argument("--work", type=Path, help="fine-tuning checkpoints (default SEARCH/stage_finetune)")
    ap.add_argument("--out", type=Path, required=True, help="JSON summary")
    args = ap.parse_args()
    if any(n < 1 for n in args.finetune):
        raise SystemExit(f"--finetune: expected iteration counts >= 1, got {args.finetune}")

    import torch
    from allocation_spread import shown
    from crnas.data import split
    from crnas.data.spec import load_dataset
    from crnas.search.audit import rank_correlation
    from crnas.search.driver import STAGE_SUPERNET, finetune_path, trained_supernet
    from crnas.search.result import load_result
    from crnas.search.scoring import Scorer
    from crnas.search.standalone import data_fingerprint

    result = load_result(args.search)
    config = result.config
    dataset = load_dataset(config.data)
    if data_fingerprint(dataset) != result.data.fingerprint:
        raise SystemExit(f"stage_finetune_ranking: {args.search}: the data differs from the searched data (fingerprint mismatch)")
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    spread = json.loads(args.spread.read_text())
    truth = {tuple(r["blocks"]): r["mean"] for r in spread["allocations"]}
    supernet = {tuple(r.blocks): 100 * r.metrics["AP"] for r in result.stage_search.allocations}
    outside = [list(b) for b in truth if b not in supernet]
    if outside:
        raise SystemExit(f"--spread: expected allocations of {args.search}'s space, got {outside} outside it")
    allocations = list(truth)
    work = args.work or args.search / "stage_finetune"
    classes = len(dataset.classes) + 1

    def ranking(scores: dict[tuple[int, ...], float]) -> dict[str, Any]:
        x, y = [scores[b] for b in allocations], [truth[b] for b in allocations]
        tau, rho = rank_correlation(x, y, "kendall"), rank_correlation(x, y, "spearman", seed=1)
        return {"kendall_tau": {"value": tau.value, "ci": tau.ci}, "spearman_rho": {"value": rho.value, "ci": rho.ci},
                "AP": {str(list(b)): scores[b] for b in allocations}}

    rows = [{"finetune_iterations": 0, **ranking(supernet), "wall_time_s": 0.0}]
    for iterations in args.finetune:
        started, scores = time.time(), {}
        for blocks in allocations:
            model = trained_supernet(config, args.search, STAGE_SUPERNET, blocks, classes)
            finetune_path(config, model, archtrain, iterations, work / str(iterations) / "-".join(map(str, blocks)))
            scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
            scores[blocks] = 100 * scorer.score_allocation(blocks)["AP"]
            print(f"{iterations} iterations: {list(blocks)} {scores[blocks]:.2f} AP (stand-alone {truth[blocks]:.2f})", flush=True)
        rows.append({"finetune_iterations": iterations, **ranking(scores), "wall_time_s": round(time.time() - started, 1)})
    summary = {
        "search": str(args.search), "preset": config.preset, "spread": str(args.spread), "allocations": [list(b) for b in allocations],
        "standalone_AP": {str(list(b)): truth[b] for b in allocations}, "tau_ceiling": spread["anova"]["tau_ceiling"],
        "ground_truth_iterations": spread["iterations"], "rankings": rows, "unit": "AP in percent",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"ground truth: {len(allocations)} allocations, {spread['iterations']} iterations, tau ceiling {spread['anova']['tau_ceiling']:.2f}")
    for row in rows:
        what = "supernet scores" if row["finetune_iterations"] == 0 else f"after {row['finetune_iterations']} fine-tuning iterations"
        best = list(max(allocations, key=lambda b: row["AP"][str(list(b))]))
        print(f"{what}: tau {shown(row['kendall_tau'])}, best {best} (stand-alone best {list(max(allocations, key=truth.__getitem__))}); "
              f"{row['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
