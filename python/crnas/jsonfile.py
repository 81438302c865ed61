"""The JSON files crnas writes (result.json, run.json, audit.json, ...): written atomically, read back
through a record type with one clear error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["write_json", "read_record"]

T = TypeVar("T")


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON; a reader never sees a half-written file (temp file + rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_record(path: Path, what: str, parse: Callable[[Any], T]) -> T:
    """``parse`` of the JSON in ``path``; invalid JSON or a missing/mistyped field is a ``ValueError``
    naming the file and ``what`` was expected."""
    try:
        return parse(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected {what}, got {type(err).__name__}: {err}") from None
