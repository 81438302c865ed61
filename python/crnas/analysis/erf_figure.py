"""The ERF figure in the layout of the paper's Fig. 1: rows = models, columns = FPN levels, each
panel with the level's anchor box (8 × stride) drawn around the ERF's centre."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING

from crnas.analysis._figure import new_figure, save
from crnas.analysis.erf import ERFResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_erf"]

ERFs = ERFResult | Sequence[ERFResult] | Mapping[str, Mapping[str, ERFResult] | Sequence[ERFResult]]


def _grid(results: ERFs) -> dict[str, dict[str, ERFResult]]:
    if isinstance(results, ERFResult):
        results = [results]
    rows = results.items() if isinstance(results, Mapping) else [("", results)]
    grid = {}
    for model, per_level in rows:
        items = per_level.values() if isinstance(per_level, Mapping) else per_level
        if not all(isinstance(r, ERFResult) for r in items):
            raise TypeError(f"results: expected ERFResults, {{model: [ERFResult]}} or {{model: {{level: ERFResult}}}}, got {results!r}")
        grid[str(model)] = {r.level: r for r in items}
    if not any(grid.values()):
        raise ValueError("results: expected at least one ERFResult, got none")
    return grid


def plot_erf(
    results: ERFs,
    *,
    anchor: bool = True,
    gamma: float = 1.0,
    cmap: str = "inferno",
    panel_size: float = 2.6,
    dpi: int = 100,
    path: str | PathLike[str] | None = None,
) -> Figure:
    """ERF maps, one row per model and one column per level.

    Args:
        results: an :class:`ERFResult`, a list of them (one model), or ``{model: [ERFResult, ...]}`` /
            ``{model: {level: ERFResult}}`` (one row per model, in order).
        anchor: draw the level's anchor box (dashed square, ``8 × stride`` pixels).
        gamma: colour-scale exponent (``< 1`` brings out the faint tails); each panel is scaled to its
            own maximum.
        panel_size: inches per panel.
        path: also write the figure there as a PNG (``figsize × dpi`` pixels).

    Each panel is titled with the level and its stride and lists r50 / r90 (radii holding 50% / 90%
    of the ERF mass) and the share of the mass inside the anchor box.
    """
    from matplotlib.colors import PowerNorm
    from matplotlib.patches import Rectangle

    grid = _grid(results)
    levels = list(dict.fromkeys(level for row in grid.values() for level in row))
    fig = new_figure(panel_size * len(levels) + 0.6, panel_size * len(grid) + 0.3, dpi)
    axes = fig.subplots(len(grid), len(levels), squeeze=False)
    image = None
    for i, (model, row) in enumerate(grid.items()):
        for j, level in enumerate(levels):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0 and model:
                ax.set_ylabel(model, fontsize=10)
            r = row.get(level)
            if r is None:
                ax.set_axis_off()
                continue
            height, width = r.map.shape
            image = ax.imshow(r.map / r.map.max(), cmap=cmap, norm=PowerNorm(gamma, 0.0, 1.0), extent=(0, width, height, 0))
            ax.set_title(f"{level} (stride {r.stride})", fontsize=10)
            if anchor:
                cy, cx = r.centre
                ax.add_patch(Rectangle(
                    (cx + 0.5 - r.anchor / 2, cy + 0.5 - r.anchor / 2), r.anchor, r.anchor, fill=False, edgecolor="white",
                    linestyle="--", linewidth=1.2,
                ))
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)
            ax.text(
                0.03, 0.03, f"r50 {r.r50:.0f}  r90 {r.r90:.0f}\nanchor {r.anchor}: {100 * r.anchor_mass:.0f}%",
                transform=ax.transAxes, fontsize=7, color="white", va="bottom",
            )
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="|∂y/∂x| / max", pad=0.02)
    save(fig, path)
    return fig
