"""Reading a search's ``result.json`` (written by :func:`crnas.search.driver.run_search`) into
architectures and tables."""

from __future__ import annotations

from typing import Any

from crnas.analysis.table import Table
from crnas.eval.coco import METRICS
from crnas.search.result import load_result

__all__ = ["load_result", "result_architectures", "stage_table", "dilation_steps_table", "beam_aps"]


def result_architectures(result: Any) -> dict[str, Any]:
    """``{"baseline": Architecture, "found": Architecture}`` of a result (anything :func:`load_result` takes)."""
    from crnas.models import get_architecture

    result = load_result(result)
    return {"baseline": get_architecture(result["baseline"]), "found": get_architecture(result["architecture"])}


def stage_table(result: Any) -> Table:
    """Every allocation the stage search scored, best first: rank, blocks, C2..C5, GMACs, COCO metrics,
    and flags for the best and the baseline allocation."""
    result = load_result(result)
    best = result["stage_search"]["best"]
    baseline = result["baseline"]["blocks"]
    rows = []
    for rank, row in enumerate(sorted(result["stage_search"]["allocations"], key=lambda r: -r["AP"]), 1):
        blocks = row["blocks"]
        rows.append({
            "rank": rank, "blocks": blocks, **{f"C{i + 2}": b for i, b in enumerate(blocks)}, "GMACs": round(row["macs"] / 1e9, 3),
            **{m: row[m] for m in METRICS if m in row}, "best": blocks == best, "baseline": blocks == baseline,
        })
    return Table(rows)


def beam_aps(step: dict[str, Any]) -> list[float]:
    """AP of each beam entry of a greedy dilation-search step, in beam order (best first)."""
    scores = {tuple(c["dilations"]): c["metrics"]["AP"] for c in step["candidates"]}
    return [scores[tuple(b)] for b in step["beam"]]


def dilation_steps_table(result: Any) -> Table:
    """The greedy dilation search step by step: block, stage, candidates scored, the best prefix and
    its AP, the beam's AP range (empty for the differentiable method)."""
    result = load_result(result)
    search = result["dilation_search"]
    blocks = result["stage_search"]["best"]
    stage_of = [s for s, b in enumerate(blocks) for _ in range(b)]
    rows = []
    for step in search.get("steps", []):
        beam_ap = beam_aps(step)
        best = step["beam"][0]
        rows.append({
            "step": step["step"], "block": step["step"] + 1, "stage": f"C{stage_of[step['step']] + 2}",
            "candidates": len(step["candidates"]), "best prefix": best,
            "best AP": beam_ap[0], "beam AP min": min(beam_ap),
        })
    return Table(rows)
