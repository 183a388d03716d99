"""What several commands share: their common options (as argparse parents), the checks made before
anything runs, the inputs of a run, and the progress line per finished cell."""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from harness import matrix as matrix_mod
from harness import paths
from harness.errors import LdmatrixError
from harness.model import CellResult
from harness.progress import StderrProgress
from harness.results import report

if TYPE_CHECKING:  # imported where used: `ldmatrix list` and `--help` need none of it
    from harness.cache import Cache
    from harness.nixld import Supply
    from harness.nixpkgs import NixpkgsSupply
    from harness.provision import Lock
    from harness.session import RunOptions
    from harness.shard import Shard

DEFAULT_OUT = Path(".ldmatrix/results")


class CellProgress:
    """``[ 12/96] ! cell-id  outcome`` per finished cell: a progress bar that also reads as a log."""

    def __init__(self, total: int, stream: TextIO = sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.lock = threading.Lock()

    def __call__(self, result: CellResult) -> None:
        with self.lock:
            self.done += 1
            outcome = result.outcome.value if result.outcome else "skipped"
            width = len(str(self.total))
            print(f"[{self.done:{width}}/{self.total}] {report.mark(result)} {result.cell_id}  {outcome}",
                  file=self.stream, flush=True)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def shard_arg(text: str) -> Shard:
    from harness import shard

    try:
        return shard.parse(text)
    except LdmatrixError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None


def check_outputs(args: argparse.Namespace) -> None:
    """Files written at the end of a command: usable, or one line now, before any cell runs."""
    for option in ("markdown", "html", "summary"):
        path = getattr(args, option, None)
        if path is not None:
            paths.output_file(path, f"--{option}")


class OneLineParser(argparse.ArgumentParser):
    """A usage mistake is one line (``ldmatrix: run: argument -j: ...``) and exit status 2, like any error."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("ldmatrix").strip()
        self.exit(2, f"ldmatrix: {where + ': ' if where else ''}{message}; see {self.prog} --help\n")


# -- the common options, each declared once (argparse parents) ----------------------------------------

def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


QUIET = _parent()
QUIET.add_argument("-q", "--quiet", action="store_true", help="no progress lines (provisioning, builds)")

SUMMARY = _parent()
SUMMARY.add_argument("--summary", type=Path, metavar="FILE",
                     help="append a Markdown summary (for CI: $GITHUB_STEP_SUMMARY)")

GRID_FILES = _parent()
GRID_FILES.add_argument("--markdown", type=Path, help="also write the grid as Markdown")
GRID_FILES.add_argument("--html", type=Path, help="also write the grid as a standalone HTML page")

LOCK = _parent()
LOCK.add_argument("--lock", type=Path, metavar="FILE",
                  help="the package lock (default matrices/packages.lock.json)")

JOBS = _parent()
JOBS.add_argument("-j", "--jobs", type=positive_int, default=2, metavar="N", help="cells run at once (default 2)")

RUNNER = _parent()
RUNNER.add_argument("--runner", choices=matrix_mod.RUNNERS, help="default: the matrix's own (sandbox)")

SELECT = _parent()
SELECT.add_argument("-k", metavar="WORDS", help="only cells whose id contains every word (none: exit status 2)")

NIX_LD = _parent()
NIX_LD.add_argument("--nix-ld", action="append", default=[], metavar="SPEC",
                    help="a real nix-ld (repeatable; also $LDMATRIX_NIX_LD): VERSION=PATH of a build, "
                         "src:ARCHIVE-OR-TREE, or src:REPO#REV of a git repository or bundle (built here)")
NIX_LD.add_argument("--nix-ld-archives", action="append", default=[], type=Path, metavar="DIR",
                    help="a directory of nix-ld release archives (nix-ld-VERSION.tar.gz, or a git bundle with "
                         "its tags) for the matrix's nix-ld versions, pinned or not (repeatable; also "
                         "$LDMATRIX_NIX_LD_ARCHIVES)")

PINS = _parent()
PINS.add_argument("--pins", type=Path, metavar="FILE",
                  help="the pins file (default harness/data/nixpkgs-pins.json; also $LDMATRIX_NIXPKGS_PINS)")

NIXPKGS = _parent()
NIXPKGS.add_argument("--nixpkgs", action="append", default=[], metavar="PIN",
                     help="also run every cell on a nixpkgs pin's own glibc (and nix-ld), realised with Nix: a pin's "
                          "name (nixos-24.11), its revision, or 'supported' (repeatable; also $LDMATRIX_NIXPKGS)")


def out_option(default: Path, what: str) -> argparse.ArgumentParser:
    """``--out DIR``: where a command's results go, with its default said."""
    parent = _parent()
    parent.add_argument("--out", type=Path, default=default, help=f"{what} (default {default})")
    return parent


# -- what `run` and `guard` share ---------------------------------------------------------------------

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

    def options(self, **given: object) -> RunOptions:
        from harness.session import RunOptions

        return RunOptions(nix_ld=self.nix_ld, cache=self.cache, lock=self.lock, nixpkgs=self.nixpkgs,
                          **given)  # type: ignore[arg-type]


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


def nearest(cell_id: str, known: list[str], n: int = 3) -> str:
    """``; did you mean A, B or C?``: the ids closest to a mistyped one (difflib's ratio), else ``""``."""
    import difflib

    close = difflib.get_close_matches(cell_id, list(dict.fromkeys(known)), n=n, cutoff=0.5)
    if not close:
        return ""
    return "; did you mean " + (close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}") + "?"


def find_cell(matrix: matrix_mod.Matrix, cell_id: str):
    for cell in matrix.cells:
        if cell.id == cell_id:
            return cell
    hint = nearest(cell_id, [c.id for c in matrix.cells]) or f"; `ldmatrix list {matrix.path}` lists them"
    raise LdmatrixError(f"{matrix.path}: no cell {cell_id!r}{hint}")
