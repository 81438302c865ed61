"""Detection transforms that take their randomness from an explicit generator, never the global RNG.

Every transform is called as ``transform(image, target, generator) -> (image, target)`` with
``image`` a ``Tensor[3, H, W]`` (or a PIL image before :class:`ToTensor`), ``target`` a detection target
(see :mod:`crnas.data.target`) and ``generator`` a CPU :class:`torch.Generator`. The datasets pass the
generator of :func:`crnas.data.seeding.augmentation_generator` for ``(seed, epoch, index)``, so a sample
is augmented the same way whichever process loads it and however many samples were drawn before: this is
what lets training resume bit-identically with any number of DataLoader workers.

Example::

    from crnas.data import SyntheticDetection, transforms as T
    ds = SyntheticDetection(64, transforms=T.Compose([T.RandomHorizontalFlip(0.5), T.Resize(320, 512)]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from crnas.data.image import to_float_image

__all__ = ["Compose", "RandomHorizontalFlip", "Resize", "ToTensor", "Transform"]

Target = dict[str, Any]


class Transform(Protocol):
    """``(image, target, generator) -> (image, target)``; must not touch the global RNG."""

    def __call__(self, image: Any, target: Target, generator: torch.Generator) -> tuple[Any, Target]: ...


class Compose:
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, target: Target, generator: torch.Generator) -> tuple[Any, Target]:
        for t in self.transforms:
            image, target = t(image, target, generator)
        return image, target

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms})"


class ToTensor:
    """PIL image (any mode) or uint8 tensor → ``Tensor[3, H, W]`` float32 in [0, 1]; float tensors pass."""

    def __call__(
        self, image: Image.Image | Tensor, target: Target, generator: torch.Generator
    ) -> tuple[Tensor, Target]:
        if isinstance(image, Image.Image):
            return to_float_image(np.asarray(image.convert("RGB"), dtype=np.uint8)), target
        if isinstance(image, Tensor):
            if image.dtype == torch.uint8:
                return image.float().div_(255.0), target
            if image.is_floating_point():
                return image, target
        raise TypeError(f"image: expected a PIL image or a uint8/float tensor, got {type(image).__name__}"
                        + (f" of dtype {image.dtype}" if isinstance(image, Tensor) else ""))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomHorizontalFlip:
    """Mirror the image, its boxes and masks left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        self.p = p

    def __call__(self, image: Tensor, target: Target, generator: torch.Generator) -> tuple[Tensor, Target]:
        if not torch.rand((), generator=generator).item() < self.p:
            return image, target
        width = image.shape[-1]
        target = dict(target)
        boxes = target["boxes"]
        target["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        if "masks" in target:
            target["masks"] = target["masks"].flip(-1)
        return image.flip(-1), target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class Resize:
    """Scale so the short side is ``min_size`` unless the long side would exceed ``max_size``.

    The same rule and interpolation as torchvision's ``GeneralizedRCNNTransform`` (bilinear image,
    nearest masks, output size ``floor(side · scale)``), so a detector built with the same
    ``min_size``/``max_size`` leaves the image as it is. A sequence ``min_size`` picks one value per
    sample with the generator (multi-scale training). Boxes are scaled per axis by the actual size ratio,
    ``area`` by the product of both ratios.
    """

    def __init__(self, min_size: int | Sequence[int], max_size: int) -> None:
        sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        if not sizes or any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"min_size: expected a positive int or a non-empty sequence of them, got {min_size}")
        if int(max_size) != max_size or max_size < max(sizes):
            raise ValueError(f"max_size: expected an int >= max(min_size) = {max(sizes)}, got {max_size}")
        self.min_size = tuple(int(s) for s in sizes)
        self.max_size = int(max_size)

    def __call__(self, image: Tensor, target: Target, generator: torch.Generator) -> tuple[Tensor, Target]:
        if len(self.min_size) == 1:
            min_size = self.min_size[0]
        else:
            min_size = self.min_size[int(torch.randint(len(self.min_size), (), generator=generator))]
        h, w = image.shape[-2:]
        scale = min(min_size / min(h, w), self.max_size / max(h, w))
        image = F.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]
        nh, nw = image.shape[-2:]
        rw, rh = nw / w, nh / h
        target = dict(target)
        target["boxes"] = target["boxes"] * torch.tensor([rw, rh, rw, rh], dtype=target["boxes"].dtype)
        if "area" in target:
            target["area"] = target["area"] * (rw * rh)
        if "masks" in target:
            masks = target["masks"]
            target["masks"] = F.interpolate(masks[:, None].float(), size=(nh, nw))[:, 0].to(masks.dtype)
        return image, target

    def __repr__(self) -> str:
        sizes = self.min_size[0] if len(self.min_size) == 1 else self.min_size
        return f"{type(self).__name__}(min_size={sizes}, max_size={self.max_size})"
