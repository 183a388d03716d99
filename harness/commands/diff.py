"""``ldmatrix diff OLD NEW``: the cells that changed between two results files."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options
from harness.commands.options import check_outputs
from harness.results import file as results_file
from harness.results import guard, report


def cmd_diff(args: argparse.Namespace) -> int:
    check_outputs(args)
    old, new = results_file.read(args.old), results_file.read(args.new)
    comparison = guard.compare(old.results, new.results, old_name=str(args.old), new_name=str(args.new),
                               damaged=old.damaged + new.damaged)
    if old.header and new.header and old.matrix_name != new.matrix_name:
        print(f"note: {args.old} is a run of matrix {old.matrix_name}, {args.new} of {new.matrix_name}")
    print(guard.text(comparison))
    if args.summary:
        report.append_summary(args.summary, guard.markdown(comparison, f"ldmatrix diff: {new.matrix_name}"))
    return 0 if comparison.clean or args.report_only else 1


def add(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("diff", help="cells that changed between two results.jsonl; exit status 1 if any did",
                       parents=[options.SUMMARY])
    d.add_argument("old", type=Path, help="the earlier results.jsonl (e.g. a baseline)")
    d.add_argument("new", type=Path, help="the later results.jsonl")
    d.add_argument("--report-only", action="store_true",
                   help="exit 0 whatever changed (unreadable files still exit 2)")
    d.set_defaults(func=cmd_diff)
