"""``CocoDataset``: a COCO-format annotation file and its image folder."""

from __future__ import annotations

import json
import logging
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor

from crnas.data.base import DetectionDataset
from crnas.data.image import read_annotated_image
from crnas.data.report import DataReport, sanitize_box
from crnas.data.target import make_target
from crnas.data.transforms import Transform

__all__ = ["CocoDataset"]

logger = logging.getLogger(__name__)


class CocoDataset(DetectionDataset):
    """COCO detection data: ``(image Tensor[3, H, W] in [0, 1], target)`` per entry of ``images``.

    Labels are contiguous: the categories sorted by id get labels ``1..C``; ``classes``,
    ``cat_id_to_label`` and ``label_to_cat_id`` keep the mapping. Crowd annotations are kept with
    ``iscrowd = 1`` (training drops them through :func:`crnas.data.filter_ignored`; evaluation ignores
    them as COCO does). Images without annotations are kept as negatives.

    Bad data (see :mod:`crnas.data.report`): a missing annotation file or image, malformed JSON, or an
    annotation that names an unknown image or category raises when the dataset is built, naming the file;
    an undecodable image, or one whose size disagrees with the JSON, raises when it is loaded. Boxes past
    the image are clipped and empty ones dropped, counted in ``report``.

    Args:
        ann_file: the annotation JSON (``images``, ``categories``, optional ``annotations``).
        image_root: folder that ``file_name`` entries are relative to.
        transforms: applied by :meth:`get` / ``dataset[i]`` (see :mod:`crnas.data.transforms`).
        masks: also return ``masks`` ``Tensor[K, H, W]`` uint8 decoded from polygons or RLE; every kept
            annotation must then have a ``segmentation``.
    """

    def __init__(
        self,
        ann_file: str | PathLike[str],
        image_root: str | PathLike[str],
        transforms: Transform | None = None,
        masks: bool = False,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_root = Path(image_root)
        self.transforms = transforms
        self.masks = masks
        self.report = DataReport(str(self.ann_file))
        data = self._read_json()
        self._index_categories(data["categories"])
        self._index_images(data["images"])
        self._index_annotations(data.get("annotations", []))
        self.report.images = len(self._files)
        self.report.negatives = sum(1 for labels in self._labels if len(labels) == 0)
        self.report.log()

    def _fail(self, message: str) -> ValueError:
        return ValueError(f"{self.ann_file}: {message}")

    def _read_json(self) -> dict[str, Any]:
        try:
            text = self.ann_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.ann_file}: annotation file does not exist") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise self._fail(f"malformed JSON ({e})") from e
        if not isinstance(data, dict):
            raise self._fail(f"expected a JSON object at the top level, got {type(data).__name__}")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise self._fail(f"expected a list under '{key}', got {type(data.get(key)).__name__}")
        if not isinstance(data.get("annotations", []), list):
            raise self._fail(f"expected a list under 'annotations', got {type(data['annotations']).__name__}")
        return data

    def _index_categories(self, categories: list[Any]) -> None:
        names: dict[int, str] = {}
        for i, cat in enumerate(categories):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
                raise self._fail(f"categories[{i}]: expected an object with an int 'id' and a 'name', got {cat!r}")
            if cat["id"] in names:
                raise self._fail(f"categories[{i}]: category id {cat['id']} appears twice")
            names[cat["id"]] = str(cat["name"])
        ids = sorted(names)
        self.classes = [names[i] for i in ids]
        self.cat_id_to_label = {cat_id: label for label, cat_id in enumerate(ids, start=1)}
        self._label_to_cat_id = {label: cat_id for cat_id, label in self.cat_id_to_label.items()}

    @property
    def label_to_cat_id(self) -> dict[int, int]:
        return self._label_to_cat_id

    def _index_images(self, images: list[Any]) -> None:
        self.image_ids: list[int] = []
        self._files: list[Path] = []
        self._sizes: list[tuple[int, int]] = []
        self._position: dict[int, int] = {}
        for i, img in enumerate(images):
            ok = isinstance(img, dict) and isinstance(img.get("id"), int) and isinstance(img.get("file_name"), str)
            if not ok or not all(isinstance(img.get(k), int) and img[k] > 0 for k in ("width", "height")):
                raise self._fail(
                    f"images[{i}]: expected an object with int 'id', str 'file_name' and positive int "
                    f"'width'/'height', got {img!r}"
                )
            if img["id"] in self._position:
                raise self._fail(f"images[{i}]: image id {img['id']} appears twice")
            path = self.image_root / img["file_name"]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: image file does not exist (image id {img['id']} in {self.ann_file})")
            self._position[img["id"]] = len(self.image_ids)
            self.image_ids.append(img["id"])
            self._files.append(path)
            self._sizes.append((img["height"], img["width"]))

    def _index_annotations(self, annotations: list[Any]) -> None:
        n = len(self.image_ids)
        boxes: list[list[tuple[float, float, float, float]]] = [[] for _ in range(n)]
        labels: list[list[int]] = [[] for _ in range(n)]
        areas: list[list[float]] = [[] for _ in range(n)]
        crowd: list[list[int]] = [[] for _ in range(n)]
        self._segmentations: list[list[Any]] = [[] for _ in range(n)]
        for i, ann in enumerate(annotations):
            name = f"annotation {ann['id']}" if isinstance(ann, dict) and "id" in ann else f"annotations[{i}]"
            if not isinstance(ann, dict):
                raise self._fail(f"{name}: expected an object, got {ann!r}")
            if ann.get("image_id") not in self._position:
                raise self._fail(f"{name} has image_id {ann.get('image_id')!r}, which is not in 'images'")
            if ann.get("category_id") not in self.cat_id_to_label:
                raise self._fail(f"{name} has category_id {ann.get('category_id')!r}, which is not in 'categories'")
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                raise self._fail(f"{name}: expected 'bbox' to be [x, y, width, height], got {bbox!r}")
            if self.masks and "segmentation" not in ann:
                raise self._fail(f"{name} has no 'segmentation', but masks=True")
            pos = self._position[ann["image_id"]]
            height, width = self._sizes[pos]
            x, y, w, h = (float(v) for v in bbox)
            where = f"{self.ann_file}: {name} ({self._files[pos].name})"
            box = sanitize_box((x, y, x + w, y + h), width, height, self.report, where)
            if box is None:
                continue
            boxes[pos].append(box)
            labels[pos].append(self.cat_id_to_label[ann["category_id"]])
            areas[pos].append(float(ann.get("area", (box[2] - box[0]) * (box[3] - box[1]))))
            crowd[pos].append(int(bool(ann.get("iscrowd", 0))))
            self._segmentations[pos].append((name, ann.get("segmentation")))
        self._boxes, self._labels, self._areas, self._crowd = boxes, labels, areas, crowd

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        return self._files[self._check_index(index)]

    def annotated_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of image ``index`` as the annotations give it."""
        return self._sizes[self._check_index(index)]

    def target(self, index: int) -> dict[str, Any]:
        i = self._check_index(index)
        return make_target(self.image_ids[i], self._boxes[i], self._labels[i], self._areas[i], self._crowd[i])

    def load_image(self, index: int) -> Tensor:
        i = self._check_index(index)
        return read_annotated_image(self._files[i], self._sizes[i], self.ann_file, self.report)

    def load(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        image, target = self.load_image(index), self.target(index)
        if self.masks:
            height, width = self._sizes[index]
            target["masks"] = self._decode_masks(index, height, width)
        return image, target

    def _decode_masks(self, index: int, height: int, width: int) -> Tensor:
        rles = []
        for name, segm in self._segmentations[index]:
            try:
                if isinstance(segm, list):  # polygons
                    rles.append(mask_utils.merge(mask_utils.frPyObjects(segm, height, width)))
                elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):  # uncompressed RLE
                    rles.append(mask_utils.frPyObjects(segm, height, width))
                elif isinstance(segm, dict) and isinstance(segm.get("counts"), (str, bytes)):  # compressed RLE
                    if list(segm.get("size", [])) != [height, width]:
                        raise ValueError(f"RLE size {segm.get('size')} is not the image's [{height}, {width}]")
                    rles.append(segm)
                else:
                    raise TypeError(f"expected polygons or RLE, got {type(segm).__name__}")
            except (TypeError, ValueError, KeyError, IndexError) as e:
                raise self._fail(f"{name}: cannot decode 'segmentation' ({type(e).__name__}: {e})") from e
        if not rles:
            return torch.zeros((0, height, width), dtype=torch.uint8)
        with warnings.catch_warnings():
            # pycocotools 2.0.x's Cython decoder trips NumPy 2's __array__(copy=...) deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            masks = mask_utils.decode(rles)  # [H, W, K]
        return torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1)))
