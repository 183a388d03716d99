"""``ldmatrix parity A B [C]``: the same cells on other runners and glibc builds, compared.

Each results file is a side (A, B, C); each glibc build in it a column (``A glibc-2.36``, ``C
nixos-24.11``), known by its kinds: its runner (sandbox, docker, nixos-vm) and its build's kind
(debian, nixpkgs). Cells are matched by their id without the build (``Cell.key``). Two columns of
different files are compared where they hold the same build (a difference between runners) or one
holds Debian's build and the other a pin's (a difference between builds); two Debian versions, or
two pins, are the matrix's glibc axis and its expectations' business, not parity's. A cell's state
is its outcome, ``skipped``, or ``absent`` when its file has no result for it at all.

A difference is accepted only when the matrix names it: a ``differs`` entry whose ``between``
holds one kind of each column and whose ``when`` holds for one of the two cells. Everything else,
and every damaged line, makes the comparison unclean (exit status 1); so does a comparison that
compared nothing. No outcome is assumed: a file that lacks a cell shows ``absent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import matrix as matrix_mod
from harness.errors import LdmatrixError
from harness.model import Cell, CellResult, Launch
from harness.results.file import DamagedLine, ResultsFile
from harness.results.report import markdown_cell

SKIPPED, ABSENT = "skipped", "absent"
SIDE_NAMES = "ABC"
MARKDOWN_ROWS = 200  # a job summary has a size limit


@dataclass(frozen=True)
class Column:
    side: str  # "A"
    runner: str  # the runner its file names
    build: str  # "glibc-2.36", "nixos-24.11"
    nixpkgs: bool  # the build is a pin's

    @property
    def label(self) -> str:
        return f"{self.side} {self.build}"

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset({self.runner, "nixpkgs" if self.nixpkgs else "debian"})

    def comparable(self, other: Column) -> bool:
        return self.side != other.side and (self.build == other.build or self.nixpkgs != other.nixpkgs)


@dataclass(frozen=True)
class Row:
    """A cell whose state differs between two compared columns."""

    key: str
    states: tuple[str, ...]  # per Parity.columns: an outcome, skipped, absent, or "" (not on that build)
    named: tuple[str, ...]  # the reasons (with their line) that name its differences
    unnamed: tuple[str, ...]  # the differences no entry names: "B nixos-24.11 ok / C nixos-24.11 crash"


@dataclass(frozen=True)
class Parity:
    matrix: str
    files: tuple[tuple[str, str, str], ...]  # (side, path, runner)
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    compared: int  # cells compared in at least one pair of columns
    damaged: tuple[DamagedLine, ...]
    uncomparable: tuple[str, ...] = ()  # results whose axes do not make a cell of the matrix

    @property
    def clean(self) -> bool:
        return (self.compared > 0 and not self.damaged and not self.uncomparable
                and not any(row.unnamed for row in self.rows))


def cell_of(result: CellResult) -> Cell:
    """The cell a result is of, from its axes; raises ValueError when they do not name its id."""
    axes = result.axes
    strategy = matrix_mod.parse_strategy(axes.get("strategy", ""))
    if isinstance(strategy, str):
        raise ValueError(f"strategy {axes.get('strategy')!r}: {strategy}")
    cell = Cell(axes["binary"], strategy, axes["glibc"], axes.get("nix_ld"), axes.get("env", "nixos-login"),
                Launch(axes.get("launch", Launch.DIRECT.value)), axes.get("libs", "none"), axes.get("nixpkgs"),
                nixos=axes.get("nixos"), name=axes.get("name"))
    if cell.id != result.cell_id:
        raise ValueError(f"its axes make {cell.id}")
    return cell


def _state(result: CellResult) -> str:
    return result.outcome.value if result.outcome is not None else SKIPPED


def compare(loaded: list[ResultsFile], matrix: matrix_mod.Matrix) -> Parity:
    uncomparable: list[str] = []
    columns: dict[tuple[str, str], Column] = {}
    cells: dict[str, dict[Column, tuple[CellResult, Cell]]] = {}
    in_file: dict[str, set[str]] = {}  # key -> the sides that hold it
    for side, results in zip(SIDE_NAMES, loaded):
        runner = str((results.header or {}).get("runner", "?"))
        for result in results.results:
            try:
                cell = cell_of(result)
                if cell.binary not in matrix.binaries:
                    raise ValueError(f"binary {cell.binary!r} is not in {matrix.name}")
            except (KeyError, ValueError) as why:
                uncomparable.append(f"{results.path}: cell {result.cell_id}: not comparable ({why})")
                continue
            column = columns.setdefault((side, cell.build), Column(side, runner, cell.build, cell.nixpkgs is not None))
            cells.setdefault(cell.key, {})[column] = (result, cell)
            in_file.setdefault(cell.key, set()).add(side)
    ordered = tuple(sorted(columns.values(), key=lambda c: (c.side, c.nixpkgs, c.build)))
    rows, compared = [], 0
    for key in sorted(cells):
        row, any_pair = _row(key, cells[key], in_file[key], ordered, matrix)
        compared += any_pair
        if row is not None:
            rows.append(row)
    files = tuple((side, str(f.path), str((f.header or {}).get("runner", "?"))) for side, f in zip(SIDE_NAMES, loaded))
    damaged = tuple(d for f in loaded for d in f.damaged)
    return Parity(matrix.name, files, ordered, tuple(rows), compared, damaged, tuple(uncomparable))


def _row(key: str, here: Mapping[Column, tuple[CellResult, Cell]], sides: set[str], columns: tuple[Column, ...],
         matrix: matrix_mod.Matrix) -> tuple[Row | None, bool]:
    """The cell's row when two compared columns differ (and whether any pair was compared at all)."""

    def state(column: Column) -> str:
        if column in here:
            return _state(here[column][0])
        return ABSENT if column.side not in sides else ""

    named: dict[str, None] = {}
    unnamed: list[str] = []
    any_pair = False
    for i, first in enumerate(columns):
        for second in columns[i + 1:]:
            a, b = state(first), state(second)
            if not first.comparable(second) or not a or not b or (a == ABSENT and b == ABSENT):
                continue
            any_pair = True
            if a == b:
                continue
            facts = [matrix_mod.cell_facts(here[c][1], matrix.binaries, matrix.nixos[0])
                     for c in (first, second) if c in here]
            reasons = [d for d in matrix.differs if d.names(first.kinds, second.kinds, facts)]
            if reasons:
                named.update((f"{d.reason} ({d.source})", None) for d in reasons)
            else:
                unnamed.append(f"{first.label} {a} / {second.label} {b}")
    if not named and not unnamed:
        return None, any_pair
    return Row(key, tuple(state(c) for c in columns), tuple(named), tuple(unnamed)), any_pair


