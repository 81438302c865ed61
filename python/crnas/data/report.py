"""Bad-data accounting: what a dataset clipped, dropped or converted while loading, and why.

Nothing is dropped silently. A box that reaches past the image is clipped to it; a box that is empty
after clipping (zero or negative width/height, NaN, or entirely outside the image) is dropped. Both are
counted in a :class:`DataReport`, with the first few cases spelled out, and summarised in one
``logging.warning`` line when a dataset finishes indexing. Images without objects are kept (negatives)
and counted; grayscale, palette or RGBA images are converted to RGB and counted per mode.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DataReport", "sanitize_box"]

logger = logging.getLogger(__name__)

_MAX_EXAMPLES = 5


@dataclass
class DataReport:
    """Counts of what a dataset did to its raw annotations.

    Attributes:
        source: the annotation file or folder.
        images: images indexed.
        negatives: images kept without any object.
        boxes: boxes kept (clipped ones included).
        clipped: boxes clipped to the image.
        dropped: boxes dropped as degenerate or outside the image.
        converted: images converted to RGB, per original PIL mode (counted in the process that read the
            image, i.e. the main process only when a DataLoader has ``num_workers=0``).
        examples: the first few clipped/dropped cases, each naming the file and the annotation.
    """

    source: str
    images: int = 0
    negatives: int = 0
    boxes: int = 0
    clipped: int = 0
    dropped: int = 0
    converted: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        """Keep ``message`` as an example if fewer than a handful are kept already."""
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(message)

    def summary(self) -> str:
        """One line: images, negatives, boxes, clipped and dropped counts."""
        return (
            f"{self.source}: {self.images} images ({self.negatives} without objects), {self.boxes} boxes kept, "
            f"{self.clipped} clipped to the image, {self.dropped} dropped as degenerate or outside the image"
        )

    def log(self) -> None:
        """Log the summary: a warning with examples when boxes were clipped or dropped, info otherwise."""
        if self.clipped or self.dropped:
            logger.warning("%s; e.g. %s", self.summary(), "; ".join(self.examples))
        else:
            logger.info("%s", self.summary())


def sanitize_box(
    box: Sequence[float], width: int, height: int, report: DataReport, where: str
) -> tuple[float, float, float, float] | None:
    """Clip an ``xyxy`` box to ``[0, width] × [0, height]``; ``None`` when nothing of it is left.

    ``where`` names the file and annotation in the report's examples.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        report.dropped += 1
        report.note(f"{where}: dropped non-finite box {[x1, y1, x2, y2]}")
        return None
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 <= cx1 or cy2 <= cy1:
        report.dropped += 1
        report.note(f"{where}: dropped empty box {[x1, y1, x2, y2]} (image {width}x{height})")
        return None
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        report.clipped += 1
        report.note(f"{where}: clipped box {[x1, y1, x2, y2]} to the {width}x{height} image")
    report.boxes += 1
    return cx1, cy1, cx2, cy2
