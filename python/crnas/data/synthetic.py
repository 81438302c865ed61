"""``SyntheticDetection``: procedural shapes on cluttered backgrounds, the built-in dataset.

Each image is a deterministic function of ``(seed, index)``, generated on the fly (a 384×384 image takes a
few milliseconds) and kept for later epochs up to 256 MiB per dataset: no files, no downloads. It is
built so that receptive-field allocation matters, as on COCO:

* **classes are shapes** (disc, square, triangle, ring, cross, diamond, star, frame, in that order), each
  drawn in a random saturated colour with a random texture (flat, stripes, checks), so the class must
  be read from the outline, not from the colour;
* **object sizes follow COCO's mix** (``sizes="coco"``, the default): each object is small, medium or
  large by COCO's area thresholds (visible pixels < 32², < 96², larger) with COCO's frequencies (41%,
  34%, 24%), measured at ``size_reference`` — the short side of the detector's input, so that
  ``crnas check-data`` reports that mix at the resize the detector uses; within its range the object's
  scale (√area) is log-uniform, from 6 px to 80% of the short side. Larger objects are placed first
  (behind smaller ones). ``sizes="log-uniform"`` is the earlier generator (box sides log-uniform from
  8 px to 80% of the short image side), kept to reproduce results recorded with it;
* aspect ratios within [2/3, 3/2];
* **clutter**: a low-frequency coloured background, pixel noise, and distractors that are not
  objects (thin strokes and small speckles, drawn under the objects);
* **occlusion**: objects are painted in order and may hide parts of earlier ones, or stand partly
  outside the image.

Ground truth is exact. Each object's box is the extent of its *visible* pixels (pixel edges,
``x2 = last column + 1``), its ``area`` the number of visible pixels, and ``masks`` (with
``masks=True``) the visible pixels. Every object keeps at least ``MIN_VISIBLE = 50%`` of its pixels: an
object whose placement would leave itself or an earlier object less visible than that is re-drawn
elsewhere (up to 10 tries, then left out), so no labelled object is mostly hidden and no drawn object is
unlabelled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from torch import Tensor
from tqdm import tqdm

from crnas.data.base import DetectionDataset
from crnas.data.image import to_float_image
from crnas.data.report import DataReport
from crnas.data.target import make_target
from crnas.data.transforms import Transform

__all__ = ["COCO_SIZE_MIX", "MIN_SIDE", "MIN_VISIBLE", "SHAPES", "SIZES", "SyntheticDetection"]

SHAPES = ("disc", "square", "triangle", "ring", "cross", "diamond", "star", "frame")
MIN_VISIBLE = 0.5
MIN_SIDE = 8.0
_MAX_SIDE_FRACTION = 0.8
_PLACEMENT_TRIES = 10
_FIELD = 5  # the background colour field is bilinear over a 5×5 grid
#: Rendered samples (pixels and object map) one dataset keeps in memory for later epochs, in bytes
_KEEP_BYTES = 256 << 20
_NOISE = 0.1  # peak-to-peak uniform pixel noise
SIZES = ("coco", "log-uniform")
#: COCO's share of small, medium and large objects (area < 32², < 96², larger), in that order.
COCO_SIZE_MIX = (0.41, 0.34, 0.24)
_SCALE_EDGES = (6.0, 32.0, 96.0)  # √area at the reference resolution: smallest object, small|medium, medium|large


@dataclass
class _Layout:
    idmap: np.ndarray  # [H, W] int16, -1 = background, k = object k
    labels: list[int]
    regions: list[tuple[int, int, int, int]]  # y0, y1, x0, x1 of each object's (clipped) box
    full_area: list[int]  # pixels of each whole object, hidden and off-image parts included


def _shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shape ``shape`` in normalised coordinates (``u``, ``v`` in [-1, 1] span the box; v points down)."""
    au, av = np.abs(u), np.abs(v)
    name = SHAPES[shape]
    if name == "disc":
        return u * u + v * v <= 1.0
    if name == "square":
        return (au <= 1.0) & (av <= 1.0)
    if name == "triangle":
        return (au <= (v + 1.0) / 2.0) & (v <= 1.0)
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "cross":
        return ((au <= 1 / 3) & (av <= 1.0)) | ((av <= 1 / 3) & (au <= 1.0))
    if name == "diamond":
        return au + av <= 1.0
    if name == "star":
        theta = np.arctan2(v, u)
        radius = 0.42 + 0.58 * ((1.0 + np.cos(5.0 * (theta + np.pi / 2))) / 2.0) ** 2
        return u * u + v * v <= radius * radius
    m = np.maximum(au, av)  # frame
    return (m <= 1.0) & (m >= 0.55)



