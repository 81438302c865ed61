"""Effective receptive fields (Luo et al. 2016, https://arxiv.org/abs/1701.04128), the measurement
behind the paper's Fig. 1 (docs/design.md#erf).

The gradient of one feature map's centre unit with respect to the input: the centre position's
output gradient is 1 in every channel, every other position's 0; ``|∂y/∂x|`` summed over the input's
colour channels, averaged over images and normalised to sum 1.

.. note:: The paper does not say which inputs it averaged over. Without ``images`` crnas feeds
   Gaussian noise, N(0, 1) in the network's (normalised) input space, as Luo et al. did; with
   ``images`` they are resized to ``input_size`` and, for a torchvision detector, normalised with its
   ``transform.image_mean`` / ``image_std``. The detector's own resize is bypassed: the ERF is that
   of the backbone (+ FPN) on an ``input_size`` plate (512×512 in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.detection.backbone_utils import BackboneWithFPN

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ERFResult", "erf", "erf_levels", "erf_table", "feature_maps"]

#: FPN anchor side in units of the level's stride (torchvision's 32..512 on P2..P6).
ANCHOR_STRIDES = 8


@dataclass(frozen=True, eq=False)  # eq would compare arrays element-wise
class ERFResult:
    """One measured ERF and its summary numbers (all lengths in input pixels).

    Attributes:
        map: ``float64[H, W]``, non-negative, sums to 1.
        level: the feature map (``"P3"``, ``"C5"``, ``"out"``, ...).
        stride: the level's stride (input size / map size).
        unit: ``(row, col)`` of the centre unit on the level's map.
        n: number of inputs averaged.
        inputs: ``"noise"`` or ``"images"``.
        centre: ``(y, x)`` centre of mass of ``map``.
        r50, r90: radius around ``centre`` of the smallest disc holding 50% / 90% of the mass.
        rms_radius: root-mean-square distance of the mass from ``centre``.
        area50, area90: fewest pixels (taken from the strongest down) holding 50% / 90% of the mass.
        anchor: side of the level's anchor box, ``8 × stride``.
        anchor_mass: fraction of the mass inside the anchor box centred on ``centre``.
        support: ``(height, width)`` of the bounding box of the non-zero pixels.
    """

    map: np.ndarray
    level: str
    stride: int
    unit: tuple[int, int]
    n: int
    inputs: str
    centre: tuple[float, float]
    r50: float
    r90: float
    rms_radius: float
    area50: int
    area90: int
    anchor: int
    anchor_mass: float
    support: tuple[int, int]

    @classmethod
    def from_map(cls, erf_map: np.ndarray, level: str, stride: int, unit: tuple[int, int], n: int, inputs: str) -> ERFResult:
        """Normalise a non-negative ``[H, W]`` gradient map and compute its summary numbers."""
        m = np.asarray(erf_map, dtype=np.float64)
        if m.ndim != 2 or (m < 0).any() or not m.sum() > 0:
            raise ValueError(f"erf_map: expected a non-negative [H, W] array with positive mass, got shape {m.shape}, sum {m.sum()}")
        m = m / m.sum()
        ys, xs = np.indices(m.shape, dtype=np.float64)
        cy, cx = float((m * ys).sum()), float((m * xs).sum())
        dist = np.hypot(ys - cy, xs - cx).ravel()
        order = np.argsort(dist, kind="stable")
        radial = np.cumsum(m.ravel()[order])
        by_value = np.cumsum(np.sort(m.ravel())[::-1])
        anchor = ANCHOR_STRIDES * stride
        half = anchor / 2
        inside = (np.abs(ys - cy) <= half) & (np.abs(xs - cx) <= half)
        rows, cols = np.nonzero(m)
        last = m.size - 1
        return cls(
            map=m, level=level, stride=stride, unit=unit, n=n, inputs=inputs, centre=(cy, cx),
            r50=float(dist[order][min(np.searchsorted(radial, 0.5), last)]),
            r90=float(dist[order][min(np.searchsorted(radial, 0.9), last)]),
            rms_radius=float(np.sqrt((m.ravel() * dist**2).sum())),
            area50=int(min(np.searchsorted(by_value, 0.5), last) + 1),
            area90=int(min(np.searchsorted(by_value, 0.9), last) + 1),
            anchor=anchor,
            anchor_mass=float(m[inside].sum()),
            support=(int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)),
        )

    def as_dict(self) -> dict[str, Any]:
        """The summary numbers (everything but ``map``), JSON-able."""
        return {
            "level": self.level, "stride": self.stride, "anchor": self.anchor, "input_size": list(self.map.shape),
            "n": self.n, "inputs": self.inputs, "r50": round(self.r50, 2), "r90": round(self.r90, 2),
            "rms_radius": round(self.rms_radius, 2), "area50": self.area50, "area90": self.area90,
            "anchor_mass": round(self.anchor_mass, 4), "support": list(self.support),
            "centre": [round(c, 2) for c in self.centre], "unit": list(self.unit),
        }

    def __repr__(self) -> str:
        return (
            f"ERFResult({self.level}, stride {self.stride}, r50 {self.r50:.1f}, r90 {self.r90:.1f}, "
            f"anchor {self.anchor} holds {100 * self.anchor_mass:.1f}%, {self.n} {self.inputs} inputs)"
        )


def _level_name(prefix: str, input_height: int, height: int) -> tuple[str, int]:
    k = round(math.log2(input_height / height))
    return f"{prefix}{k}", 2**k


def feature_maps(model: nn.Module, x: Tensor) -> dict[str, tuple[Tensor, int]]:
    """Named feature maps of ``model`` at ``x`` ``[N, 3, H, W]``: ``{level: (Tensor[N, C, h, w], stride)}``.

    * a torchvision detector (``.backbone`` and ``.transform``) or a ``BackboneWithFPN``: its body's
      ``C2..C5`` and its FPN's ``P2..P6`` (``P3..P7`` for RetinaNet / FCOS), named by stride;
    * a crnas backbone (``forward_features``): ``C2..C5``;
    * any other module: its output, ``"out"`` for a tensor, the keys of a mapping, ``"0", "1", ...``
      for a list.
    """
    height = x.shape[-2]
    backbone = getattr(model, "backbone", None)
    if hasattr(model, "transform") and isinstance(backbone, nn.Module):
        model = backbone
    if isinstance(model, BackboneWithFPN):
        body = model.body(x)
        pyramid = model.fpn(body)
        named = {}
        for prefix, maps in (("C", body), ("P", pyramid)):
            for t in maps.values():
                name, stride = _level_name(prefix, height, t.shape[-2])
                named[name] = (t, stride)
        return named
    forward_features = getattr(model, "forward_features", None)
    if callable(forward_features):
        return {name: (t, stride) for t in forward_features(x) for name, stride in [_level_name("C", height, t.shape[-2])]}
    out = model(x)
    if isinstance(out, Tensor):
        items: list[tuple[str, Tensor]] = [("out", out)]
    elif isinstance(out, Mapping):
        items = [(str(k), v) for k, v in out.items()]
    elif isinstance(out, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(out)]
    else:
        raise TypeError(f"model: expected an output Tensor, mapping or list of Tensors, got {type(out).__name__}")
    return {name: (t, max(1, round(height / t.shape[-2]))) for name, t in items}


@contextmanager
def _analysis_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BN frozen), no parameter gradients; both restored afterwards."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        model.train(training)
        for p, flag in flags:
            p.requires_grad_(flag)


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (
        isinstance(input_size, (str, bytes))
        or not isinstance(input_size, Sequence)
        or len(input_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_size)
    ):
        raise ValueError(f"input_size: expected a positive int or (H, W), got {input_size!r}")
    return (input_size[0], input_size[1])


def _image_list(images: Any, n: int) -> list[Tensor]:
    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected Tensor[N, 3, H, W] or [3, H, W], got shape {tuple(images.shape)}")
        return list(images[:n])
    if hasattr(images, "__len__") and hasattr(images, "__getitem__"):
        count = min(n, len(images))
        load = getattr(images, "load_image", None)
        out = []
        for i in range(count):
            item = load(i) if callable(load) else images[i]
            image = item[0] if isinstance(item, (tuple, list)) else item
            if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images[{i}]: expected Tensor[3, H, W] (or an (image, target) pair), got {type(image).__name__}")
            out.append(image)
        if not out:
            raise ValueError("images: expected at least one image, got an empty collection")
        return out
    raise TypeError(f"images: expected a Tensor, a list of Tensors or a dataset, got {type(images).__name__}")


def _inputs(model: nn.Module, images: Any, n: int, size: tuple[int, int], seed: int) -> Tensor:
    if images is None:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n, 3, *size, generator=generator)
    batch = torch.stack([
        F.interpolate(im.float()[None], size=size, mode="bilinear", align_corners=False)[0] for im in _image_list(images, n)
    ])
    transform = getattr(model, "transform", None)
    mean, std = getattr(transform, "image_mean", None), getattr(transform, "image_std", None)
    if mean is not None and std is not None:
        batch = (batch - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return batch


def erf_levels(
    model: nn.Module,
    levels: Sequence[str] = ("P3", "P4", "P5"),
    *,
    input_size: int | Sequence[int] = 512,
    images: Any = None,
    n: int = 8,
    device: torch.device | str = "cpu",
    seed: int = 0,
    batch_size: int = 4,
) -> dict[str, ERFResult]:
    """The ERF of several levels of ``model``, one forward pass per batch (see :func:`erf`)."""
    if isinstance(levels, str):
        raise TypeError(f"levels: expected a sequence of level names, got the string {levels!r}")
    if not levels:
        raise ValueError("levels: expected at least one level name, got none")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    size = _size(input_size)
    model.to(device)
    x_all = _inputs(model, images, n, size, seed)
    sums = {level: torch.zeros(size, dtype=torch.float64) for level in levels}
    units: dict[str, tuple[int, int]] = {}
    strides: dict[str, int] = {}
    with _analysis_mode(model), torch.enable_grad():
        for chunk in x_all.split(batch_size):
            x = chunk.to(device).requires_grad_(True)
            maps = feature_maps(model, x)
            missing = [level for level in levels if level not in maps]
            if missing:
                raise ValueError(f"levels: expected names among {sorted(maps)}, got {missing[0]!r}")
            for i, level in enumerate(levels):
                t, strides[level] = maps[level]
                units[level] = (t.shape[-2] // 2, t.shape[-1] // 2)
                (grad,) = torch.autograd.grad(t[:, :, units[level][0], units[level][1]].sum(), x, retain_graph=i < len(levels) - 1)
                sums[level] += grad.abs().sum(dim=(0, 1)).double().cpu()
    inputs = "noise" if images is None else "images"
    count = x_all.shape[0]
    return {level: ERFResult.from_map((sums[level] / count).numpy(), level, strides[level], units[level], count, inputs) for level in levels}


def erf(
    model: nn.Module,
    level: str = "P3",
    *,
    input_size: int | Sequence[int] = 512,
    images: Any = None,
    n: int = 8,
    device: torch.device | str = "cpu",
    seed: int = 0,
    batch_size: int = 4,
) -> ERFResult:
    """The effective receptive field of the centre unit of ``level`` (Luo et al. 2016).

    Args:
        model: a torchvision detector, a ``BackboneWithFPN`` (levels ``C2..C5``, ``P2..P6``), a crnas
            backbone (``C2..C5``) or any module (see :func:`feature_maps`). It runs in eval mode
            without parameter gradients (both restored afterwards) and is moved to ``device``.
        level: the feature map whose centre unit is traced.
        input_size: ``H`` or ``(H, W)`` of the input plate (the paper's 512).
        images: ``None`` (Gaussian noise), ``Tensor[N, 3, H, W]``, a list of ``Tensor[3, H, W]`` or a
            dataset of ``(image, target)``; the first ``n`` are resized to ``input_size``.
        n: number of inputs averaged.
        seed: seed of the noise inputs.
        batch_size: inputs per forward/backward pass.

    Returns:
        an :class:`ERFResult` (``.map`` is ``float64[H, W]`` summing to 1).

    Examples::

        >>> from crnas.detection import cr_backbone_with_fpn
        >>> result = erf(cr_backbone_with_fpn("scr_resnet50"), "P5", input_size=256, n=2)
        >>> result.map.shape
        (256, 256)
    """
    return erf_levels(model, [level], input_size=input_size, images=images, n=n, device=device, seed=seed, batch_size=batch_size)[level]


def erf_table(results: Mapping[str, Mapping[str, ERFResult] | Sequence[ERFResult]] | Sequence[ERFResult]) -> pd.DataFrame:
    """Summary numbers of ERFs as a DataFrame, one row per (model, level): ``{model: {level: ERFResult}}``,
    ``{model: [ERFResult, ...]}`` or a flat list (model column left empty)."""
    grouped = results.items() if isinstance(results, Mapping) else [("", results)]
    rows = []
    for model, per_level in grouped:
        for r in per_level.values() if isinstance(per_level, Mapping) else per_level:
            d = r.as_dict()
            rows.append({
                "model": model, "level": r.level, "stride": r.stride, "anchor": r.anchor, "r50": d["r50"], "r90": d["r90"],
                "rms_radius": d["rms_radius"], "area50": r.area50, "area90": r.area90, "anchor_mass": d["anchor_mass"],
            })
    import pandas as pd  # optional dependency (the notebooks extra)

    return pd.DataFrame(rows)
