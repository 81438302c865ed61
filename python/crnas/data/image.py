"""Reading an image file into a float RGB tensor, with errors that name the file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from crnas.data.report import DataReport

__all__ = ["image_size", "read_image", "to_float_image"]


def to_float_image(pixels: np.ndarray) -> Tensor:
    """``uint8 [H, W, 3]`` → ``Tensor[3, H, W]`` float32 in [0, 1] (``pixel / 255``, exactly).

    Done in NumPy: a tiny element-wise op through torch's intra-op thread pool costs more than the work
    when the pool is busy (as it is in DataLoader worker processes and training loops).
    """
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0))


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)``; a missing file raises ``FileNotFoundError`` and an undecodable one
    (while opening or inside the ``with`` block) ``OSError``, both naming the file."""
    try:
        with Image.open(path) as img:
            yield img
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise OSError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e


def read_image(path: Path, report: DataReport | None = None) -> Tensor:
    """Decode ``path`` into ``Tensor[3, H, W]`` float32 in [0, 1].

    Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha is dropped) and counted in
    ``report.converted``. A missing file raises ``FileNotFoundError``, an undecodable one ``OSError``;
    both name the file.
    """
    with _opened(path) as img:
        mode = img.mode
        rgb = img.convert("RGB") if mode != "RGB" else img
        array = np.asarray(rgb, dtype=np.uint8)
    if mode != "RGB" and report is not None:
        report.converted[mode] += 1
    return to_float_image(array)


def read_annotated_image(path: Path, size: tuple[int, int], source: object, report: DataReport | None = None) -> Tensor:
    """:func:`read_image`, checked against the ``(height, width)`` that ``source`` (the annotation file) gives."""
    image = read_image(path, report)
    height, width = size
    if tuple(image.shape[1:]) != (height, width):
        raise ValueError(
            f"{path}: image is {image.shape[2]}x{image.shape[1]} (width x height), but {source} says {width}x{height}"
        )
    return image


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of ``path`` from its header, without decoding the pixels."""
    with _opened(path) as img:
        width, height = img.size
    return height, width