def _fill(shape: int, n: int = 256) -> float:
    """Fraction of its box that ``shape`` covers (pixel centres on an n×n grid)."""
    u = (np.arange(n, dtype=np.float64) + 0.5) / n * 2.0 - 1.0
    return float(_shape_mask(shape, u[None, :], u[:, None]).mean())


_FILL = tuple(_fill(k) for k in range(len(SHAPES)))

def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


class SyntheticDetection(DetectionDataset):
    """Procedural detection data; see the module docstring for what the images contain.

    Args:
        num_images: dataset length.
        image_size: ``(height, width)``; both at least 32.
        num_classes: how many of ``SHAPES`` are used (1 to 8); labels ``1..num_classes``.
        seed: images and targets are a function of ``(seed, index)`` only.
        transforms: applied by :meth:`get` / ``dataset[i]``.
        masks: also return ``masks`` ``Tensor[K, H, W]`` uint8 (visible pixels).
        max_objects: at most this many objects per image (at least 1 is attempted).
        sizes: ``"coco"`` (COCO's small/medium/large mix at ``size_reference``) or ``"log-uniform"``
            (the earlier generator); see the module docstring.
        size_reference: short side (pixels) of the detector's input at which the ``"coco"`` mix holds
            (e.g. the resize's ``min_size``); default the images' short side. A size range that does not
            fit (large objects need a reference side of at least 120 px) is left out and the others
            keep their relative frequencies.
    """

    def __init__(
        self,
        num_images: int,
        image_size: tuple[int, int] = (384, 384),
        num_classes: int = 4,
        seed: int = 0,
        transforms: Transform | None = None,
        masks: bool = False,
        max_objects: int = 8,
        sizes: str = "coco",
        size_reference: int | None = None,
    ) -> None:
        if int(num_images) != num_images or num_images < 1:
            raise ValueError(f"num_images: expected a positive int, got {num_images}")
        if len(image_size) != 2 or min(image_size) < 32:
            raise ValueError(f"image_size: expected (height, width) with both >= 32, got {image_size}")
        if not 1 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes: expected an int in [1, {len(SHAPES)}], got {num_classes}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed}")
        if max_objects < 1:
            raise ValueError(f"max_objects: expected an int >= 1, got {max_objects}")
        if sizes not in SIZES:
            raise ValueError(f"sizes: expected one of {', '.join(SIZES)}, got {sizes!r}")
        if size_reference is not None and (int(size_reference) != size_reference or size_reference < 32):
            raise ValueError(f"size_reference: expected an int >= 32 (pixels), got {size_reference}")
        self.num_images = int(num_images)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = num_classes
        self.seed = int(seed)
        self.transforms = transforms
        self.masks = masks
        self.max_objects = max_objects
        self.sizes = sizes
        self.size_reference = int(size_reference) if size_reference is not None else min(self.image_size)
        # COCO's size ranges in √area at the reference, cut at 80% of its side; a range that no longer fits is never drawn
        top = _MAX_SIDE_FRACTION * self.size_reference
        self._ranges = [(lo, min(hi, top)) for lo, hi in zip(_SCALE_EDGES, (*_SCALE_EDGES[1:], top))]
        weights = np.array([w if hi > lo else 0.0 for w, (lo, hi) in zip(COCO_SIZE_MIX, self._ranges)])
        self._range_p = weights / weights.sum()
        self.classes = list(SHAPES[:num_classes])
        self.report = DataReport(f"SyntheticDetection(seed={seed})", images=self.num_images)
        self._kept: dict[int, tuple[np.ndarray, dict[str, Any], _Layout]] = {}
        self._kept_bytes = 0

    def __getstate__(self) -> dict[str, Any]:  # rendered samples stay behind (DataLoader workers, spawn)
        return {**self.__dict__, "_kept": {}, "_kept_bytes": 0}

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_images={self.num_images}, image_size={self.image_size}, "
            f"num_classes={self.num_classes}, seed={self.seed}, sizes={self.sizes!r}, size_reference={self.size_reference})"
        )

    def _scales(self, rng: np.random.Generator, count: int) -> list[tuple[float | None, float]]:
        """``(scale, floor)`` of ``count`` objects, largest first: the intended √visible-area and the
        fewest visible pixels that keep the object in its COCO size range (both in image pixels);
        ``(None, 0)`` each for the log-uniform generator, which draws box sides instead."""
        if self.sizes == "log-uniform":
            return [(None, 0.0)] * count
        ranges = self._ranges
        kinds = rng.choice(len(ranges), size=count, p=self._range_p)
        to_image = min(self.image_size) / self.size_reference
        drawn = [(math.exp(rng.uniform(math.log(ranges[k][0]), math.log(ranges[k][1]))) * to_image, k) for k in kinds]
        return [(scale, (ranges[k][0] * to_image) ** 2 if k else 0.0) for scale, k in sorted(drawn, reverse=True)]

    def _streams(self, index: int) -> tuple[np.random.Generator, np.random.Generator]:
        layout, paint = np.random.SeedSequence([self.seed, self._check_index(index)]).spawn(2)
        return np.random.default_rng(layout), np.random.default_rng(paint)

    def _layout(self, rng: np.random.Generator) -> _Layout:
        height, width = self.image_size
        idmap = np.full((height, width), -1, dtype=np.int16)
        labels: list[int] = []
        regions: list[tuple[int, int, int, int]] = []
        full_area: list[int] = []
        visible: list[int] = []
        floors: list[float] = []  # the fewest visible pixels each placed object may keep
        log_lo, log_hi = math.log(MIN_SIDE), math.log(_MAX_SIDE_FRACTION * min(height, width))
        for scale, floor in self._scales(rng, int(rng.integers(1, self.max_objects + 1))):
            for _ in range(_PLACEMENT_TRIES):
                shape = int(rng.integers(self.num_classes))
                if scale is None:
                    side = math.exp(rng.uniform(log_lo, log_hi))
                else:  # the box side whose shape covers scale² pixels, at most the short image side
                    side = min(scale / math.sqrt(_FILL[shape]), float(min(height, width)))
                aspect = math.exp(rng.uniform(-math.log(1.5), math.log(1.5)))
                w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
                if scale is None:
                    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
                else:  # whole inside the image (where it fits), so that its size is what was drawn
                    cx = rng.uniform(min(w, width) / 2, width - min(w, width) / 2)
                    cy = rng.uniform(min(h, height) / 2, height - min(h, height) / 2)
                x0, x1 = math.floor(cx - w / 2), math.ceil(cx + w / 2)
                y0, y1 = math.floor(cy - h / 2), math.ceil(cy + h / 2)
                u = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / (w / 2)
                v = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / (h / 2)
                mask = _shape_mask(shape, u[None, :], v[:, None])
                total = int(mask.sum())
                cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, width), max(y0, 0), min(y1, height)
                if total == 0 or cx1 <= cx0 or cy1 <= cy0:
                    continue
                inside = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
                n_inside = int(inside.sum())
                if n_inside < max(MIN_VISIBLE * total, floor):
                    continue
                window = idmap[cy0:cy1, cx0:cx1]
                covered = window[inside]
                hidden = np.bincount(covered[covered >= 0], minlength=len(labels))
                if any(visible[j] - hidden[j] < max(MIN_VISIBLE * full_area[j], floors[j]) for j in np.flatnonzero(hidden)):
                    continue
                for j in np.flatnonzero(hidden):
                    visible[j] -= int(hidden[j])
                window[inside] = len(labels)
                labels.append(shape + 1)
                regions.append((cy0, cy1, cx0, cx1))
                full_area.append(total)
                visible.append(n_inside)
                floors.append(floor)
                break
        return _Layout(idmap, labels, regions, full_area)

    def _target(self, index: int, layout: _Layout) -> dict[str, Any]:
        boxes, areas = [], []
        for k, (y0, y1, x0, x1) in enumerate(layout.regions):
            own = layout.idmap[y0:y1, x0:x1] == k
            rows, cols = np.flatnonzero(own.any(1)), np.flatnonzero(own.any(0))
            boxes.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
            areas.append(float(own.sum()))
        return make_target(index, boxes, layout.labels, areas, [0] * len(boxes))

    def _paint(self, rng: np.random.Generator, layout: _Layout) -> np.ndarray:
        """The pixels ``uint8 [H, W, 3]`` of ``layout``."""
        height, width = self.image_size
        coarse = Image.fromarray(rng.integers(0, 256, (_FIELD, _FIELD, 3), dtype=np.uint8))
        field = coarse.resize((width, height), Image.Resampling.BILINEAR)  # a smooth colour field
        image = np.asarray(field, dtype=np.float32) * np.float32(0.6 / 255) + np.float32(0.2)
        # distractors under the objects: thin strokes and speckles, each in its own random colour
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        n_strokes, n_dots = int(rng.integers(3, 12)), int(rng.integers(10, 60))
        strokes = rng.random((n_strokes, 4)) * (width, height, width, height)
        stroke_widths = rng.integers(1, 4, n_strokes)
        for i in range(n_strokes):
            draw.line(strokes[i].tolist(), fill=1 + i, width=int(stroke_widths[i]))
        dots = rng.random((n_dots, 3)) * (width, height, 1.2) + (0.0, 0.0, 0.8)
        for j, (cx, cy, r) in enumerate(dots):
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1 + n_strokes + j)
        palette = rng.random((1 + n_strokes + n_dots, 3), dtype=np.float32)
        ys, xs = np.nonzero(np.asarray(canvas))
        image[ys, xs] = palette[np.asarray(canvas)[ys, xs]]
        # objects: a saturated colour, a texture, a soft vertical shading
        for k, (y0, y1, x0, x1) in enumerate(layout.regions):
            own = layout.idmap[y0:y1, x0:x1] == k
            colour = _hsv_to_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))
            dark = colour * np.float32(rng.uniform(0.35, 0.75))
            texture, period, angle = int(rng.integers(3)), rng.uniform(3.0, 9.0), rng.uniform(0, np.pi)
            gx = np.arange(x0, x1, dtype=np.float32)[None, :]
            gy = np.arange(y0, y1, dtype=np.float32)[:, None]
            if texture == 1:  # stripes
                second = np.sin((gx * np.cos(angle) + gy * np.sin(angle)) * (2 * np.pi / period)) > 0
            elif texture == 2:  # checks
                second = (np.floor(gx / period) + np.floor(gy / period)) % 2 == 1
            else:  # flat
                second = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            shade = np.float32(0.85) + np.float32(0.15) * (gy - y0) / max(y1 - y0, 1)
            pixels = np.where(second[..., None], dark, colour) * shade[..., None]
            np.copyto(image[y0:y1, x0:x1], pixels, where=own[..., None])
        image += (rng.random(image.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(_NOISE)
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def _masks(self, layout: _Layout) -> Tensor:
        ids = np.arange(len(layout.labels), dtype=np.int16)
        return torch.from_numpy((layout.idmap[None] == ids[:, None, None]).astype(np.uint8))

    def target(self, index: int) -> dict[str, Any]:
        layout_rng, _ = self._streams(index)
        return self._target(index, self._layout(layout_rng))

    def load_image(self, index: int) -> Tensor:
        return self._render(index)[0]

    def load(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        image, target, layout = self._render(index)
        if self.masks:
            target["masks"] = self._masks(layout)
        return image, target

    def _render(self, index: int) -> tuple[Tensor, dict[str, Any], _Layout]:
        """Image ``Tensor[3, H, W]``, target (without masks) and layout of sample ``index``."""
        pixels, target, layout = self._draw(index)
        return to_float_image(pixels), target, layout

    def _draw(self, index: int) -> tuple[np.ndarray, dict[str, Any], _Layout]:
        """Pixels (``uint8 [H, W, 3]``), target (without masks) and layout of sample ``index``: rendered
        once and kept while the dataset's kept samples stay under ``_KEEP_BYTES`` (training reads each
        image once per epoch; painting is a few percent of a CPU training step)."""
        index = int(self._check_index(index))
        kept = self._kept.get(index)
        if kept is not None:
            pixels, target, layout = kept
            return pixels, {k: v.clone() if isinstance(v, Tensor) else v for k, v in target.items()}, layout
        layout_rng, paint_rng = self._streams(index)
        layout = self._layout(layout_rng)
        pixels, target = self._paint(paint_rng, layout), self._target(index, layout)
        size = pixels.nbytes + layout.idmap.nbytes
        if self._kept_bytes + size <= _KEEP_BYTES:
            pixels.flags.writeable = layout.idmap.flags.writeable = False
            self._kept[index] = pixels, {k: v.clone() if isinstance(v, Tensor) else v for k, v in target.items()}, layout
            self._kept_bytes += size
        return pixels, target, layout

    def export_coco(
        self, directory: str | PathLike[str], *, image_format: str = "png", progress: bool = False
    ) -> tuple[Path, Path]:
        """Write the images and a COCO JSON (with RLE masks) so that ``CocoDataset`` reads the same data.

        Files: ``directory/images/<index:06d>.<image_format>`` and ``directory/annotations.json``. Image
        ids are the indices, category ids the labels. PNG keeps the pixels exactly; JPEG is smaller but
        lossy (the targets are exact either way).

        Returns:
            ``(ann_file, image_root)``, the arguments of :class:`CocoDataset`.
        """
        if image_format not in ("png", "jpg"):
            raise ValueError(f"image_format: expected 'png' or 'jpg', got {image_format!r}")
        root = Path(directory)
        image_root = root / "images"
        image_root.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        height, width = self.image_size
        for index in tqdm(range(len(self)), desc="export", unit="img", disable=not progress):
            pixels, target, layout = self._draw(index)
            name = f"{index:06d}.{image_format}"
            Image.fromarray(pixels).save(image_root / name, quality=95)
            images.append({"id": index, "file_name": name, "width": width, "height": height})
            masks = self._masks(layout).numpy()
            for k in range(len(layout.labels)):
                x1, y1, x2, y2 = target["boxes"][k].tolist()
                rle = mask_utils.encode(np.asfortranarray(masks[k]))
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": int(target["labels"][k]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(target["area"][k]),
                    "iscrowd": 0,
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                })
        categories = [{"id": label, "name": name} for label, name in enumerate(self.classes, start=1)]
        ann_file = root / "annotations.json"
        ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
        return ann_file, image_root
