"""``ldmatrix parity A B [C]``: the same cells on other runners or glibc builds, compared."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options
from harness.commands.options import check_outputs
from harness.results import report


def cmd_parity(args: argparse.Namespace) -> int:
    from harness.results import parity

    check_outputs(args)
    loaded, matrix = parity.load(args.results, args.matrix)
    comparison = parity.compare(loaded, matrix)
    print(parity.text(comparison))
    if args.summary:
        report.append_summary(args.summary, parity.markdown(comparison))
    return 0 if comparison.clean else 1


def add(sub: argparse._SubParsersAction) -> None:
    par = sub.add_parser("parity", help="the same cells on other runners or glibc builds: a table of the cells "
                                        "whose outcome differs; exit status 1 unless the matrix names each difference",
                         parents=[options.SUMMARY])
    par.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                     help="two or three results.jsonl of one matrix (A B [C]): e.g. the sandbox on Debian's builds, "
                          "the sandbox on a pin, the nixos-vm runner on that pin")
    par.add_argument("--matrix", type=Path, help="the matrix whose differs: name the known differences (default: "
                                                 "the one the files' header names)")
    par.set_defaults(func=cmd_parity)
