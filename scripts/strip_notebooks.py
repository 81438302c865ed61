"""Strip Jupyter notebooks for git: outputs, execution counts and run-specific metadata.

Usage:
  python scripts/strip_notebooks.py notebooks/*.ipynb          # rewrite in place
  python scripts/strip_notebooks.py --check notebooks/*.ipynb  # exit 1 and list those not stripped

Plain JSON (no nbformat needed), written the way nbformat writes notebooks (indent 1, sorted keys),
so a stripped notebook is byte-stable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Cell metadata written by front ends when a cell runs or is viewed.
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def strip(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook without outputs, execution counts, run-specific cell metadata, widget state and
    language_info beyond its name."""
    cells = []
    for cell in notebook.get("cells", []):
        cell = dict(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k not in VOLATILE_CELL_METADATA}
        cells.append(cell)
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k != "widgets"}
    if "language_info" in metadata:
        metadata["language_info"] = {"name": metadata["language_info"].get("name", "python")}
    return {**notebook, "cells": cells, "metadata": metadata}


def dumps(notebook: dict[str, Any]) -> str:
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not stripped")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        text = path.read_text(encoding="utf-8")
        stripped = dumps(strip(json.loads(text)))
        if stripped != text:
            dirty.append(path)
            if not args.check:
                path.write_text(stripped, encoding="utf-8")
    for path in dirty:
        print(f"{path}: {'not stripped' if args.check else 'stripped'}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
