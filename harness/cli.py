"""``ldmatrix``: run a matrix, show a cell, refresh the lock, compare two runs.

Each subcommand is a short pipeline of functions from the other modules. Errors a person can
act on are printed as one line (``ldmatrix: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths
from harness.results import report
from harness.results import guard
from harness.results import command_script
from harness.results import file as results_file
from harness import matrix as matrix_mod
from harness.errors import LdmatrixError, did_you_mean
from harness.model import CellResult
from harness.results.outdir import CELL_FILE, RESULTS_NAME
from harness.progress import StderrProgress

if TYPE_CHECKING:  # imported where used: `ldmatrix list` and `--help` need none of it
    from harness.cache import Cache
    from harness.nixld import Supply
    from harness.nixpkgs import NixpkgsSupply
    from harness.provision import Lock
    from harness.session import RunOptions

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _shard(text: str):
    from harness import shard

    try:
        return shard.parse(text)
    except LdmatrixError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None


def _check_outputs(args: argparse.Namespace) -> None:
    """Files written at the end of a command: usable, or one line now, before any cell runs."""
    for option in ("markdown", "html", "summary"):
        path = getattr(args, option, None)
        if path is not None:
            paths.output_file(path, f"--{option}")


@dataclass(frozen=True)
class RunInputs:
    """What ``run`` and ``guard`` share: the cache, the package lock, the nix-ld and nixpkgs supplies."""

    cache: Cache
    progress: StderrProgress
    lock: Lock
    nix_ld: Supply
    nixpkgs: NixpkgsSupply

    def load(self, path: Path) -> matrix_mod.Matrix:
        """The matrix, with the supplied nix-ld labels and each --nixpkgs pin as a glibc column."""
        return matrix_mod.load(path, extra_nix_ld=self.nix_ld.labels, nixpkgs=self.nixpkgs.glibc_columns())

    def options(self, **given) -> RunOptions:
        from harness.session import RunOptions

        return RunOptions(nix_ld=self.nix_ld, cache=self.cache, lock=self.lock, nixpkgs=self.nixpkgs, **given)


def run_inputs(args: argparse.Namespace) -> RunInputs:
    """A usable cache and --out (one line now, before anything runs), then the lock and the supplies."""
    from harness import nixld, nixpkgs
    from harness.cache import Cache
    from harness.provision import LOCK_PATH, load_lock

    cache = Cache.default()
    paths.writable_dir(cache.root, "cache directory (LDMATRIX_CACHE)")
    paths.writable_dir(args.out, "--out")
    lock = load_lock(args.lock or LOCK_PATH)
    progress = StderrProgress(quiet=args.quiet)
    supply = nixld.supply(args.nix_ld, args.nix_ld_archives, cache, progress)
    pins = nixpkgs.supply(args.nixpkgs, cache, progress, pins_file=args.pins)  # --nixpkgs: more glibc columns
    return RunInputs(cache, progress, lock, supply, pins)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.interrupt import EXIT_STATUS, Interrupted, exit_at_next
    from harness.session import execute

    _check_outputs(args)
    baseline = results_file.read(args.baseline) if args.baseline else None
    inputs = run_inputs(args)
    progress = inputs.progress
    matrix = inputs.load(args.matrix)
    if not matrix.select(args.k):
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    options = inputs.options(runner=args.runner, select=args.k, jobs=args.jobs, out=args.out, shard=args.shard)
    cells = options.cells(matrix)
    progress.step(f"{matrix.name}: {len(cells)} cells" + (f" (shard {args.shard})" if args.shard else "")
                  + f", runner {args.runner or matrix.runner}")
    results_path = (options.out / matrix.name / RESULTS_NAME).absolute()  # `ldmatrix show` works from anywhere
    try:
        results = execute(matrix, options, progress, on_result=CellProgress(len(cells)))
    except Interrupted as stop:  # Ctrl-C: what was recorded, as a grid; the cells stopped say so
        exit_at_next()  # a second Ctrl-C while this is printed: stop there
        if stop.results:
            print(report.grid(stop.results))
            print(report.legend())
        stopped = sum(r.outcome is not None and r.rc is None and r.evidence.startswith("interrupted")
                      for r in stop.results)
        print(f"{matrix.name}: interrupted: {len(stop.results)} of {len(cells)} cells recorded ({stopped} stopped "
              f"while running, an error each), {len(cells) - len(stop.results)} not run; results in {results_path}")
        return EXIT_STATUS
    return present(args, matrix.name, results, results_path, baseline)


def present(args: argparse.Namespace, name: str, results: list[CellResult], results_path: Path,
            baseline: results_file.ResultsFile | None = None) -> int:
    """What ``run`` and ``merge`` print and write once the results are in; the exit status: 1 when a
    cell is not what its matrix expects or differs from the baseline, else 0."""
    print(report.grid(results))
    print(report.legend())
    for text in (report.skipped_reasons(results), report.failures(results, results_path)):
        if text:
            print(text)
    disagreeing = report.disagreements(results)
    if disagreeing:
        print("the loader did not do what the ELF files predict (a harness bug or a finding):")
        print(disagreeing)
    if args.markdown:
        args.markdown.write_text(report.grid(results, markdown=True) + "\n")
    if args.html:
        args.html.write_text(report.html(results, f"ldmatrix: {name}", results_path))
    comparison = None
    if baseline is not None:
        ran = {r.cell_id for r in results}  # a shard ran its slice: the baseline's other cells are not gone
        selected = [r for r in baseline.results if (r.cell_id in ran if getattr(args, "shard", None) else
                                                    matrix_mod.selects(getattr(args, "k", None), r.cell_id))]
        comparison = guard.compare(selected, results, old_name=str(args.baseline), new_name=str(results_path),
                                   damaged=baseline.damaged)
        print("changes against the baseline:")
        print(guard.text(comparison))
    print(f"{name}: {report.summary(results)}; results in {results_path}")
    if args.summary:
        report.append_summary(args.summary, report.markdown_summary(results, f"ldmatrix: {name}")
                        + ("\n\n" + guard.markdown(comparison, "changes against the baseline") if comparison else ""))
    unexpected = any(report.mark(r) == report.MARK_MISMATCH for r in results)
    return 1 if unexpected or (comparison is not None and not comparison.clean) else 0


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


def nearest(cell_id: str, known: list[str], n: int = 3) -> str:
    """``; did you mean A, B or C?``: the ids closest to a mistyped one (difflib's ratio), else ``""``."""
    import difflib

    close = difflib.get_close_matches(cell_id, list(dict.fromkeys(known)), n=n, cutoff=0.5)
    if not close:
        return ""
    return "; did you mean " + (close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}") + "?"


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


def cmd_list(args: argparse.Namespace) -> int:
    matrix = matrix_mod.load(args.matrix)
    cells = matrix.select(args.k)
    if not cells:  # as `run -k` does: an empty list would read as "nothing to run", not as a typo
        raise LdmatrixError(f"-k {args.k!r} selects no cell of {matrix.name} ({len(matrix.cells)} cells)")
    for cell in cells:
        expectation = matrix.expectation(cell)
        bug = f"  (known bug: {expectation.bug})" if expectation.bug else ""
        print(f"{cell.id}  -> {expectation.outcome.value}{bug}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from harness.provision import LOCK_PATH, refresh_lock

    if args.matrix is not None:
        return lock_matrix(args)
    refresh_lock(args.lock or LOCK_PATH, StderrProgress(quiet=args.quiet), only_missing=args.only_missing)
    return 0


def lock_matrix(args: argparse.Namespace) -> int:
    """``ldmatrix lock MATRIX``: move the pins of the matrix's artifacts (``<matrix>.lock.json``) on."""
    from harness.artifacts import provide
    from harness.artifacts.lock import lock_path
    from harness.cache import Cache

    if args.lock is not None:
        raise LdmatrixError("lock: --lock names the package lock; a matrix's artifacts are pinned in "
                            f"{lock_path(args.matrix)}")
    matrix = matrix_mod.load(args.matrix)
    artifacts = [b.artifact for b in matrix.binaries.values() if b.artifact is not None]
    if not artifacts:
        raise LdmatrixError(f"{args.matrix}: names no wheel, deb, url or file among its binaries: nothing to lock "
                            "(`ldmatrix lock` moves the package lock)")
    cache = Cache.default()
    paths.writable_dir(cache.root, "cache directory (LDMATRIX_CACHE)")
    lock = provide.relock(matrix.path, str(args.matrix), artifacts, cache, StderrProgress(quiet=args.quiet),
                          only_missing=args.only_missing)
    print(f"{lock.path}: {len(lock.pins)} artifacts pinned")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    _check_outputs(args)
    old, new = results_file.read(args.old), results_file.read(args.new)
    comparison = guard.compare(old.results, new.results, old_name=str(args.old), new_name=str(args.new),
                               damaged=old.damaged + new.damaged)
    if old.header and new.header and old.matrix_name != new.matrix_name:
        print(f"note: {args.old} is a run of matrix {old.matrix_name}, {args.new} of {new.matrix_name}")
    print(guard.text(comparison))
    if args.summary:
        report.append_summary(args.summary, guard.markdown(comparison, f"ldmatrix diff: {new.matrix_name}"))
    return 0 if comparison.clean or args.report_only else 1


def cmd_parity(args: argparse.Namespace) -> int:
    from harness.results import parity

    _check_outputs(args)
    loaded, matrix = parity.load(args.results, args.matrix)
    comparison = parity.compare(loaded, matrix)
    print(parity.text(comparison))
    if args.summary:
        report.append_summary(args.summary, parity.markdown(comparison))
    return 0 if comparison.clean else 1


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line (``ldmatrix: run: argument -j: ...``) and exit status 2, like any error."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("ldmatrix").strip()
        self.exit(2, f"ldmatrix: {where + ': ' if where else ''}{message}; see {self.prog} --help\n")


def add_nix_ld_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nix-ld", action="append", default=[], metavar="SPEC",
                   help="a real nix-ld (repeatable; also $LDMATRIX_NIX_LD): VERSION=PATH of a build, "
                        "src:ARCHIVE-OR-TREE, or src:REPO#REV of a git repository or bundle (built here)")
    p.add_argument("--nix-ld-archives", action="append", default=[], type=Path, metavar="DIR",
                   help="a directory of nix-ld release archives (nix-ld-VERSION.tar.gz, or a git bundle with "
                        "its tags) for the matrix's nix-ld versions, pinned or not (repeatable; also "
                        "$LDMATRIX_NIX_LD_ARCHIVES)")


def find_cell(matrix: matrix_mod.Matrix, cell_id: str):
    for cell in matrix.cells:
        if cell.id == cell_id:
            return cell
    hint = nearest(cell_id, [c.id for c in matrix.cells]) or f"; `ldmatrix list {matrix.path}` lists them"
    raise LdmatrixError(f"{matrix.path}: no cell {cell_id!r}{hint}")


def cmd_bisect(args: argparse.Namespace) -> int:
    import dataclasses

    from harness.cache import Cache
    from harness.nixld.bisect import bisect
    from harness.runners import get_runner
    from harness.results.outdir import RunDirectory
    from harness.session import RunOptions, header_record, provision_all, result_record, run_one

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
    with RunDirectory(options.out, matrix.name) as rundir:
        art = provision_all(matrix, (dataclasses.replace(cell, nix_ld=None),), options, progress)
        log = rundir.begin(header_record(matrix, runner.name))

        def run_cell(c, nix_ld):
            result = run_one(matrix, c, dataclasses.replace(art, nix_ld=nix_ld), runner, rundir)
            if result is None:  # an interrupted run (harness/interrupt.py)
                raise KeyboardInterrupt
            log.write(result_record(result))
            return result

        def show(step) -> None:
            print(step.line(), flush=True)

        try:
            result = bisect(matrix, cell, args.repo, args.old, args.new, run_cell, options.cache, progress, show)
        finally:
            log.close()
            runner.close()
    print(result.summary())
    return 0 if result.first else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from harness import provision
    from harness.loader import inspect
    from harness.loader import elf
    from harness.cache import Cache
    from harness.provision.libraries import CONFIG as LIBRARIES
    from harness.provision.packages import PackageStore
    from harness.root.release import RELEASES

    if not args.file.is_file():
        raise LdmatrixError(f"{args.file}: no such file")
    info = elf.read(args.file)
    if info.interpreter is None and info.soname is not None:
        raise LdmatrixError(f"{args.file}: a shared library ({info.soname}), not a program: inspect the program "
                            "that loads it")
    if info.interpreter is None:
        print(f"{args.file.name}: static: runs as is (no interpreter, no libraries to find)")
        return 0
    for option, given, allowed in (("--glibc", args.glibc, list(provision.SUITES)),
                                   ("--nixos", args.nixos, list(RELEASES))):
        unknown = [v for v in given if v not in allowed]
        if unknown:
            raise LdmatrixError(f"{option} {unknown[0]}: unknown{did_you_mean(unknown[0], allowed)} "
                                f"(allowed: {', '.join(allowed)})")
    versions = list(args.glibc) or [inspect.DEFAULT_GLIBC]
    releases = [RELEASES[r] for r in (args.nixos or inspect.DEFAULT_RELEASES)]
    cache, progress = Cache.default(), StderrProgress(quiet=args.quiet)
    lock = provision.load_lock()
    glibcs = [provision.provision_glibc(v, cache, progress, lock=lock) for v in versions]
    stores = [PackageStore(g, lock, cache, progress) for g in glibcs]
    answers = []
    for glibc, store in zip(glibcs, stores):
        for release in releases:
            progress.step(f"inspect: the smallest programs.nix-ld.libraries on {release.pretty_name}, "
                          f"glibc {glibc.glibc_version}")
            answers.append(inspect.answer(info, args.file, glibc, store, release))
    confirmations = _confirm(args, answers, cache, progress) if not args.no_run else {}
    print(inspect.summary(info))
    for a in answers:
        print(f"{a.release.pretty_name}, glibc {a.glibc}:")
        if not a.loads:
            print(f"  no list of these makes it load: {a.prediction.outcome.value}: {a.prediction.reason}")
        else:
            print(f"  {a.snippet}")
        if a.unprovided:
            print(f"  no nixpkgs attribute ldmatrix knows provides {', '.join(a.unprovided)}")
        print(f"  {confirmations[a].line() if a in confirmations else 'not confirmed (--no-run)'}")
    if args.verbose:
        library_sets = {"none": (), "default": LIBRARIES.default}
        print("\n".join(inspect.details(info, args.file, glibcs, stores, library_sets)))
    else:
        print(f"(what each strategy and library set gives it: ldmatrix inspect {args.file} -v)")
    return 0


def _confirm(args: argparse.Namespace, answers: list, cache, progress: StderrProgress) -> dict:
    """Run one nix-ld cell per answer (harness/loader/inspect.py ``confirmation_matrix``); answer -> Confirmation."""
    import tempfile

    from harness import nixld
    from harness.loader import inspect
    from harness.cache import REPO_ROOT
    from harness.model import Strategy
    from harness.session import RunOptions, execute

    seed = matrix_mod.load(REPO_ROOT / "matrices" / "seed.yaml")
    pinned = seed.nix_ld_sources.get(args.nix_ld_version)
    source = (pinned.url, pinned.nar_hash) if pinned else None
    supply = nixld.supply(args.nix_ld, args.nix_ld_archives, cache, progress)
    with tempfile.TemporaryDirectory(prefix="ldmatrix-inspect-") as tmp:
        path = Path(tmp) / "inspect.yaml"
        path.write_text(inspect.confirmation_matrix(args.file, answers, args.run, args.nix_ld_version, source))
        matrix = matrix_mod.load(path, extra_nix_ld=supply.labels)
        results = execute(matrix, RunOptions(out=args.out, nix_ld=supply, cache=cache),
                          progress if not args.quiet else None)
    out: dict = {}
    written = args.out / matrix.name / RESULTS_NAME
    for a in answers:
        for r in results:
            axes = r.axes
            if (axes.get("glibc"), axes.get("libs"), axes.get("nixos", a.release.version), axes.get("nix_ld")) == \
                    (a.glibc, a.libs, a.release.version, args.nix_ld_version) and axes.get("strategy") == \
                    Strategy.NIX_LD.value:
                out[a] = inspect.Confirmation(r.cell_id, r.outcome, r.evidence or r.skip_reason or "",
                                              written if r.outcome is not None else None)
    return out


def cmd_damage(args: argparse.Namespace) -> int:
    print(report.damage_table(results_file.read(args.results).results, args.glibc))
    return 0


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="ldmatrix", description="Does a binary built outside Nix run on NixOS?")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every cell of a matrix and print the grid")
    run.add_argument("matrix", type=Path, help="the matrix YAML (e.g. matrices/seed.yaml)")
    run.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")
    run.add_argument("-k", metavar="WORDS", help="only cells whose id contains every word")
    run.add_argument("-j", "--jobs", type=_positive_int, default=2, metavar="N",
                     help="cells run at once (default 2)")
    run.add_argument("--shard", type=_shard, metavar="K/N",
                     help="run only the K-th of N slices of the selected cells, balanced by expected cost "
                          "(default: all); `ldmatrix merge` puts the N results together")
    add_nix_ld_options(run)
    from harness.commands.pins import add_nixpkgs_options, add_pins_subcommand

    add_nixpkgs_options(run)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT,
                     help=f"results directory (default {DEFAULT_OUT}); one run at a time holds <out>/<matrix>/ "
                          "(a second one stops)")
    run.add_argument("--markdown", type=Path, help="also write the grid as Markdown")
    run.add_argument("--html", type=Path, help="also write the grid as a standalone HTML page")
    run.add_argument("--baseline", type=Path,
                     help="a results.jsonl to compare against, as `ldmatrix diff`; any change makes the exit status 1")
    run.add_argument("--summary", type=Path, metavar="FILE",
                     help="append a Markdown summary (for CI: $GITHUB_STEP_SUMMARY)")
    run.add_argument("--lock", type=Path, metavar="FILE",
                     help="the package lock to use (default matrices/packages.lock.json)")
    run.add_argument("-q", "--quiet", action="store_true", help="no provisioning progress")
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="a cell's command, environment and full output")
    show.add_argument("cell", help="a cell id, as the grid and `ldmatrix list` name it")
    show.add_argument("--results", type=Path, metavar="FILE",
                      help=f"the results.jsonl to read (default: every {DEFAULT_OUT}/*/{RESULTS_NAME}, newest first)")
    show.set_defaults(func=cmd_show)

    lst = sub.add_parser("list", help="the cells of a matrix and their expected outcomes")
    lst.add_argument("matrix", type=Path, help="the matrix YAML")
    lst.add_argument("-k", metavar="WORDS", help="only cells whose id contains every word (none: exit status 2)")
    lst.set_defaults(func=cmd_list)

    lock = sub.add_parser("lock", help="move the package lock to the archive's current versions, or a matrix's "
                                       "artifact pins (ldmatrix lock MATRIX)")
    lock.add_argument("matrix", nargs="?", type=Path,
                      help="a matrix: re-resolve its wheels, packages, URLs and files into MATRIX.lock.json")
    lock.add_argument("--lock", type=Path, metavar="FILE", help="the package lock to move (default "
                      "matrices/packages.lock.json)")
    lock.add_argument("--only-missing", action="store_true",
                      help="keep every pinned package and add only those the lock lacks")
    lock.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    lock.set_defaults(func=cmd_lock)

    d = sub.add_parser("diff", help="cells that changed between two results.jsonl; exit status 1 if any did")
    d.add_argument("old", type=Path, help="the earlier results.jsonl (e.g. a baseline)")
    d.add_argument("new", type=Path, help="the later results.jsonl")
    d.add_argument("--report-only", action="store_true",
                   help="exit 0 whatever changed (unreadable files still exit 2)")
    d.add_argument("--summary", type=Path, metavar="FILE",
                   help="append a Markdown summary (for CI: $GITHUB_STEP_SUMMARY)")
    d.set_defaults(func=cmd_diff)

    par = sub.add_parser("parity", help="the same cells on other runners or glibc builds: a table of the cells "
                                        "whose outcome differs; exit status 1 unless the matrix names each difference")
    par.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                     help="two or three results.jsonl of one matrix (A B [C]): e.g. the sandbox on Debian's builds, "
                          "the sandbox on a pin, the nixos-vm runner on that pin")
    par.add_argument("--matrix", type=Path, help="the matrix whose differs: name the known differences (default: "
                                                 "the one the files' header names)")
    par.add_argument("--summary", type=Path, metavar="FILE",
                     help="append the table as Markdown (for CI: $GITHUB_STEP_SUMMARY)")
    par.set_defaults(func=cmd_parity)

    ins = sub.add_parser("inspect", help="what to write for a foreign program to run with nix-ld, per NixOS "
                                         "release, each answer confirmed by a real cell; details with -v")
    ins.add_argument("file", type=Path, help="the program (an ELF file)")
    ins.add_argument("--glibc", action="append", default=[], metavar="VERSION",
                     help="the store glibc to answer for (repeatable; default 2.42, NixOS 26.05's)")
    ins.add_argument("--nixos", action="append", default=[], metavar="RELEASE",
                     help="the NixOS release to answer for (repeatable; default 23.11, the list replacing the base "
                          "libraries, and 26.05, the list added to them)")
    ins.add_argument("--run", action="append", default=[], metavar="ARG",
                     help="an argument the confirming cell runs the program with (repeatable; default none)")
    ins.add_argument("--no-run", action="store_true", help="answer from the ELF files alone, confirm nothing")
    ins.add_argument("--nix-ld-version", default="2.0.6", metavar="VERSION",
                     help="the nix-ld the confirming cells use (default 2.0.6, built from its pinned source)")
    add_nix_ld_options(ins)
    ins.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the confirming cells' results go "
                     f"(default {DEFAULT_OUT}/inspect-NAME)")
    ins.add_argument("-v", "--verbose", action="store_true", help="also what each strategy and library set gives it")
    ins.add_argument("-q", "--quiet", action="store_true", help="no provisioning progress")
    ins.set_defaults(func=cmd_inspect)

    dmg = sub.add_parser("damage", help="what nix-ld damaged, per way of starting the program (Markdown)")
    dmg.add_argument("results", type=Path, help="a results.jsonl of a matrix with start-up printer cells")
    dmg.add_argument("--glibc", default="2.36", help="the glibc column to read (default 2.36)")
    dmg.set_defaults(func=cmd_damage)

    bis = sub.add_parser("bisect", help="the first nix-ld commit where a cell's outcome changes")
    bis.add_argument("matrix", type=Path, help="the matrix YAML the cell is in")
    bis.add_argument("cell", help="a nix-ld cell of the matrix, e.g. c-hello.nix-ld-2.0.5.glibc-2.31.libs-default")
    bis.add_argument("--repo", type=Path, required=True, help="nix-ld's git repository or a bundle of it")
    bis.add_argument("--old", required=True, help="the older revision (tag or commit)")
    bis.add_argument("--new", required=True, help="the newer revision, whose outcome differs")
    bis.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")
    bis.add_argument("--out", type=Path, default=DEFAULT_OUT,
                     help=f"results directory of each step's cell (default {DEFAULT_OUT})")
    bis.add_argument("-q", "--quiet", action="store_true", help="no build progress")
    bis.set_defaults(func=cmd_bisect)

    from harness.cache.verify import add_cache_subcommand
    from harness.commands.ci_matrix import add_ci_matrix_subcommand
    from harness.commands.guard import add_guard_subcommand
    from harness.docker.images import add_images_subcommand
    from harness.results.merge import add_merge_subcommand

    add_images_subcommand(sub)
    add_cache_subcommand(sub)
    add_pins_subcommand(sub)
    add_guard_subcommand(sub)
    add_merge_subcommand(sub)
    add_ci_matrix_subcommand(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as done:  # --help, or a usage mistake already printed in one line
            return done.code if isinstance(done.code, int) else 2
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, where it can be handled, not at exit
        return status
    except LdmatrixError as err:
        print(f"ldmatrix: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _stdout_to_devnull()
        return 1
    except OSError as err:  # a file or directory the system refused, where no check named it first
        where = f"{err.filename}: " if err.filename else ""
        print(f"ldmatrix: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ldmatrix: interrupted; finished cells are in results.jsonl", file=sys.stderr)
        return 130


def _stdout_to_devnull() -> None:
    """The reader went away (``ldmatrix list | head``): stop quietly, as the Python docs advise on SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is no file (tests capture it): nothing will flush into a closed pipe


if __name__ == "__main__":
    sys.exit(main())
