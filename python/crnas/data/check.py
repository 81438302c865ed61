"""Checking detection data before training on it: a full check and a cheap pre-flight.

:func:`check_data` decodes every image (every pixel, not just the header), compares its size with the
annotations and summarises what a detector will see (:class:`DataCheck`: images, boxes kept, clipped
and dropped, objects per class and per image, and the object-size mix at the detector's resize by
COCO's area thresholds). ``crnas check-data`` prints it.

:func:`preflight` is what ``crnas search`` and ``crnas train`` run before training: every image file's
header (size against the annotations) and at least one object to train on and to score in each split.
It reads no pixels, so a truncated image is found by :func:`check_data`, not by the pre-flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from crnas.data.base import DetectionDataset, check_dataset
from crnas.data.image import image_size
from crnas.data.split import DetectionSubset
from crnas.data.target import filter_ignored

__all__ = ["DataCheck", "check_data", "preflight", "resize_scale", "SMALL", "MEDIUM"]

#: COCO's object-size thresholds on the area in pixels: small < 32², medium < 96², large otherwise.
SMALL, MEDIUM = 32**2, 96**2

_MAX_LISTED = 5


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The factor torchvision's ``GeneralizedRCNNTransform`` resizes a ``height × width`` image by:
    shorter side to ``min_size`` unless the longer side would exceed ``max_size``."""
    short, long = min(height, width), max(height, width)
    return min(min_size / short, max_size / long)


@dataclass
class DataCheck:
    """What :func:`check_data` found.

    Attributes:
        source: the annotation file or folder.
        images: images checked.
        negatives: images without any object.
        boxes: boxes in the checked images (clipped ones included).
        clipped, dropped: boxes clipped to the image, and dropped as degenerate or outside the image, while
            the dataset loaded its annotations (``dataset.report``).
        classes: objects per class name (crowd and difficult objects included).
        ignored: crowd and VOC difficult objects (evaluation ignores them, training drops them).
        max_objects: the most objects in one image, and ``densest`` the image that has them.
        sizes: objects per COCO size range (``small``, ``medium``, ``large``) at the resize
            ``min_size``/``max_size``.
        min_size, max_size: the detector resize the sizes refer to.
        errors: ``"file: problem"`` for every image that cannot be used.
    """

    source: str
    min_size: int
    max_size: int
    images: int = 0
    negatives: int = 0
    boxes: int = 0
    clipped: int = 0
    dropped: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    ignored: int = 0
    max_objects: int = 0
    densest: str = ""
    sizes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report, one fact per line."""
        total = sum(self.sizes.values()) or 1
        mix = ", ".join(f"{k} {self.sizes[k]} ({100 * self.sizes[k] / total:.0f}%)" for k in ("small", "medium", "large"))
        classes = ", ".join(f"{name} {count}" for name, count in sorted(self.classes.items(), key=lambda kv: (-kv[1], kv[0])))
        return [
            f"data: {self.source}",
            f"images: {self.images} ({self.negatives} without objects, {len(self.errors)} unreadable or inconsistent)",
            f"boxes: {self.boxes} kept ({self.clipped} clipped to the image), {self.dropped} dropped as degenerate or outside the image",
            f"classes ({len(self.classes)}): {classes or 'none'}" + (f"; {self.ignored} crowd/difficult (ignored)" if self.ignored else ""),
            f"objects per image: max {self.max_objects}" + (f" ({self.densest})" if self.densest else ""),
            f"object sizes at the detector's resize (shorter side {self.min_size}, longer at most {self.max_size}; COCO's 32², 96²): {mix}",
        ]


def _files(dataset: DetectionDataset) -> tuple[Any, Any] | None:
    """The underlying dataset and a map from an index of ``dataset`` to its index there; ``None`` when
    the images are not files (e.g. synthetic data)."""
    mapping: list[int] | None = None
    while isinstance(dataset, DetectionSubset):
        mapping = [dataset.indices[i] for i in mapping] if mapping is not None else list(dataset.indices)
        dataset = dataset.dataset
    if not hasattr(dataset, "image_path") or not hasattr(dataset, "annotated_size"):
        return None
    return dataset, (lambda i: mapping[i] if mapping is not None else i)


def _name(dataset: DetectionDataset, index: int) -> str:
    files = _files(dataset)
    if files is None:
        return f"image_id {dataset.target(index)['image_id']}"
    base, position = files
    return str(base.image_path(position(index)))


def check_data(dataset: DetectionDataset, *, min_size: int = 800, max_size: int = 1333) -> DataCheck:
    """Decode every image of ``dataset``, check it against its annotations, and summarise the data.

    An image that cannot be decoded or whose size disagrees with the annotations is listed in
    ``errors`` (the check goes on); the box accounting is the dataset's ``report``.
    """
    dataset = check_dataset(dataset)
    report = dataset.report
    result = DataCheck(str(report.source), min_size, max_size, clipped=report.clipped, dropped=report.dropped)
    result.images = len(dataset)
    for index in range(len(dataset)):
        target = dataset.target(index)
        try:
            image = dataset.load_image(index)
        except (OSError, ValueError) as e:
            result.errors.append(str(e))
            continue
        n = int(target["boxes"].shape[0])
        result.boxes += n
        result.negatives += n == 0
        if n > result.max_objects:
            result.max_objects, result.densest = n, _name(dataset, index)
        for label in target["labels"].tolist():
            result.classes[dataset.classes[label - 1]] += 1
        result.ignored += n - _trainable(target)
        scale = resize_scale(int(image.shape[1]), int(image.shape[2]), min_size, max_size)
        for area in (target["area"] * scale**2).tolist():
            result.sizes["small" if area < SMALL else "medium" if area < MEDIUM else "large"] += 1
    return result


def _trainable(target: dict[str, Any]) -> int:
    """The objects of ``target`` a detector trains on (crowd and difficult ones dropped)."""
    boxes = filter_ignored(target)["boxes"]
    assert isinstance(boxes, Tensor), "a target's boxes are a Tensor[K, 4] (crnas.data.target)"
    return int(boxes.shape[0])


def _trainable_objects(dataset: DetectionDataset) -> Iterator[int]:
    for index in range(len(dataset)):
        yield _trainable(dataset.target(index))


def preflight(splits: Sequence[tuple[str, DetectionDataset]]) -> None:
    """Cheap checks before training on the named ``splits`` (e.g. ``[("archtrain", a), ("archval", b)]``).

    Raises ``ValueError`` (one line) when a split has no object to train on or to score, or when an
    image file's size (read from its header) disagrees with its annotations. Image files that are
    missing were already refused when the dataset was built.
    """
    for name, dataset in splits:
        if sum(_trainable_objects(check_dataset(dataset))) == 0:
            raise ValueError(
                f"data: the {name} split ({len(dataset)} images of {dataset.report.source}) has no annotated object "
                "(crowd and difficult ones do not count); a search or training on it would learn and score nothing"
            )
    seen: set[Path] = set()
    for _, dataset in splits:
        files = _files(dataset)
        if files is None:
            continue
        base, position = files
        for index in range(len(dataset)):
            i = position(index)
            path = base.image_path(i)
            if path in seen:
                continue
            seen.add(path)
            expected = base.annotated_size(i)
            found = image_size(path)
            if found != expected:
                raise ValueError(
                    f"{path}: image is {found[1]}x{found[0]} (width x height), but {base.report.source} says "
                    f"{expected[1]}x{expected[0]}"
                )
