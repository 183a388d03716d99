"""``ldmatrix show CELL``: a cell's command, environment and full output, from a results file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands.options import DEFAULT_OUT, nearest
from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.results import command_script
from harness.results import file as results_file
from harness.results.outdir import CELL_FILE, RESULTS_NAME


def _find_results(args: argparse.Namespace) -> list[Path]:
    if args.results:
        return [args.results]
    return sorted(DEFAULT_OUT.glob(f"*/{RESULTS_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True)


def cmd_show(args: argparse.Namespace) -> int:
    damaged: list[results_file.DamagedLine] = []
    files = _find_results(args)
    known: list[str] = []
    for path in files:
        loaded = results_file.read(path)
        damaged += loaded.damaged
        for r in loaded.results:
            if r.cell_id == args.cell:
                print(show_text(r))
                for line in loaded.damaged:
                    print(f"ldmatrix: note: {line}", file=sys.stderr)
                return 0
        known += [r.cell_id for r in loaded.results]
    if not files:
        raise LdmatrixError(f"no result for cell {args.cell!r}: no results file in {DEFAULT_OUT}/ here; "
                            "name one (--results FILE), or run its matrix first (ldmatrix run MATRIX -k ...)")
    where = str(files[0]) if len(files) == 1 else f"{len(files)} results files"
    hint = nearest(args.cell, known)
    if damaged:
        hint += f"; {len(damaged)} damaged lines were not read, the first: {damaged[0]}"
    raise LdmatrixError(f"no result for cell {args.cell!r} in {where}{hint or '; run its matrix first'}")


def _cell_files(folder: Path) -> list[str]:
    """What ``cells/<id>/cell.json`` says about the binaries the cell ran (by path and digest)."""
    try:
        record = json.loads((folder / CELL_FILE).read_text(encoding="utf-8"))
        return [f"binary    {b['path']}  sha256 {b['sha256']}  ({b['host_path']})" for b in record["binaries"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def show_text(r: CellResult) -> str:
    lines = [f"cell      {r.cell_id}", f"runner    {r.runner}"]
    if r.skip_reason:
        lines.append(f"skipped   {r.skip_reason}")
        return "\n".join(lines)
    lines += [
        f"outcome   {r.outcome.value if r.outcome else '-'}   (expected {r.expected.value if r.expected else '-'}"
        + (f", known bug {r.bug}" if r.bug else "") + ")",
        f"evidence  {r.evidence}",
        f"exit      {r.rc}   in {r.duration * 1000:.1f} ms",
        f"command   {' '.join(r.argv)}",
        "environment (in the order the program received it):",
        *[f"  {k}={v}" for k, v in r.env],
        "stdout:", *[f"  {line}" for line in r.stdout.splitlines()],
        "stderr:", *[f"  {line}" for line in r.stderr.splitlines()],
    ]
    if r.extra.get("workdir"):
        folder = Path(r.extra["workdir"])
        lines += _cell_files(folder)
        lines.append(f"files     {folder} ({command_script.NAME} runs it again as it ran; stdout, stderr, "
                     f"{CELL_FILE})")
    return "\n".join(lines)


def add(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="a cell's command, environment and full output")
    show.add_argument("cell", help="a cell id, as the grid and `ldmatrix list` name it")
    show.add_argument("--results", type=Path, metavar="FILE",
                      help=f"the results.jsonl to read (default: every {DEFAULT_OUT}/*/{RESULTS_NAME}, newest first)")
    show.set_defaults(func=cmd_show)
