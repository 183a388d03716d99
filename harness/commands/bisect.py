"""``ldmatrix bisect MATRIX CELL``: the first nix-ld commit where a cell's outcome changes
(harness/nixld/bisect.py), each step a real cell."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.commands.options import DEFAULT_OUT, find_cell
from harness.errors import LdmatrixError
from harness.model import Cell, CellResult, StorePath
from harness.progress import StderrProgress


def cmd_bisect(args: argparse.Namespace) -> int:
    import dataclasses

    from harness.cache import Cache
    from harness.nixld.bisect import Step, bisect
    from harness.runners import get_runner
    from harness.session import Run, RunOptions

    progress = StderrProgress(quiet=args.quiet)
    matrix = matrix_mod.load(args.matrix)
    cell = find_cell(matrix, args.cell)
    if cell.nix_ld is None:
        raise LdmatrixError(f"{cell.id} does not use nix-ld: bisect a cell whose strategy uses nix-ld")
    runner = get_runner(args.runner or matrix.runner)
    reason = runner.unavailable()
    if reason is not None:
        raise LdmatrixError(f"runner {runner.name} unavailable: {reason}")
    options = RunOptions(runner=runner.name, out=args.out / "bisect", cache=Cache.default())
    # provisioned without nix-ld: each step builds its own
    with Run(matrix, options, progress, cells=(dataclasses.replace(cell, nix_ld=None),), whole=False,
             runner=runner) as run:
        provisioned = run.provisioned
        assert provisioned is not None

        def run_cell(c: Cell, nix_ld: Mapping[str, StorePath]) -> CellResult:
            return run.cell(c, dataclasses.replace(provisioned, nix_ld=nix_ld))

        def show(step: Step) -> None:
            print(step.line(), flush=True)

        result = bisect(matrix, cell, args.repo, args.old, args.new, run_cell, options.cache, progress, show)
    print(result.summary())
    return 0 if result.first else 1


def add(sub: argparse._SubParsersAction) -> None:
    bis = sub.add_parser("bisect", help="the first nix-ld commit where a cell's outcome changes",
                         parents=[options.RUNNER, options.out_option(DEFAULT_OUT, "results directory of each step's "
                                                                                  "cell: <out>/bisect"),
                                  options.QUIET])
    bis.add_argument("matrix", type=Path, help="the matrix YAML the cell is in")
    bis.add_argument("cell", help="a nix-ld cell of the matrix, e.g. c-hello.nix-ld-2.0.5.glibc-2.31.libs-default")
    bis.add_argument("--repo", type=Path, required=True, help="nix-ld's git repository or a bundle of it")
    bis.add_argument("--old", required=True, help="the older revision (tag or commit)")
    bis.add_argument("--new", required=True, help="the newer revision, whose outcome differs")
    bis.set_defaults(func=cmd_bisect)
