"""``result.json``, the record of a finished search (written by :func:`crnas.search.driver.run_search`).

Keys: ``architecture`` and ``baseline`` (Architecture dicts), ``macs`` (found / baseline MACs with the
counting convention), ``stage_search`` (``best``, every scored ``allocations`` row, ``confidence``),
``dilation_search`` (method, ``dilations``, greedy ``steps`` with their ``confidence``, or the
differentiable ``probabilities``), ``space``, ``data`` (spec, split sizes, fingerprint), ``config``,
``seeds`` and ``versions``. AP values are fractions in [0, 1]. See docs/audit.md for ``confidence``.
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["load_result", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("architecture", "baseline", "macs", "stage_search", "dilation_search")


def load_result(path: str | PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """A search result: a ``result.json`` path, the directory holding it, or the dict itself."""
    if isinstance(path, dict):
        result = path
    else:
        path = Path(path)
        if path.is_dir():
            path = path / "result.json"
        if not path.is_file():
            raise FileNotFoundError(f"result: expected a result.json or a search directory holding one, got {str(path)!r}")
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: expected a search result JSON, got invalid JSON ({err})") from None
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ValueError(f"result: expected the keys {list(REQUIRED_KEYS)} of a search result, missing {missing}")
    return result
