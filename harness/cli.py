"""``ldmatrix``: run a matrix, show a cell, refresh the lock, compare two runs.

Each subcommand is a short pipeline of functions from the other modules. Errors a person can
act on are printed as one line (``ldmatrix: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from harness import matrix as matrix_mod
from harness import report
from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.progress import StderrProgress

DEFAULT_OUT = Path(".ldmatrix/results")


class CellProgress:
    """``[ 12/96] ! cell-id  outcome`` per finished cell: a progress bar that also reads as a log."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.lock = threading.Lock()

    def __call__(self, result: CellResult) -> None:
        with self.lock:
            self.done += 1
            outcome = result.outcome.value if result.outcome else "skipped"
            width = len(str(self.total))
            print(f"[{self.done:{width}}/{self.total}] {report.mark(result)} {result.cell_id}  {outcome}",
                  file=self.stream, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.session import RunOptions, execute

    from harness import nixld
    from harness.cache import Cache

    progress = StderrProgress(quiet=args.quiet)
    cache = Cache.default()
    supply = nixld.supply(args.nix_ld, args.nix_ld_archives, cache, progress)
    matrix = matrix_mod.load(args.matrix, extra_nix_ld=supply.labels)
    options = RunOptions(runner=args.runner, select=args.k, jobs=args.jobs, out=args.out, nix_ld=supply,
                         cache=cache)
    cells = matrix.select(args.k)
    if not cells:
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    progress.step(f"{matrix.name}: {len(cells)} cells, runner {args.runner or matrix.runner}")
    results = execute(matrix, options, progress, on_result=CellProgress(len(cells)))
    results_file = options.out / matrix.name / "results.jsonl"
    print(report.grid(results))
    print(report.legend())
    for text in (report.skipped_reasons(results), report.failures(results, results_file)):
        if text:
            print(text)
    if args.markdown:
        args.markdown.write_text(report.grid(results, markdown=True) + "\n")
    if args.html:
        args.html.write_text(report.html(results, f"ldmatrix: {matrix.name}"))
    if args.baseline:
        print("changes against the baseline:")
        print(report.diff(report.load_results(args.baseline), results))
    print(f"{matrix.name}: {report.summary(results)}; results in {results_file}")
    return 1 if any(report.mark(r) == report.MARK_MISMATCH for r in results) else 0


def _find_results(args: argparse.Namespace) -> list[Path]:
    if args.results:
        return [args.results]
    return sorted(DEFAULT_OUT.glob("*/results.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)


def cmd_show(args: argparse.Namespace) -> int:
    for path in _find_results(args):
        for r in report.load_results(path):
            if r.cell_id == args.cell:
                print(show_text(r))
                return 0
    raise LdmatrixError(f"no result for cell {args.cell!r}: run its matrix first (ldmatrix run MATRIX -k ...)")


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
        lines.append(f"files     {r.extra['workdir']} (command, stdout, stderr, the installed binaries)")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    matrix = matrix_mod.load(args.matrix)
    for cell in matrix.select(args.k):
        expectation = matrix.expectation(cell)
        bug = f"  (known bug: {expectation.bug})" if expectation.bug else ""
        print(f"{cell.id}  -> {expectation.outcome.value}{bug}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from harness.provision import LOCK_PATH, refresh_lock

    refresh_lock(args.lock or LOCK_PATH, StderrProgress(), only_missing=args.only_missing)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    print(report.diff(report.load_results(args.old), report.load_results(args.new)))
    return 0


def add_nix_ld_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nix-ld", action="append", default=[], metavar="SPEC",
                   help="a real nix-ld (repeatable; also $LDMATRIX_NIX_LD): VERSION=PATH of a build, "
                        "src:ARCHIVE-OR-TREE, or src:REPO#REV of a git repository or bundle (built here)")
    p.add_argument("--nix-ld-archives", action="append", default=[], type=Path, metavar="DIR",
                   help="a directory of nix-ld release archives for the matrix's pinned versions "
                        "(repeatable; also $LDMATRIX_NIX_LD_ARCHIVES)")


def find_cell(matrix: matrix_mod.Matrix, cell_id: str):
    import difflib

    for cell in matrix.cells:
        if cell.id == cell_id:
            return cell
    close = difflib.get_close_matches(cell_id, [c.id for c in matrix.cells], n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; `ldmatrix list {matrix.path}` lists them"
    raise LdmatrixError(f"{matrix.path}: no cell {cell_id!r}{hint}")


def cmd_bisect(args: argparse.Namespace) -> int:
    import dataclasses

    from harness.cache import Cache
    from harness.nixld.bisect import bisect
    from harness.runners import get_runner
    from harness.session import RunOptions, provision_all, run_one

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
    art = provision_all(matrix, (dataclasses.replace(cell, nix_ld=None),), options, progress)

    def run_cell(c, nix_ld):
        return run_one(matrix, c, dataclasses.replace(art, nix_ld=nix_ld), runner, options.out / matrix.name)

    def show(step) -> None:
        print(step.line(), flush=True)

    try:
        result = bisect(matrix, cell, args.repo, args.old, args.new, run_cell, options.cache, progress, show)
    finally:
        runner.close()
    print(result.summary())
    return 0 if result.first else 1


def cmd_damage(args: argparse.Namespace) -> int:
    print(report.damage_table(report.load_results(args.results), args.glibc))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ldmatrix", description="Does a binary built outside Nix run on NixOS?")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every cell of a matrix and print the grid")
    run.add_argument("matrix", type=Path)
    run.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")
    run.add_argument("-k", metavar="WORDS", help="only cells whose id contains every word")
    run.add_argument("-j", "--jobs", type=int, default=2)
    add_nix_ld_options(run)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    run.add_argument("--markdown", type=Path, help="also write the grid as Markdown")
    run.add_argument("--html", type=Path, help="also write the grid as a standalone HTML page")
    run.add_argument("--baseline", type=Path, help="a results.jsonl to compare against")
    run.add_argument("-q", "--quiet", action="store_true", help="no provisioning progress")
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="a cell's command, environment and full output")
    show.add_argument("cell")
    show.add_argument("--results", type=Path)
    show.set_defaults(func=cmd_show)

    lst = sub.add_parser("list", help="the cells of a matrix and their expected outcomes")
    lst.add_argument("matrix", type=Path)
    lst.add_argument("-k", metavar="WORDS")
    lst.set_defaults(func=cmd_list)

    lock = sub.add_parser("lock", help="move the package lock to the archive's current versions")
    lock.add_argument("--lock", type=Path)
    lock.add_argument("--only-missing", action="store_true",
                      help="keep every pinned package and add only those the lock lacks")
    lock.set_defaults(func=cmd_lock)

    d = sub.add_parser("diff", help="cells whose outcome changed between two results.jsonl")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.set_defaults(func=cmd_diff)

    dmg = sub.add_parser("damage", help="what nix-ld damaged, per way of starting the program (Markdown)")
    dmg.add_argument("results", type=Path, help="a results.jsonl of a matrix with start-up printer cells")
    dmg.add_argument("--glibc", default="2.36", help="the glibc column to read (default 2.36)")
    dmg.set_defaults(func=cmd_damage)

    bis = sub.add_parser("bisect", help="the first nix-ld commit where a cell's outcome changes")
    bis.add_argument("matrix", type=Path)
    bis.add_argument("cell", help="a nix-ld cell of the matrix, e.g. c-hello.nix-ld-2.0.5.glibc-2.31")
    bis.add_argument("--repo", type=Path, required=True, help="nix-ld's git repository or a bundle of it")
    bis.add_argument("--old", required=True, help="the older revision (tag or commit)")
    bis.add_argument("--new", required=True, help="the newer revision, whose outcome differs")
    bis.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")
    bis.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory (each step's cell)")
    bis.add_argument("-q", "--quiet", action="store_true", help="no build progress")
    bis.set_defaults(func=cmd_bisect)

    from harness.images import add_images_subcommand

    add_images_subcommand(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LdmatrixError as err:
        print(f"ldmatrix: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ldmatrix: interrupted; finished cells are in results.jsonl", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
