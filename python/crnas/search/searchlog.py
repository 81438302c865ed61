"""The JSON-lines logs of the searches (``stage_search.jsonl``, ``dilation_search.jsonl``): one record per
line, appended durably as each candidate or step is scored, read back to skip what is already done when
a killed search runs again."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from crnas import distributed

__all__ = ["read_log", "append_log", "truncate_torn_line"]

logger = logging.getLogger(__name__)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (a torn last line from a kill is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s: ignoring an incomplete last line", path)
            break
    return records


def append_log(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record durably (flushed and fsynced); rank 0 alone writes when distributed."""
    if not distributed.is_main():
        return
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_torn_line(path: str | os.PathLike[str]) -> None:
    """Drop an incomplete last line left by a kill, so new records start on a fresh line."""
    path = Path(path)
    if distributed.is_main() and path.is_file():
        text = path.read_text()
        if text and not text.endswith("\n"):
            path.write_text(text[: text.rfind("\n") + 1])
