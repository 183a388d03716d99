"""``--shard K/N``: a deterministic slice of a matrix's cells, the N slices balanced by expected cost.

Every machine of a fan-out computes the same slices from the same matrix (nothing here reads the
machine, the clock or earlier runs), so N jobs each running ``--shard K/N`` run every selected cell
exactly once; ``ldmatrix merge`` (harness/results/merge.py) puts their results back together.

A cell's expected cost is counted in plain sandboxed starts (about 40 ms on a 2-core machine):
one for the sandbox, more for what the cell starts on the way (a login shell, a Python, a parent
program, nix-ld), and the whole time limit for a cell its matrix expects to time out. The slices
are filled greedily, the costliest cells first, each into the slice with the least so far (ties:
the lower K, then the cell's place in the matrix); each slice keeps the matrix's order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import LdmatrixError
from harness.matrix import Matrix
from harness.model import Cell, Launch, Outcome, Strategy

START_SECONDS = 0.04  # one plain sandboxed start: the unit of cost
_LAUNCH_COST = {Launch.PYTHON: 3.0, Launch.BASH_LOGIN: 0.6, Launch.BASH_PATH: 0.6, Launch.DOT_SLASH: 0.6,
                Launch.ENV_I: 0.2}


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """``2of4``: for file and artifact names, which take no slash."""
        return f"{self.index}of{self.count}"


def parse(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; anything else is one line saying the form."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise LdmatrixError(f"--shard {text!r}: expected K/N, e.g. 2/4 (the second of four slices)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise LdmatrixError(f"--shard {text}: K must be from 1 to N (N >= 1), e.g. 1/{max(count, 1)}")
    return Shard(index, count)


def cost(matrix: Matrix, cell: Cell) -> float:
    """What running ``cell`` is expected to take, in plain sandboxed starts."""
    if matrix.expectation(cell).outcome is Outcome.TIMEOUT:
        return matrix.timeout / START_SECONDS
    spec = matrix.binaries[cell.binary]
    total = 1.0 + _LAUNCH_COST.get(cell.launch, 0.0)
    if Strategy.NIX_LD in cell.strategy:
        total += 0.5
    if spec.child:  # a parent program that starts the foreign one
        total += 0.5
    if spec.artifact is not None:  # a real program, doing its real work
        total += 1.0
    return total


def slices(matrix: Matrix, cells: Sequence[Cell], count: int) -> list[tuple[Cell, ...]]:
    """``cells`` in ``count`` slices of about equal expected cost, each in the matrix's order."""
    position = {cell.id: i for i, cell in enumerate(cells)}
    costs = {cell.id: cost(matrix, cell) for cell in cells}
    loads = [0.0] * count
    chosen: list[list[Cell]] = [[] for _ in range(count)]
    for cell in sorted(cells, key=lambda c: (-costs[c.id], position[c.id])):
        lightest = min(range(count), key=lambda k: (loads[k], k))
        loads[lightest] += costs[cell.id]
        chosen[lightest].append(cell)
    return [tuple(sorted(part, key=lambda c: position[c.id])) for part in chosen]


def select(matrix: Matrix, cells: Sequence[Cell], shard: Shard) -> tuple[Cell, ...]:
    return slices(matrix, cells, shard.count)[shard.index - 1]
