"""``ldmatrix bisect MATRIX CELL``: the first nix-ld commit where a cell's outcome changes
(harness/nixld/bisect.py), each step a real cell."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness.commands import options
from harness.commands.options import DEFAULT_OUT, find_cell
from harness.errors import LdmatrixError
from harness.progress import StderrProgress


def cmd_bisect(args: argparse.Namespace) -> int:
    import dataclasses

    from harness.cache import Cache
    from harness.nixld.bisect import bisect
    from harness.runners import get_runner
    from harness.results.outdir import RunDirectory
    from harness.session import RunOptions, header_record, provision_all, result_record, run_one

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
    with RunDirectory(options.out, matrix.name) as rundir:
        art = provision_all(matrix, (dataclasses.replace(cell, nix_ld=None),), options, progress)
        log = rundir.begin(header_record(matrix, runner.name))

        def run_cell(c, nix_ld):
            result = run_one(matrix, c, dataclasses.replace(art, nix_ld=nix_ld), runner, rundir)
            if result is None:  # an interrupted run (harness/interrupt.py)
                raise KeyboardInterrupt
            log.write(result_record(result))
            return result

        def show(step) -> None:
            print(step.line(), flush=True)

        try:
            result = bisect(matrix, cell, args.repo, args.old, args.new, run_cell, options.cache, progress, show)
        finally:
            log.close()
            runner.close()
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
