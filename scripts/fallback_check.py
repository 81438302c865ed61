"""Would the fallback (docs/design.md#fallback) have kept all-dilation-1, and was that right?

For each search directory: the search's final check — its dilation pick against all-dilation-1,
each scored by the operation supernet with its own paths, the pick's AP lead with its archval
bootstrap interval, and the decision (a search made before the check existed, or with
``--no-fallback``, gets it computed now from its operation supernet's checkpoint; nothing is trained).
Where the directory holds an audit with the dilation candidates (``DIR/audit/audit.json``, from
``crnas audit``), the stand-alone AP of the pick and of all-dilation-1 says whether the decision was
the better one.

``--finetune N`` (an experiment, not what ``crnas search`` does): the same comparison after each of the
two is trained N more iterations on archtrain with its own fixed path, starting from the operation
supernet's weights (the search's batch, learning rate per image and schedule shape) — does a short
fine-tune remove the supernet's bias between them?

    python scripts/fallback_check.py runs/demo runs/quality --out docs/results/fallback.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any


def finetuned_check(search_dir: Path, result: Any, archtrain: Any, archval: Any, candidates: list[list[int]], iterations: int) -> Any:
    """:func:`crnas.search.confidence.compare_to_winner` of ``candidates`` (pick first, all-dilation-1
    second) after each is trained ``iterations`` more steps with its own fixed path from the operation
    supernet's checkpoint."""
    import torch
    from crnas.data.seeding import derive_seed
    from crnas.search.confidence import compare_to_winner
    from crnas.search.driver import CONFIDENCE, _supernet
    from crnas.search.scoring import Scorer
    from crnas.search.supernet import supernet_of
    from crnas.train import CHECKPOINT_NAME, train_detector

    config = result.config
    detections, metrics = [], []
    for dilations in candidates:
        model = _supernet(config, config.space(), len(archval.classes) + 1)
        model.load_state_dict(torch.load(search_dir / "op_supernet" / CHECKPOINT_NAME, map_location="cpu", weights_only=True)["model"])
        supernet = supernet_of(model)
        supernet.set_allocation(result.stage_search.best)
        supernet.set_dilations(dilations)
        train_detector(
            model, archtrain, iterations=iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
            warmup_iters=min(config.lr_warmup or 0, iterations // 10), device=config.device, seed=config.seed, progress=False,
        )
        scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
        ((m, d),) = scorer.evaluate_candidates([dilations], len(dilations) - 1, joint=False)
        detections.append(d)
        metrics.append(m)
    conf = compare_to_winner(
        detections, candidates, 0, 1, archval, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE, 0),
        max_detections=scorer.max_detections,
    )
    return conf, metrics


def check(search_dir: Path, finetune: int = 0) -> dict[str, Any]:
    """The final check of one search and, where audited, the stand-alone verdict."""
    from crnas.data import split
    from crnas.data.spec import load_dataset
    from crnas.search.audit import AuditRecord, final_check_of
    from crnas.search.driver import data_fingerprint
    from crnas.search.result import load_result

    result = load_result(search_dir)
    config = result.config
    dataset = load_dataset(config.data)
    if data_fingerprint(dataset) != result.data.fingerprint:
        raise SystemExit(f"fallback_check: {search_dir}: the data differs from the searched data (fingerprint mismatch)")
    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    started = time.time()
    final = final_check_of(search_dir, result, archtrain, archval)
    conf = final.confidence
    ap = {tuple(c.dilations): 100 * c.metrics["AP"] for c in final.candidates}
    row: dict[str, Any] = {
        "search": str(search_dir), "preset": config.preset, "blocks": result.stage_search.best, "archval_images": conf.images,
        "pick": conf.winner, "supernet_AP": {"pick": ap[tuple(conf.winner)], "all_1": ap[tuple(conf.reference)]},
        "lead": {"value": 100 * conf.lead.value, "ci": [100 * conf.lead.ci[0], 100 * conf.lead.ci[1]]},
        "fallback": final.fallback, "recorded_in_search": result.dilation_search.final is not None,
        "wall_time_s": round(time.time() - started, 1),
    }
    if finetune and conf.winner != conf.reference:
        started = time.time()
        ft, metrics = finetuned_check(search_dir, result, archtrain, archval, [conf.winner, conf.reference], finetune)
        row["finetuned"] = {
            "iterations": finetune, "AP": {"pick": 100 * metrics[0]["AP"], "all_1": 100 * metrics[1]["AP"]},
            "lead": {"value": 100 * ft.lead.value, "ci": [100 * ft.lead.ci[0], 100 * ft.lead.ci[1]]},
            "fallback": not ft.lead.significant, "wall_time_s": round(time.time() - started, 1),
        }
    audit_file = search_dir / "audit" / "audit.json"
    if audit_file.is_file() and (audit := AuditRecord.load(audit_file)).dilation is not None:
        alone = {tuple(p.dilations): 100 * p.standalone_AP for p in audit.dilation.pairs}
        pick, ones = alone.get(tuple(conf.winner)), alone.get(tuple(conf.reference))
        if pick is not None and ones is not None:
            kept = ones if final.fallback else pick
            row["standalone_AP"] = {"pick": pick, "all_1": ones, "kept": kept, "gain_over_the_pick": kept - pick}
            row["decision_right"] = (ones >= pick) == final.fallback
            if "finetuned" in row:
                row["finetuned"]["decision_right"] = (ones >= pick) == row["finetuned"]["fallback"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("searches", type=Path, nargs="+", help="search directories (crnas search --out)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--finetune", type=int, default=0, metavar="N",
                    help="also compare the two after N fine-tuning iterations each from the supernet's weights (an experiment)")
    args = ap.parse_args()
    for d in args.searches:
        if not (d / "result.json").is_file():
            raise SystemExit(f"fallback_check: {d}: expected a search directory with result.json, got none")

    import torch

    rows = []
    for d in args.searches:
        row = check(d, args.finetune)
        rows.append(row)
        lo, hi = row["lead"]["ci"]
        line = (f"{d}: pick leads all-dilation-1 by {row['lead']['value']:+.2f} AP on archval (95% CI {lo:+.2f} .. {hi:+.2f}, "
                f"{row['archval_images']} images) -> {'all-dilation-1' if row['fallback'] else 'the pick'}")
        if "standalone_AP" in row:
            s = row["standalone_AP"]
            line += f"; stand-alone pick {s['pick']:.2f} vs all-dilation-1 {s['all_1']:.2f}: {'right' if row['decision_right'] else 'wrong'}"
        if "finetuned" in row:
            f = row["finetuned"]
            line += (f"\n  after {f['iterations']} fine-tuning iterations each: pick {f['AP']['pick']:.2f} vs all-dilation-1 "
                     f"{f['AP']['all_1']:.2f} (lead CI {f['lead']['ci'][0]:+.2f} .. {f['lead']['ci'][1]:+.2f}) -> "
                     f"{'all-dilation-1' if f['fallback'] else 'the pick'}")
            if "decision_right" in f:
                line += f": {'right' if f['decision_right'] else 'wrong'}"
        print(line, flush=True)
    if args.out:
        summary = {
            "rows": rows, "unit": "AP in percent",
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
