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
from harness.nix_ld_provider import labels, specs_from_env
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

    nix_ld = list(args.nix_ld) + specs_from_env()
    matrix = matrix_mod.load(args.matrix, extra_nix_ld=labels(nix_ld))
    options = RunOptions(runner=args.runner, select=args.k, jobs=args.jobs, out=args.out, nix_ld=nix_ld)
    cells = matrix.select(args.k)
    if not cells:
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    progress = StderrProgress(quiet=args.quiet)
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

    refresh_lock(args.lock or LOCK_PATH, StderrProgress())
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    print(report.diff(report.load_results(args.old), report.load_results(args.new)))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ldmatrix", description="Does a binary built outside Nix run on NixOS?")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every cell of a matrix and print the grid")
    run.add_argument("matrix", type=Path)
    run.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")
    run.add_argument("-k", metavar="WORDS", help="only cells whose id contains every word")
    run.add_argument("-j", "--jobs", type=int, default=2)
    run.add_argument("--nix-ld", action="append", default=[], metavar="VERSION=PATH",
                     help="a real nix-ld to test as VERSION (repeatable); also $LDMATRIX_NIX_LD")
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
    lock.set_defaults(func=cmd_lock)

    d = sub.add_parser("diff", help="cells whose outcome changed between two results.jsonl")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.set_defaults(func=cmd_diff)

    from harness.cache_verify import add_cache_subcommand
    from harness.images import add_images_subcommand

    add_images_subcommand(sub)
    add_cache_subcommand(sub)
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
