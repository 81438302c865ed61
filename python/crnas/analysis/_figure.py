"""Figures without global state: each one has its own Agg canvas, so no backend is switched and
``pyplot`` is never imported (figures show inline in Jupyter after ``%matplotlib inline``)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Block colours by dilation, as in the paper's Fig. 4 (d=2 purple, d=3 pink).
DILATION_COLOURS = {1: "#9ecae1", 2: "#9467bd", 3: "#e377c2", 4: "#d62728", 5: "#8c564b"}


def dilation_colour(d: int) -> str:
    return DILATION_COLOURS.get(d, "#7f7f7f")


def new_figure(width: float, height: float, dpi: int) -> Figure:
    """A ``width × height`` inch figure at ``dpi`` on an Agg canvas, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not dpi > 0:
        raise ValueError(f"dpi: expected a positive number, got {dpi!r}")
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | PathLike[str] | None) -> None:
    """Write ``fig`` as a PNG of exactly ``figsize × dpi`` pixels (no-op for ``path=None``)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, format="png")