def load(paths: Iterable[Path], matrix_path: Path | None) -> tuple[list[ResultsFile], matrix_mod.Matrix]:
    """The results files (two or three) and the matrix their ``differs`` come from (the files' own
    unless ``matrix_path``); files of different matrices are refused in one line."""
    from harness.results import file as results_file

    paths = list(paths)
    if not 2 <= len(paths) <= 3:
        raise LdmatrixError(f"parity: give two or three results files, not {len(paths)}")
    loaded = [results_file.read(p) for p in paths]
    names = {f.matrix_name for f in loaded}
    if len(names) != 1:
        listing = ", ".join(f"{f.path}: {f.matrix_name}" for f in loaded)
        raise LdmatrixError(f"parity: the files are runs of different matrices ({listing}); compare runs of one")
    if matrix_path is None:
        recorded = next((f.header.get("matrix") for f in loaded if f.header and f.header.get("matrix")), None)
        if not recorded:
            raise LdmatrixError(f"parity: {paths[0]} names no matrix file in its header: give --matrix PATH")
        matrix_path = Path(str(recorded))
    if not matrix_path.is_file():
        raise LdmatrixError(f"parity: {matrix_path}: no such matrix (give --matrix PATH)")
    return loaded, matrix_mod.load(matrix_path)


# --------------------------------------------------------------------------- reports

def _summary(parity: Parity) -> str:
    unnamed = sum(1 for row in parity.rows if row.unnamed)
    return (f"parity of {parity.matrix}: {parity.compared} cells compared, {len(parity.rows)} differ "
            f"({len(parity.rows) - unnamed} named, {unnamed} not)"
            + (f", {len(parity.damaged)} damaged lines" if parity.damaged else "")
            + (f", {len(parity.uncomparable)} results not comparable" if parity.uncomparable else ""))


def _verdict(row: Row) -> str:
    if row.unnamed:
        return "NOT NAMED: " + "; ".join(row.unnamed)
    return "named: " + "; ".join(row.named)


def text(parity: Parity) -> str:
    lines = [_summary(parity), *(f"  {side} = {path} (runner {runner})" for side, path, runner in parity.files)]
    if parity.compared == 0:
        lines.append("nothing was compared: no cell of one file is on a build or runner another file can be "
                     "compared with")
    if parity.rows:
        width = max(len(row.key) for row in parity.rows)
        widths = [max(len(c.label), *(len(row.states[i]) for row in parity.rows)) for i, c in enumerate(parity.columns)]
        lines.append("  ".join([f"{'cell':<{width}}", *(f"{c.label:<{w}}" for c, w in zip(parity.columns, widths))])
                     .rstrip())
        for row in parity.rows:
            lines.append("  ".join([f"{row.key:<{width}}", *(f"{s or '-':<{w}}" for s, w in zip(row.states, widths))])
                         .rstrip())
            lines.append(f"  {_verdict(row)}")
    lines += [f"damaged: {line}" for line in parity.damaged] + [f"not comparable: {u}" for u in parity.uncomparable]
    return "\n".join(lines)


def markdown(parity: Parity) -> str:
    lines = [f"## ldmatrix parity: {parity.matrix}", "",
             _summary(parity) + ("" if parity.clean else " — **not clean**"),
             "", *(f"- {side} = `{path}` (runner {runner})" for side, path, runner in parity.files), ""]
    if parity.compared == 0:
        lines += ["Nothing was compared.", ""]
    if parity.rows:
        header = ["cell", *(c.label for c in parity.columns), "why"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        shown = sorted(parity.rows, key=lambda r: not r.unnamed)[:MARKDOWN_ROWS]  # the unnamed first
        for row in shown:
            cells = [row.key, *(s or "-" for s in row.states), _verdict(row)]
            lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
        if len(parity.rows) > len(shown):
            lines.append(f"\n… and {len(parity.rows) - len(shown)} more (the terminal output lists every one)")
    lines += [f"- damaged: {markdown_cell(str(line))}" for line in parity.damaged]
    lines += [f"- not comparable: {markdown_cell(u)}" for u in parity.uncomparable]
    return "\n".join(lines) + "\n"
