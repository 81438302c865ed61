"""Figures of architectures: the allocation sketch (in the spirit of the paper's Fig. 4) and MACs
per stage."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING

from crnas.analysis._figure import dilation_colour, new_figure, save
from crnas.analysis.compare import BACKBONE_PARTS, Architectures, as_architectures, flops_reports
from crnas.arch import MACS_INPUT_SIZE
from crnas.models import STAGE_STRIDES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_allocation", "plot_macs"]



def plot_allocation(
    archs: Architectures,
    labels: Sequence[str] | None = None,
    *,
    dpi: int = 100,
    path: str | PathLike[str] | None = None,
) -> Figure:
    """Blocks per stage as boxes, one row per architecture, each box coloured and labelled by its
    dilation (taller for larger dilations, as in Fig. 4: a visual cue only, not more compute).

    Args:
        archs: an architecture spec, a list of them or ``{label: spec}`` (see
            :func:`crnas.analysis.as_architectures`).
        labels: row labels (default: names, or ``family [blocks]``).
        path: also write the figure there as a PNG.
    """
    from matplotlib.patches import Patch, Rectangle

    rows = as_architectures(archs, labels)
    num_stages = max(len(a.blocks) for a in rows.values())
    slots = [max((a.blocks[s] if s < len(a.blocks) else 0) for a in rows.values()) for s in range(num_stages)]
    starts = [sum(slots[:s]) + s for s in range(num_stages)]  # one empty slot between stages
    total = starts[-1] + slots[-1]
    fig = new_figure(max(6.0, 1.6 + 0.32 * total), 0.8 + 0.75 * len(rows), dpi)
    ax = fig.add_subplot()
    seen: set[int] = set()
    for i, (label, arch) in enumerate(rows.items()):
        y = len(rows) - 1 - i
        dilations = arch.stage_dilations
        for s, stage in enumerate(dilations):
            for b, d in enumerate(stage):
                seen.add(d)
                height = 0.34 + 0.12 * (d - 1)
                box = Rectangle((starts[s] + b + 0.08, y - height / 2), 0.84, height, facecolor=dilation_colour(d), edgecolor="black", linewidth=0.6)
                ax.add_patch(box)
                ax.text(starts[s] + b + 0.5, y, str(d), ha="center", va="center", fontsize=7)
        ax.text(-0.4, y, f"{label}\n{list(arch.blocks)}", ha="right", va="center", fontsize=9)
    for s in range(num_stages):
        stride = f", stride {STAGE_STRIDES[s]}" if s < len(STAGE_STRIDES) else ""
        ax.text(starts[s] + slots[s] / 2, len(rows) - 0.35, f"C{s + 2}{stride}", ha="center", va="bottom", fontsize=9)
        if s:
            ax.axvline(starts[s] - 0.5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlim(-0.5, total + 0.2)
    ax.set_ylim(-0.7, len(rows) - 0.05)
    ax.set_axis_off()
    ax.legend(
        handles=[Patch(facecolor=dilation_colour(d), edgecolor="black", label=f"dilation {d}") for d in sorted(seen)],
        loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(seen), fontsize=8, frameon=False,
    )
    save(fig, path)
    return fig


def plot_macs(
    archs: Architectures,
    labels: Sequence[str] | None = None,
    *,
    input_size: int | Sequence[int] = MACS_INPUT_SIZE,
    detector: str | None = None,
    parts: Sequence[str] = BACKBONE_PARTS,
    dpi: int = 100,
    path: str | PathLike[str] | None = None,
    **convention: int | bool | None,
) -> Figure:
    """Grouped bars of GMACs per part (stem, C2..C5 by default), one bar per architecture; the legend
    gives each one's total.

    Args:
        archs, labels: as :func:`plot_allocation`.
        input_size, detector, convention: passed to :func:`crnas.flops.count` (``detector=None``:
            the backbone without its classifier).
        parts: keys of ``by_stage`` to draw (``"fpn"``, ``"rpn"``, ... with a detector).
        path: also write the figure there as a PNG.
    """
    reports = {label: report for label, (_, report) in flops_reports(archs, labels, input_size, detector, convention).items()}
    unknown = [p for p in parts if not any(p in r.by_stage for r in reports.values())]
    if unknown:
        known = sorted({k for r in reports.values() for k in r.by_stage})
        raise ValueError(f"parts: expected names among {known}, got {unknown[0]!r}")
    fig = new_figure(max(6.0, 1.0 + 0.45 * len(parts) * len(reports)), 3.6, dpi)
    ax = fig.add_subplot()
    width = 0.8 / len(reports)
    for k, (label, report) in enumerate(reports.items()):
        xs = [p + (k - (len(reports) - 1) / 2) * width for p in range(len(parts))]
        bars = ax.bar(xs, [report.by_stage.get(p, 0) / 1e9 for p in parts], width, label=f"{label} (total {report.macs / 1e9:.2f} G)")
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(range(len(parts)), list(parts))
    ax.set_ylabel("GMACs")
    h, w = report.input_size
    ax.set_title(f"MACs per part, {detector or 'backbone'} at {h}x{w}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)
    return fig
