"""``DetectionDataset``: the interface the loaders, the evaluation and the training loop rely on."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from crnas.data.report import DataReport
from crnas.data.seeding import augmentation_generator
from crnas.data.transforms import Transform

__all__ = ["DetectionDataset"]


class DetectionDataset(Dataset):
    """A detection dataset: ``dataset[i] -> (image Tensor[3, H, W] float in [0, 1], target dict)``.

    Subclasses implement :meth:`__len__`, :meth:`load_image` and :meth:`target`, and set ``classes``
    (``classes[label - 1]`` names label ``label``) and ``report``. The rest follows:

    * :meth:`load` is the un-augmented sample (evaluation uses it: torchvision detectors resize
      internally, and boxes are scored in the original image frame);
    * :meth:`get` applies ``transforms`` with an explicit generator (``make_loader`` passes the one for
      ``(seed, epoch, index)``); ``dataset[i]`` is ``get(i)`` with the generator of seed 0, epoch 0.

    ``label_to_cat_id`` maps labels to the ids evaluation reports (COCO category ids for COCO data,
    the identity otherwise).
    """

    classes: list[str]
    report: DataReport
    transforms: Transform | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def load_image(self, index: int) -> Tensor:
        """The image of sample ``index``: ``Tensor[3, H, W]`` float32 in [0, 1], not augmented."""
        raise NotImplementedError

    def target(self, index: int) -> dict[str, Any]:
        """The target of sample ``index`` without ``masks`` and without decoding the image."""
        raise NotImplementedError

    def load(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        """Image and full target (``masks`` included when enabled) of sample ``index``, not augmented."""
        return self.load_image(index), self.target(index)

    @property
    def label_to_cat_id(self) -> dict[int, int]:
        return {label: label for label in range(1, len(self.classes) + 1)}

    def get(self, index: int, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Sample ``index`` after ``transforms``, drawing any randomness from ``generator``."""
        image, target = self.load(index)
        if self.transforms is None:
            return image, target
        if generator is None:
            generator = augmentation_generator(0, 0, index)
        return self.transforms(image, target, generator)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        return self.get(index)

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"index: expected an int in [0, {len(self)}), got {index}")
        return index


def check_dataset(dataset: Any) -> DetectionDataset:
    """``dataset`` if it is a :class:`DetectionDataset`; a ``TypeError`` naming what it is otherwise."""
    if not isinstance(dataset, DetectionDataset):
        raise TypeError(f"dataset: expected a crnas.data.DetectionDataset, got {type(dataset).__name__}")
    return dataset


def check_indices(indices: Any, n: int) -> list[int]:
    """``indices`` as ints, each checked to lie in ``[0, n)`` (an ``IndexError`` lists the first bad ones)."""
    values = list(indices)
    bad = [i for i in values if not 0 <= i < n]
    if bad:
        raise IndexError(f"indices: expected ints in [0, {n}), got {bad[:5]}")
    return [int(i) for i in values]
