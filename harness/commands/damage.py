"""``ldmatrix damage RESULTS``: what nix-ld damaged, per way of starting the program (Markdown)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.results import file as results_file
from harness.results import report


def cmd_damage(args: argparse.Namespace) -> int:
    print(report.damage_table(results_file.read(args.results).results, args.glibc))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    dmg = sub.add_parser("damage", help="what nix-ld damaged, per way of starting the program (Markdown)")
    dmg.add_argument("results", type=Path, help="a results.jsonl of a matrix with start-up printer cells")
    dmg.add_argument("--glibc", default="2.36", help="the glibc column to read (default 2.36)")
    dmg.set_defaults(func=cmd_damage)
