"""``ldmatrix merge RESULTS...``: the results of a run spread over machines as one run
(harness/results/merge.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options
from harness.commands.options import DEFAULT_OUT, check_outputs
from harness.commands.run import present
from harness.errors import LdmatrixError
from harness.results.merge import merge, write
from harness.results.outdir import RunDirectory


def cmd_merge(args: argparse.Namespace) -> int:
    check_outputs(args)
    merged = merge(args.results, args.matrix)
    target = (args.out / merged.name).absolute()
    for path in args.results:
        if path.absolute().parent == target:  # a new run there starts afresh: that shard's folders would go
            raise LdmatrixError(f"merge: --out {args.out} holds {path}, one of the shards; "
                                "give the merge its own --out")
    with RunDirectory(args.out, merged.name) as rundir:
        results = write(merged, rundir)
    return present(args, merged.name, results, rundir.results_file)


def add(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("merge", help="the results of N shards (run --shard K/N) as one run: its results, "
                                            "cell folders and grid; exit status 1 if a cell is not as expected",
                              parents=[options.out_option(DEFAULT_OUT, "results directory of the merged run: "
                                                                       "<out>/<matrix>/"),
                                       options.GRID_FILES, options.SUMMARY])
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                   help="every shard's results.jsonl (its cells/ beside it are copied too)")
    p.add_argument("--matrix", type=Path, help="the matrix, for the cells' order (default: the one the files' "
                                               "header names)")
    p.set_defaults(func=cmd_merge, baseline=None, k=None)
    return p
