"""A search's ``result.json`` (:class:`~crnas.search.result.SearchResult`, written by
:func:`crnas.search.driver.run_search`) as architectures and tables (pandas DataFrames)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crnas.arch import Architecture
from crnas.eval.coco import METRICS
from crnas.search.result import ResultLike, load_result

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_result", "result_architectures", "stage_table", "dilation_steps_table"]


def result_architectures(result: ResultLike) -> dict[str, Architecture]:
    """``{"baseline": Architecture, "found": Architecture}`` of a result (anything :func:`load_result` takes)."""
    result = load_result(result)
    return {"baseline": result.baseline, "found": result.architecture}


def stage_table(result: ResultLike) -> pd.DataFrame:
    """Every allocation the stage search scored, best first, as a DataFrame: rank, blocks, C2..C5, GMACs, COCO metrics,
    and flags for the best and the baseline allocation."""
    result = load_result(result)
    best = result.stage_search.best
    baseline = result.baseline.blocks
    rows = []
    for rank, row in enumerate(sorted(result.stage_search.allocations, key=lambda r: -r.metrics["AP"]), 1):
        blocks = row.blocks
        gmacs = None if row.macs is None else round(row.macs / 1e9, 3)
        rows.append({
            "rank": rank, "blocks": blocks, **{f"C{i + 2}": b for i, b in enumerate(blocks)}, "GMACs": gmacs,
            **{m: row.metrics[m] for m in METRICS if m in row.metrics}, "best": blocks == best, "baseline": blocks == baseline,
        })
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)


def dilation_steps_table(result: ResultLike) -> pd.DataFrame:
    """The greedy dilation search step by step, as a DataFrame: block, stage, candidates scored, the best prefix and
    its AP, the beam's AP range (empty for the differentiable method)."""
    result = load_result(result)
    blocks = result.stage_search.best
    stage_of = [s for s, b in enumerate(blocks) for _ in range(b)]
    rows = []
    for step in result.dilation_search.steps:
        beam_ap = step.beam_aps()
        rows.append({
            "step": step.step, "block": step.step + 1, "stage": f"C{stage_of[step.step] + 2}",
            "candidates": len(step.candidates), "best prefix": step.beam[0],
            "best AP": beam_ap[0], "beam AP min": min(beam_ap),
        })
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)
