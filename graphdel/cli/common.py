"""What every ``graphdel`` subcommand shares: the ``--device`` and ``--json`` options, and printing a result
(JSON with ``--json``, else text with plain-text tables).

Imports nothing heavy: the parser is built from these on every start (``graphdel --help`` imports no
torch, tests/test_cli.py).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from graphdel.device import DEVICE_HELP  # torch-free

__all__ = ["DEFAULT_DEVICE"]


#: One default for every command that computes: a GPU when there is one (results on CPU are bit-identical
#: run to run; pass ``--device cpu`` to get them on a GPU machine).
DEFAULT_DEVICE = "auto"


def _add_device(p: argparse.ArgumentParser) -> None:
    # no argparse `choices`: cuda:N is a device too; main() checks the name (one line, exit 2) and each
    # command resolves it (graphdel.device.resolve_device) before any work
    p.add_argument("--device", default=DEFAULT_DEVICE, metavar="auto|cpu|cuda|cuda:N", help=DEVICE_HELP)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress and "
                   "warnings always go to stderr)")


def _emit(args, result: Any, human: str) -> None:
    """Print the command's result on stdout: ``result`` as JSON with ``--json``, else the ``human`` text."""
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else human)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned plain-text columns (two spaces apart) for the terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
