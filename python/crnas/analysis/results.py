"""Reading a search's ``result.json`` (written by :func:`crnas.search.driver.run_search`) into
architectures and tables (pandas DataFrames)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crnas.arch import Architecture, get_architecture
from crnas.eval.coco import METRICS
from crnas.search.result import load_result

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_result", "result_architectures", "stage_table", "dilation_steps_table", "beam_aps"]


def result_architectures(result: Any) -> dict[str, Architecture]:
    """``{"baseline": Architecture, "found": Architecture}`` of a result (anything :func:`load_result` takes)."""
    result = load_result(result)
    return {"baseline": get_architecture(result["baseline"]), "found": get_architecture(result["architecture"])}


def stage_table(result: Any) -> pd.DataFrame:
    """Every allocation the stage search scored, best first, as a DataFrame: rank, blocks, C2..C5, GMACs, COCO metrics,
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
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)


def beam_aps(step: dict[str, Any]) -> list[float]:
    """AP of each beam entry of a greedy dilation-search step, in beam order (best first)."""
    scores = {tuple(c["dilations"]): c["metrics"]["AP"] for c in step["candidates"]}
    return [scores[tuple(b)] for b in step["beam"]]


def dilation_steps_table(result: Any) -> pd.DataFrame:
    """The greedy dilation search step by step, as a DataFrame: block, stage, candidates scored, the best prefix and
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
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)
