"""``crnas`` command line: one module per subcommand, registered in :data:`COMMANDS`.

Usage mistakes and bad inputs print one line (and the subcommand's usage) and exit with status 2 /
1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from crnas._native import NativeCoreUnavailable
from crnas.cli.common import CLIUsageError

__all__ = ["main", "COMMANDS"]

#: Subcommand name -> module in ``crnas.cli`` defining ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "flops": "flops",
    "search": "search",
    "train": "train",
    "eval": "eval",
    "erf": "erf",
    "plot": "plot",
    "audit": "audit",
    "check-data": "check_data",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crnas", description="CR-NAS: computation reallocation for object detection.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"crnas.cli.{module_name}")
        summary = (module.__doc__ or "").strip().splitlines()[0]
        command = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run, command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except NativeCoreUnavailable as err:  # the subcommands' choices come from the core
        print(f"crnas: error: {err}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.run(args) or 0)
    except CLIUsageError as err:
        if args.debug:
            raise
        args.command_parser.print_usage(sys.stderr)
        print(f"crnas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        if args.debug:
            raise
        from crnas.cli.errors import one_line

        print(f"crnas {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
