"""How AP follows the stage depths: least-squares models on the depths of a few allocations trained on
their own (docs/audit.md#depth-response), the leave-one-out baseline an audit sets a supernet against
(docs/audit.md#depth-baseline), and the spread-out probe allocations such a model is fitted on
(docs/design.md#depth-fit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["DepthModel", "DepthFit", "depth_fit", "linear_design", "loo_depth_predictions", "linear_predictions", "farthest_point"]


@dataclass
class DepthModel:
    """One least-squares model of AP (percent) on the stage depths: its coefficients (no intercept) and R²."""

    coefficients: list[float]
    r2: float


@dataclass
class DepthFit:
    """How AP follows the stage depths d_s (docs/audit.md#depth-response). ``linear``: AP ≈ a + Σ c_s·d_s;
    with a constant total of blocks the last stage is left out (``last_stage_is_reference``), so c_s is
    the AP of moving one block from it into stage s. ``log``: AP ≈ a + Σ_s b_s·log d_s, diminishing
    returns per stage."""

    linear: DepthModel
    log: DepthModel
    last_stage_is_reference: bool

    @property
    def shape(self) -> str:
        """``"linear"`` or ``"log"``: the model that fits better."""
        return "log" if self.log.r2 > self.linear.r2 else "linear"


def depth_fit(blocks: Sequence[Sequence[int]], ap: Sequence[float]) -> DepthFit | None:
    """The :class:`DepthFit` of ``ap`` (percent) on the allocations ``blocks``, by least squares; ``None``
    with fewer allocations than the log model has parameters + 2, a constant AP, or depths that cannot
    separate the stages' effects (a stage that never varies)."""
    d, y = np.asarray(blocks, dtype=float), np.asarray(ap, dtype=float)
    if len(y) < d.shape[1] + 3 or np.ptp(y) == 0:
        return None
    constant_total = bool(np.ptp(d.sum(axis=1)) == 0)
    linear, log = linear_design(d), np.column_stack([np.ones(len(y)), np.log(d)])
    if any(np.linalg.matrix_rank(design) < design.shape[1] for design in (linear, log)):
        return None

    def fit(design: NDArray[np.floating]) -> DepthModel:
        coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
        residual = y - design @ coefficients
        return DepthModel(coefficients[1:].tolist(), float(1 - residual @ residual / ((y - y.mean()) @ (y - y.mean()))))

    return DepthFit(fit(linear), fit(log), constant_total)


def linear_design(d: NDArray[np.floating]) -> NDArray[np.floating]:
    """The linear depth model's design matrix: an intercept and the depths, the last stage's left out
    where every allocation has the same total (it is then the others' complement)."""
    constant_total = bool(np.ptp(d.sum(axis=1)) == 0)
    return np.column_stack([np.ones(len(d)), d[:, :-1] if constant_total else d])


def loo_depth_predictions(blocks: Sequence[Sequence[int]], ap: Sequence[float]) -> list[float] | None:
    """Each allocation's AP predicted by the linear depth model (:func:`depth_fit`'s) fitted by least
    squares on all the *other* allocations (leave-one-out); ``None`` where some fit would have fewer than
    two allocations beyond its parameters or could not separate the stages' effects."""
    d, y = np.asarray(blocks, dtype=float), np.asarray(ap, dtype=float)
    design = linear_design(d)
    predictions = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        if keep.sum() < design.shape[1] + 2 or np.linalg.matrix_rank(design[keep]) < design.shape[1]:
            return None
        predictions.append(float(design[i] @ np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]))
    return predictions


def linear_predictions(blocks: Sequence[Sequence[int]], ap: Sequence[float], allocations: Sequence[Sequence[int]]) -> list[float] | None:
    """Every allocation of ``allocations`` scored by the linear depth model (:func:`depth_fit`'s) fitted by
    least squares on ``blocks`` and their ``ap``; ``None`` with fewer than two allocations beyond the
    model's parameters or depths that cannot separate the stages' effects."""
    d, y = np.asarray(blocks, dtype=float), np.asarray(ap, dtype=float)
    design = linear_design(d)
    if len(y) < design.shape[1] + 2 or np.linalg.matrix_rank(design) < design.shape[1]:
        return None
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    a = np.asarray(allocations, dtype=float)
    full = np.column_stack([np.ones(len(a)), a[:, : design.shape[1] - 1]])
    return (full @ coefficients).tolist()


def farthest_point(allocations: Sequence[Sequence[int]], first: Sequence[int], m: int) -> list[list[int]]:
    """``first``, then repeatedly the allocation of ``allocations`` farthest (L1) from those picked, until
    ``m`` (or all) are picked; ties: the first in order. Spreads a few stand-alone runs over a space."""
    picked = [list(first)]
    rest = [list(a) for a in allocations]
    while len(picked) < min(m, len(rest)):
        picked.append(max((a for a in rest if a not in picked), key=lambda a: min(sum(abs(x - y) for x, y in zip(a, p)) for p in picked)))
    return picked
