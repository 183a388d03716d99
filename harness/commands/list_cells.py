"""``ldmatrix list MATRIX``: the cells of a matrix and their expected outcomes."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.errors import LdmatrixError


def cmd_list(args: argparse.Namespace) -> int:
    matrix = matrix_mod.load(args.matrix)
    cells = matrix.select(args.k)
    if not cells:  # as `run -k` does: an empty list would read as "nothing to run", not as a typo
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    for cell in cells:
        expectation = matrix.expectation(cell)
        bug = f"  (known bug: {expectation.bug})" if expectation.bug else ""
        print(f"{cell.id}  -> {expectation.outcome.value}{bug}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="the cells of a matrix and their expected outcomes", parents=[options.SELECT])
    lst.add_argument("matrix", type=Path, help="the matrix YAML")
    lst.set_defaults(func=cmd_list)
