"""Side-by-side numbers of architectures: allocation, dilations, MACs and parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from crnas import flops
from crnas.arch import MACS_INPUT_SIZE, Architecture, ArchLike, get_architecture

if TYPE_CHECKING:
    import pandas as pd

    from crnas.flops import FlopsReport

__all__ = ["BACKBONE_PARTS", "Architectures", "as_architectures", "architecture_table", "flops_reports", "stage_string"]

#: Architectures to compare: one, a sequence, or a mapping ``{label: architecture}``.
Architectures: TypeAlias = "ArchLike | Sequence[ArchLike] | Mapping[str, ArchLike]"

#: The backbone's parts in :func:`crnas.flops.count`'s ``by_stage``.
BACKBONE_PARTS = ("stem", "C2", "C3", "C4", "C5")


def stage_string(values: Sequence[int], blocks: Sequence[int]) -> str:
    """Per-block values grouped by stage: ``1 | 1 2 1 | 1 1 2 3 1 | ...``."""
    ends = [sum(blocks[: i + 1]) for i in range(len(blocks))]
    return " | ".join(" ".join(map(str, values[e - b : e])) for b, e in zip(blocks, ends))


def as_architectures(archs: Architectures, labels: Sequence[str] | None = None) -> dict[str, Architecture]:
    """``{label: Architecture}`` from one architecture spec, a sequence of them, or a mapping
    ``{label: spec}`` (specs as :func:`crnas.arch.get_architecture` accepts). Names label themselves;
    other specs are labelled ``family [blocks]``."""
    if isinstance(archs, Mapping) and not {"family", "blocks"} <= set(archs) and "architecture" not in archs:
        pairs = [(str(k), get_architecture(v)) for k, v in archs.items()]
    else:
        specs = list(archs) if isinstance(archs, Sequence) and not isinstance(archs, str) else [archs]
        pairs = []
        for spec in specs:
            arch = get_architecture(spec)
            pairs.append((spec if isinstance(spec, str) and not spec.lstrip().startswith("{") else f"{arch.family} {arch.blocks}", arch))
    if labels is not None:
        if len(labels) != len(pairs):
            raise ValueError(f"labels: expected {len(pairs)} labels (one per architecture), got {len(labels)}")
        pairs = [(str(label), arch) for label, (_, arch) in zip(labels, pairs)]
    out: dict[str, Architecture] = {}
    for label, arch in pairs:
        unique, k = label, 2
        while unique in out:
            unique, k = f"{label} ({k})", k + 1
        out[unique] = arch
    if not out:
        raise ValueError("archs: expected at least one architecture, got none")
    return out


def flops_reports(
    archs: Architectures, labels: Sequence[str] | None, input_size: int | Sequence[int], detector: str | None, convention: dict[str, Any]
) -> dict[str, tuple[Architecture, FlopsReport]]:
    """``{label: (Architecture, FlopsReport)}`` of :func:`as_architectures` ``(archs, labels)``, counted by
    :func:`crnas.flops.count` (``detector=None``: the backbone without its classifier unless
    ``convention`` says otherwise)."""
    if detector is None:
        convention = {"classifier": False, **convention}
    return {label: (arch, flops.count(arch, input_size, detector, **convention)) for label, arch in as_architectures(archs, labels).items()}


def architecture_table(
    archs: Architectures,
    labels: Sequence[str] | None = None,
    *,
    input_size: int | Sequence[int] = MACS_INPUT_SIZE,
    detector: str | None = "faster_rcnn_fpn",
    **convention: int | bool | None,
) -> pd.DataFrame:
    """A DataFrame with one row per architecture: blocks, dilations by stage, backbone and total GMACs, parameters, and
    the MACs difference to the first row (``detector=None``: backbone only, without the classifier).
    ``convention`` goes to :func:`crnas.flops.count` (``fpn_channels``, ``representation_size``, ...)."""
    rows = []
    reference = None
    for label, (arch, report) in flops_reports(archs, labels, input_size, detector, convention).items():
        reference = reference or report.macs
        rows.append({
            "name": label,
            "family": arch.family,
            "width": arch.width,
            "blocks": list(arch.blocks),
            "dilations": stage_string(arch.dilations, arch.blocks),
            "backbone GMACs": round(sum(report.by_stage.get(p, 0) for p in BACKBONE_PARTS) / 1e9, 3),
            "GMACs": round(report.macs / 1e9, 3),
            "MACs vs first": f"{100 * (report.macs / reference - 1):+.2f}%",
            "params (M)": round(report.params / 1e6, 3),
        })
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)
