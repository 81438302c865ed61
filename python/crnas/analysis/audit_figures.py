"""The ranking audit as a figure: supernet AP against stand-alone AP (``crnas plot`` writes it as
``audit.png`` when the search directory holds ``audit/audit.json``)."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

from crnas.analysis._figure import new_figure, save
from crnas.search.audit import AuditRecord, RankingAudit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_audit"]


def _panel(ax: Axes, audit: RankingAudit, title: str, label: str) -> None:
    sup = [100 * p.supernet_AP for p in audit.pairs]
    alone = [100 * p.standalone_AP for p in audit.pairs]
    ax.plot(sup, alone, "o", color="#1f77b4", markersize=6, label=f"{len(sup)} architectures")
    for p, x, y in zip(audit.pairs, sup, alone):
        name = p.blocks if label == "blocks" else p.dilations
        if name == audit.pick:
            ax.plot(x, y, "*", color="#d62728", markersize=14, label="the search's pick")
        spread = [100 * r["AP"] for r in p.standalone_runs]
        if len(spread) > 1:
            ax.plot([x, x], [min(spread), max(spread)], "-", color="#1f77b4", alpha=0.4, linewidth=1)
    tau, rho = audit.kendall_tau, audit.spearman_rho
    stats = "n/a" if tau.value is None or tau.ci is None else f"τ {tau.value:+.2f} [{tau.ci[0]:+.2f}, {tau.ci[1]:+.2f}]"
    if rho.value is not None and rho.ci is not None:
        stats += f", ρ {rho.value:+.2f} [{rho.ci[0]:+.2f}, {rho.ci[1]:+.2f}]"
    ax.set_title(f"{title}: {stats}\ntop-3 overlap {audit.top3_overlap}/3, regret {100 * audit.regret:.2f} AP", fontsize=9)
    ax.set_xlabel("supernet AP (archval, %)")
    ax.set_ylabel("stand-alone AP (held-out, %)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_audit(audit: AuditRecord | str | PathLike[str], *, dpi: int = 100, path: str | PathLike[str] | None = None) -> Figure:
    """Supernet AP vs stand-alone AP for the stage audit (and the dilation audit when present), with
    Kendall τ / Spearman ρ and their intervals; the search's pick starred, seed ranges as bars.

    Args:
        audit: an :class:`~crnas.search.audit.AuditRecord`, an ``audit.json`` or a search directory.
        path: also write the figure there as a PNG.
    """
    record = audit if isinstance(audit, AuditRecord) else AuditRecord.load(audit)
    panels = [(record.stage, "stage search", "blocks")]
    if record.dilation is not None:
        panels.append((record.dilation, "dilation search", "dilations"))
    fig = new_figure(5.0 * len(panels), 4.2, dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ranking, title, label) in zip(axes, panels):
        _panel(ax, ranking, title, label)
    save(fig, path)
    return fig
