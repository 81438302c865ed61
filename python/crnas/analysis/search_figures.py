"""Figures of a search result: the stage search's scored allocations, the dilation search's progress,
and :func:`plot_search`, which writes them all (what ``crnas plot`` does)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from crnas.analysis._figure import dilation_colour, new_figure, save
from crnas.analysis.architecture_figures import plot_allocation, plot_macs
from crnas.analysis.audit_figures import plot_audit
from crnas.analysis.results import result_architectures
from crnas.search.result import DilationSearch, ResultLike, load_result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_stage_search", "plot_dilation_search", "plot_search"]


def plot_stage_search(result: ResultLike, *, metric: str = "AP", dpi: int = 100, path: str | PathLike[str] | None = None) -> Figure:
    """Left: ``metric`` of every scored allocation, ranked, the best (star) and the baseline (cross)
    marked. Right: the allocations over their C4 / C5 block counts, coloured by the best ``metric``
    among those sharing the two counts.

    Args:
        result: a :class:`~crnas.search.result.SearchResult`, a ``result.json`` path or its directory.
        metric: ``AP``, ``AP50``, ... (a metric of the allocations' rows).
        path: also write the figure there as a PNG.
    """
    result = load_result(result)
    rows = result.stage_search.allocations
    if not rows or metric not in rows[0].metrics:
        raise ValueError(f"metric: expected a metric of the stage search's rows {sorted(rows[0].metrics) if rows else []}, got {metric!r}")
    best, baseline = result.stage_search.allocations[0].blocks, result.baseline.blocks  # the winner, also after a fallback
    ranked = sorted(rows, key=lambda r: -r.metrics[metric])
    fig = new_figure(10.0, 3.8, dpi)
    left, right = fig.subplots(1, 2, width_ratios=[1.4, 1])
    values = [r.metrics[metric] for r in ranked]
    left.plot(range(1, len(values) + 1), values, ".", color="#1f77b4", markersize=4, label="allocations")
    for marker, blocks, colour, name in (("*", best, "#d62728", "best"), ("X", baseline, "#ff7f0e", "baseline")):
        hits = [(i + 1, r.metrics[metric]) for i, r in enumerate(ranked) if r.blocks == blocks]
        if hits:
            left.plot(*hits[0], marker, color=colour, markersize=12, label=f"{name} {blocks}")
    left.set_xlabel("rank")
    left.set_ylabel(metric)
    confidence = result.stage_search.confidence
    title = f"stage search: {len(rows)} allocations"
    if confidence is not None:
        lo, hi = confidence.lead.ci
        title += (f"\nwinner − {confidence.reference}: {100 * confidence.lead.value:+.2f} AP "
                  f"[{100 * lo:+.2f}, {100 * hi:+.2f}]; {confidence.indistinguishable} indistinguishable")
    if result.stage_search.fallback:
        title += "; kept the baseline (fallback)"
    left.set_title(title, fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)

    cells: dict[tuple[int, int], float] = {}
    for r in rows:
        key = (r.blocks[2], r.blocks[3])
        cells[key] = max(cells.get(key, float("-inf")), r.metrics[metric])
    xs, ys = zip(*cells)
    points = right.scatter(xs, ys, c=list(cells.values()), cmap="viridis", s=90, marker="s", edgecolors="none")
    right.plot(best[2], best[3], "o", markersize=15, markerfacecolor="none", markeredgecolor="#d62728", markeredgewidth=2, label="best")
    right.plot(baseline[2], baseline[3], "X", color="#ff7f0e", markersize=10, label="baseline")
    right.set_xlabel("C4 blocks")
    right.set_ylabel("C5 blocks")
    right.set_title(f"best {metric} by C4 / C5 blocks", fontsize=10)
    right.legend(fontsize=8, loc="best")
    fig.colorbar(points, ax=right, label=metric)
    save(fig, path)
    return fig


def plot_dilation_search(result: ResultLike, *, dpi: int = 100, path: str | PathLike[str] | None = None) -> Figure:
    """The dilation search over the found allocation's blocks.

    Greedy (beam) search: every scored candidate's AP per step (grey), the beam (blue) and the best
    prefix (red line, each point labelled with the dilation it chose for that block). Differentiable
    search: the final probability of each dilation per block, the argmax outlined.
    Dotted lines separate the stages.
    """
    result = load_result(result)
    search = result.dilation_search
    blocks = result.stage_search.best
    fig = new_figure(max(6.0, 1.5 + 0.45 * sum(blocks)), 3.8, dpi)
    ax = fig.add_subplot()
    if search.method == "differentiable":
        probs = search.probabilities or []  # [blocks][choices]
        # a result by an older crnas does not list the dilation choices; its supernets used 1, 2, 3, ...
        choices = search.choices if search.choices is not None else list(range(1, len(probs[0]) + 1))
        image = ax.imshow(
            [list(col) for col in zip(*probs)], aspect="auto", cmap="Blues", vmin=0, vmax=1, origin="lower",
            extent=(0.5, len(probs) + 0.5, -0.5, len(choices) - 0.5),
        )
        for b, row in enumerate(probs):
            ax.plot(b + 1, max(range(len(row)), key=row.__getitem__), "s", markersize=10, markerfacecolor="none", markeredgecolor="#d62728")
        ax.set_yticks(range(len(choices)), [f"d={d}" for d in choices])
        fig.colorbar(image, ax=ax, label="probability")
        ax.set_title("differentiable dilation search: final probabilities" + _final_check_line(search), fontsize=10)
    else:
        steps = search.steps
        if not steps:
            raise ValueError("result: expected dilation_search.steps (greedy) or probabilities (differentiable), got neither")
        for step in steps:
            x = step.step + 1
            aps, in_beam = [c.metrics["AP"] for c in step.candidates], step.beam_aps()
            ax.plot([x] * len(aps), aps, ".", color="#bbbbbb", markersize=6)
            ax.plot([x] * len(in_beam), in_beam, ".", color="#1f77b4", markersize=7)
        best = [s.beam_aps()[0] for s in steps]
        ax.plot(range(1, len(steps) + 1), best, "-", color="#d62728", linewidth=1.2, label="best prefix")
        for s, ap in zip(steps, best):
            d = s.beam[0][-1]
            ax.plot(s.step + 1, ap, "o", color=dilation_colour(d), markeredgecolor="#d62728", markersize=9)
            ax.annotate(str(d), (s.step + 1, ap), ha="center", va="center", fontsize=6)
        ax.plot([], [], ".", color="#bbbbbb", label="candidates")
        ax.plot([], [], ".", color="#1f77b4", label="beam")
        ax.set_ylabel("AP")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.93))
        ax.grid(alpha=0.3)
        title = f"greedy dilation search (top-{search.k if search.k is not None else len(steps[0].beam)} beam)"
        leads = [s.confidence.lead.significant for s in steps if s.confidence is not None]
        if leads:
            title += f"\n{sum(leads)} of {len(leads)} steps' winners beat the runner-up outside the 95% interval"
        ax.set_title(title + _final_check_line(search), fontsize=9)
    ends = [sum(blocks[: i + 1]) for i in range(len(blocks))]
    for i, end in enumerate(ends):
        if end < sum(blocks):
            ax.axvline(end + 0.5, color="grey", linestyle=":", linewidth=0.8)
        if blocks[i]:
            ax.text(end - blocks[i] / 2 + 0.5, 0.98, f"C{i + 2}", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8, color="grey")
    found = search.dilations
    ax.set_xticks(range(1, len(found) + 1), [f"{b + 1}\nd{d}" for b, d in enumerate(found)], fontsize=7)
    ax.set_xlabel("block (found dilation)")
    ax.set_xlim(0.5, sum(blocks) + 0.5)
    save(fig, path)
    return fig


def _final_check_line(search: DilationSearch) -> str:
    """A title line for the final check against all-dilation-1 (docs/design.md#fallback), if the search made one."""
    if search.final is None:
        return ""
    lead, (lo, hi) = search.final.confidence.lead.value, search.final.confidence.lead.ci
    kept = "kept all-dilation-1" if search.final.fallback else "kept the pick"
    return f"\nfinal check: the pick leads all-dilation-1 by {100 * lead:+.2f} AP (95% CI {100 * lo:+.2f} .. {100 * hi:+.2f}): {kept}"


def plot_search(
    result: ResultLike, out_dir: str | PathLike[str], *, dpi: int = 100, audit_dir: str | PathLike[str] | None = None
) -> dict[str, Path]:
    """Write the search figures of ``result`` into ``out_dir``: ``allocation.png`` (baseline vs found),
    ``macs.png`` (MACs per stage, with the search's detector, input size and convention),
    ``stage_search.png``, ``dilation_search.png`` and, when ``audit_dir`` (or the search directory's
    ``audit/``) holds an ``audit.json``, ``audit.png``. Returns ``{name: path}``."""
    result = load_result(result)
    out = Path(out_dir)
    archs = result_architectures(result)
    macs = result.macs
    paths = {name: out / f"{name}.png" for name in ("allocation", "macs", "stage_search", "dilation_search")}
    plot_allocation(archs, dpi=dpi, path=paths["allocation"])
    plot_macs(archs, input_size=tuple(macs.input_size), detector=macs.detector, dpi=dpi, path=paths["macs"], **macs.convention_kwargs())
    plot_stage_search(result, dpi=dpi, path=paths["stage_search"])
    plot_dilation_search(result, dpi=dpi, path=paths["dilation_search"])
    if audit_dir is not None and (Path(audit_dir) / "audit.json").is_file():
        paths["audit"] = out / "audit.png"
        plot_audit(Path(audit_dir) / "audit.json", dpi=dpi, path=paths["audit"])
    return paths
