"""The ``ldmatrix`` commands, one module each; ``parser()`` puts them together (harness/cli.py runs it).

Each module has ``cmd_<name>(args) -> exit status`` and ``add(subparsers)``, which declares its
arguments and sets ``func``; the options several commands share are declared once, as argparse
parents, in harness/commands/options.py.
"""

from __future__ import annotations

import argparse

from harness.commands import (
    bisect,
    cache,
    ci_matrix,
    damage,
    diff,
    guard,
    images,
    inspect,
    list_cells,
    lock,
    merge,
    parity,
    pins,
    run,
    show,
)
from harness.commands.options import OneLineParser

# in the order ``ldmatrix --help`` lists them
COMMANDS = (run, show, list_cells, lock, diff, parity, inspect, damage, bisect, images, cache, pins, guard, merge,
            ci_matrix)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="ldmatrix", description="Does a binary built outside Nix run on NixOS?")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return p
