"""``VOCDataset``: Pascal VOC XML annotations, in the VOC layout or beside the images in one folder."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crnas.data.base import DetectionDataset
from crnas.data.image import image_size, read_annotated_image
from crnas.data.report import DataReport, sanitize_box
from crnas.data.target import make_target
from crnas.data.transforms import Transform

__all__ = ["VOCDataset"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG")
_BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class _Object:
    name: str
    box: tuple[float, float, float, float]
    difficult: bool


class VOCDataset(DetectionDataset):
    """Pascal VOC detection data: ``(image Tensor[3, H, W] in [0, 1], target)`` per XML file.

    Two layouts are accepted:

    * VOC: ``root/Annotations/<id>.xml``, ``root/JPEGImages/<id>.jpg`` and, when ``image_set`` is
      given, the id list ``root/ImageSets/Main/<image_set>.txt`` (all XML files otherwise);
    * flat: every ``root/*.xml`` next to its image (the XML's ``<filename>``, or the same stem with a
      ``.jpg/.jpeg/.png/.bmp`` suffix).

    VOC boxes are 1-based inclusive pixel indices; they become pixel edges
    (``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``, the convention of detectron2). Objects
    marked ``difficult`` are kept with ``target["difficult"] = True``; training drops them
    (:func:`crnas.data.filter_ignored`) and evaluation ignores them, as the VOC devkit does. ``area``
    is the box area. ``image_id`` is the position in the dataset; ``ids`` holds the file stems.

    Args:
        root: the VOC folder (``VOC2007``) or a flat folder of images and XML files.
        image_set: ``train``, ``val``, ``trainval``, ``test``... (VOC layout only).
        classes: class names in label order (label = position + 1). ``None`` infers them from the
            annotations, sorted, and logs them; given, an object of another class is an error.
        transforms: applied by :meth:`get` / ``dataset[i]``.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        image_set: str | None = None,
        classes: Sequence[str] | None = None,
        transforms: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.transforms = transforms
        self.report = DataReport(str(self.root))
        xml_files, image_dir = self._find_annotations(image_set)
        self.ids = [x.stem for x in xml_files]
        self._xml_files = xml_files
        self._files: list[Path] = []
        self._sizes: list[tuple[int, int]] = []
        parsed: list[list[_Object]] = []
        for xml in xml_files:
            size, filename, objects = self._parse(xml)
            path = self._image_path(xml, image_dir, filename)
            self._files.append(path)
            self._sizes.append(size if size is not None else image_size(path))
            parsed.append(objects)
        names = sorted({o.name for objects in parsed for o in objects})
        if classes is None:
            self.classes = names
            logger.info("%s: %d classes inferred from the annotations: %s", self.root, len(names), ", ".join(names))
        else:
            self.classes = list(classes)
            if len(set(self.classes)) != len(self.classes):
                raise ValueError(f"classes: expected unique names, got {self.classes}")
        label = {name: i for i, name in enumerate(self.classes, start=1)}
        self._boxes: list[list[tuple[float, float, float, float]]] = []
        self._labels: list[list[int]] = []
        self._difficult: list[list[bool]] = []
        for xml, (height, width), objects in zip(xml_files, self._sizes, parsed):
            boxes, labels, difficult = [], [], []
            for j, o in enumerate(objects):
                if o.name not in label:
                    raise ValueError(f"{xml}: object {j} has class {o.name!r}, which is not in classes {self.classes}")
                box = sanitize_box(o.box, width, height, self.report, f"{xml}: object {j}")
                if box is not None:
                    boxes.append(box)
                    labels.append(label[o.name])
                    difficult.append(o.difficult)
            self._boxes.append(boxes)
            self._labels.append(labels)
            self._difficult.append(difficult)
        self.report.images = len(self.ids)
        self.report.negatives = sum(1 for labels in self._labels if not labels)
        self.report.log()

    def _find_annotations(self, image_set: str | None) -> tuple[list[Path], Path]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset folder does not exist")
        ann_dir = self.root / "Annotations"
        if ann_dir.is_dir():
            if image_set is None:
                xml_files = sorted(ann_dir.glob("*.xml"))
            else:
                list_file = self.root / "ImageSets" / "Main" / f"{image_set}.txt"
                try:
                    lines = list_file.read_text(encoding="utf-8").splitlines()
                except FileNotFoundError:
                    raise FileNotFoundError(f"{list_file}: image set file does not exist") from None
                xml_files = [ann_dir / f"{line.split()[0]}.xml" for line in lines if line.strip()]
                for xml in xml_files:
                    if not xml.is_file():
                        raise FileNotFoundError(f"{xml}: annotation file does not exist (listed in {list_file})")
            image_dir = self.root / "JPEGImages"
        else:
            if image_set is not None:
                raise ValueError(
                    f"image_set: only valid with the VOC layout ({ann_dir} does not exist), got {image_set!r}"
                )
            xml_files = sorted(self.root.glob("*.xml"))
            image_dir = self.root
        if not xml_files:
            raise ValueError(
                f"{self.root}: no .xml annotations found (expected {ann_dir}/*.xml or *.xml beside the images)"
            )
        return xml_files, image_dir

    @staticmethod
    def _parse(xml: Path) -> tuple[tuple[int, int] | None, str | None, list[_Object]]:
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as e:
            raise ValueError(f"{xml}: malformed XML ({e})") from e
        size = None
        width, height = root.findtext("size/width"), root.findtext("size/height")
        if width is not None and height is not None:
            try:
                size = (int(float(height)), int(float(width)))
            except ValueError:
                raise ValueError(f"{xml}: expected numbers in <size>, got width={width!r} height={height!r}") from None
            if min(size) <= 0:  # some tools write 0 when they did not know: read the image instead
                size = None
        objects = []
        for j, obj in enumerate(root.iter("object")):
            name = (obj.findtext("name") or "").strip()
            if not name:
                raise ValueError(f"{xml}: object {j} has no <name>")
            try:
                xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}", "")) for k in _BOX_KEYS)
            except ValueError:
                raise ValueError(f"{xml}: object {j} ({name}): expected numeric <bndbox> xmin/ymin/xmax/ymax") from None
            difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
            objects.append(_Object(name, (xmin - 1.0, ymin - 1.0, xmax, ymax), difficult))
        filename = root.findtext("filename")
        return size, filename.strip() if filename else None, objects

    @staticmethod
    def _image_path(xml: Path, image_dir: Path, filename: str | None) -> Path:
        candidates = [image_dir / filename] if filename else []
        candidates += [image_dir / (xml.stem + suffix) for suffix in _IMAGE_SUFFIXES]
        for path in candidates:
            if path.is_file():
                return path
        raise FileNotFoundError(f"{candidates[0]}: image file does not exist (annotated by {xml})")

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self._files[self._check_index(index)]

    def annotated_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index`` as the annotations give it."""
        return self._sizes[self._check_index(index)]

    def target(self, index: int) -> dict[str, Any]:
        i = self._check_index(index)
        boxes = self._boxes[i]
        area = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes]
        target = make_target(i, boxes, self._labels[i], area, [0] * len(boxes))
        target["difficult"] = torch.tensor(self._difficult[i], dtype=torch.bool).reshape(-1)
        return target

    def load_image(self, index: int) -> Tensor:
        i = self._check_index(index)
        return read_annotated_image(self._files[i], self._sizes[i], self._xml_files[i], self.report)
