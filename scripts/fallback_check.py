"""Would the fallback (docs/design.md#fallback) have kept the baseline's choices, and was that right?

For each search directory: the stage search's decision (its winner's recorded lead over the
baseline allocation) and the search's final check — its dilation pick against all-dilation-1,
each scored by the operation supernet with its own paths, the pick's AP lead with its archval
bootstrap interval, and the decision (a search made before the check existed, or with
``--no-dilation-fallback``, gets it computed now from its operation supernet's checkpoint). With
``--finetune N [N ...]``, also the check as ``crnas search --finetune-check N`` makes it: the pick and
all-dilation-1 each fine-tuned N iterations on archtrain on its own path from the operation supernet's
weights, then compared (nothing is written into the search directory). Where the directory holds an
audit with the dilation candidates (``DIR/audit/audit.json``, from ``crnas audit``), the stand-alone AP
of the winner and the baseline allocation, and of the pick and all-dilation-1, says whether each
decision was the better one.

    python scripts/fallback_check.py runs/demo runs/quality --finetune 100 400 --out docs/results/fallback.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def check(search_dir: Path, finetune: Sequence[int] = ()) -> dict[str, Any]:
    """The final check of one search (its supernet's scores, then after each fine-tuning length in
    ``finetune``) and, where audited, the stand-alone verdict."""
    from crnas.data import split
    from crnas.data.spec import load_dataset
    from crnas.search.audit import AuditRecord, final_check_of
    from crnas.search.result import load_result
    from crnas.search.standalone import data_fingerprint

    result = load_result(search_dir)
    config = result.config
    dataset = load_dataset(config.data)
    if data_fingerprint(dataset) != result.data.fingerprint:
        raise SystemExit(f"fallback_check: {search_dir}: the data differs from the searched data (fingerprint mismatch)")
    archtrain, archval = split(dataset, config.val_fraction, config.seed)

    def decision(iterations: int) -> dict[str, Any]:
        started = time.time()
        final = final_check_of(search_dir, result, archtrain, archval, finetune=iterations)
        conf = final.confidence
        scored = final.candidates if final.finetuned is None else final.finetuned
        ap = {tuple(c.dilations): 100 * c.metrics["AP"] for c in scored}
        return {
            "finetune_iterations": iterations, "pick": conf.winner, "AP": {"pick": ap[tuple(conf.winner)], "all_1": ap[tuple(conf.reference)]},
            "lead": {"value": 100 * conf.lead.value, "ci": [100 * conf.lead.ci[0], 100 * conf.lead.ci[1]]}, "fallback": final.fallback,
            "recorded_in_search": final is result.dilation_search.final, "wall_time_s": round(time.time() - started, 1),
        }

    row: dict[str, Any] = {"search": str(search_dir), "preset": config.preset, "blocks": result.stage_search.best, "archval_images": len(archval)}
    stage = result.stage_search.confidence
    if stage is not None and stage.reference == result.baseline.blocks:  # what --stage-fallback decides
        winner = result.stage_search.allocations[0].blocks
        row["stage"] = {
            "winner": winner, "baseline": result.baseline.blocks, "lead": {"value": 100 * stage.lead.value, "ci": [100 * x for x in stage.lead.ci]},
            "fallback": stage.keeps_reference,
        }
    row["checks"] = [decision(n) for n in (0, *finetune)]
    audit_file = search_dir / "audit" / "audit.json"
    audit = AuditRecord.load(audit_file) if audit_file.is_file() else None
    if audit is not None and "stage" in row:
        alone_stage = {tuple(p.blocks): 100 * p.standalone_AP for p in audit.stage.pairs}
        won, base = alone_stage.get(tuple(row["stage"]["winner"])), alone_stage.get(tuple(row["stage"]["baseline"]))
        if won is not None and base is not None:
            row["stage"]["standalone_AP"] = {"winner": won, "baseline": base, "source": str(audit_file)}
            same = row["stage"]["winner"] == row["stage"]["baseline"]  # nothing was decided
            row["stage"]["decision_right"] = None if same else (base >= won) == row["stage"]["fallback"]
    if audit is not None and audit.dilation is not None:
        alone = {tuple(p.dilations): 100 * p.standalone_AP for p in audit.dilation.pairs}
        pick, ones = alone.get(tuple(row["checks"][0]["pick"])), alone.get((1,) * sum(row["blocks"]))
        if pick is not None and ones is not None:
            row["standalone_AP"] = {"pick": pick, "all_1": ones, "source": str(audit_file)}
            for c in row["checks"]:
                same = list(c["pick"]) == [1] * sum(row["blocks"])  # nothing was decided
                c["decision_right"] = None if same else (ones >= pick) == c["fallback"]
                c["gain_over_the_pick"] = (ones - pick) if c["fallback"] else 0.0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("searches", type=Path, nargs="+", help="search directories (crnas search --out)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--finetune", type=int, nargs="+", default=[], metavar="N",
                    help="also compare the two after N fine-tuning iterations each from the supernet's weights (one check per N)")
    args = ap.parse_args()
    if any(n < 1 for n in args.finetune):
        raise SystemExit(f"fallback_check: --finetune: expected iterations >= 1, got {args.finetune}")
    for d in args.searches:
        if not (d / "result.json").is_file():
            raise SystemExit(f"fallback_check: {d}: expected a search directory with result.json, got none")

    import torch

    rows = []
    for d in args.searches:
        row = check(d, args.finetune)
        rows.append(row)
        if "stage" in row:
            st = row["stage"]
            line = (f"{d} (stage search): winner {st['winner']} leads the baseline by {st['lead']['value']:+.2f} AP "
                    f"(95% CI {st['lead']['ci'][0]:+.2f} .. {st['lead']['ci'][1]:+.2f}) -> {'the baseline' if st['fallback'] else 'the winner'}")
            if st.get("decision_right") is not None:
                line += (f"; stand-alone {st['standalone_AP']['winner']:.2f} vs {st['standalone_AP']['baseline']:.2f}: "
                         f"{'right' if st['decision_right'] else 'wrong'}")
            print(line, flush=True)
        for c in row["checks"]:
            lo, hi = c["lead"]["ci"]
            how = "supernet scores" if not c["finetune_iterations"] else f"after {c['finetune_iterations']} fine-tuning iterations each"
            line = (f"{d} ({how}): pick {c['AP']['pick']:.2f} vs all-dilation-1 {c['AP']['all_1']:.2f} AP on {row['archval_images']} archval "
                    f"images, lead 95% CI {lo:+.2f} .. {hi:+.2f} -> {'all-dilation-1' if c['fallback'] else 'the pick'}")
            if c.get("decision_right") is not None:
                s = row["standalone_AP"]
                line += f"; stand-alone {s['pick']:.2f} vs {s['all_1']:.2f}: {'right' if c['decision_right'] else 'wrong'}"
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
