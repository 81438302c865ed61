"""Figures of a search result: allocation sketch (baseline vs found), MACs per stage, the stage
search's scored allocations and the dilation search's progress, as PNGs.

Writes allocation.png, macs.png, stage_search.png and dilation_search.png into --out (default: a
figures/ folder beside the result.json), and audit.png (supernet AP vs stand-alone AP) when
`crnas audit` has written audit/audit.json beside it.

Examples:
  crnas plot runs/search
  crnas plot notebooks/example/tiny_resnet50_result.json --out /tmp/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="a search directory or its result.json")
    parser.add_argument("--out", type=Path, help="output directory (default: RESULT_DIR/figures)")
    parser.add_argument("--dpi", type=int, default=100)


def run(args: argparse.Namespace) -> int:
    from crnas.analysis import load_result, plot_search

    result = load_result(args.result)
    out = args.out or (args.result if args.result.is_dir() else args.result.parent) / "figures"
    search_dir = args.result if args.result.is_dir() else args.result.parent
    for name, path in plot_search(result, out, dpi=args.dpi, audit_dir=search_dir / "audit").items():
        print(f"{name}: {path}")
    return 0
