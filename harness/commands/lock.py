"""``ldmatrix lock [MATRIX]``: move the package lock on, or a matrix's artifact pins."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import matrix as matrix_mod
from harness import paths
from harness.commands import options
from harness.errors import LdmatrixError
from harness.progress import StderrProgress


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


def add(sub: argparse._SubParsersAction) -> None:
    lock = sub.add_parser("lock", help="move the package lock to the archive's current versions, or a matrix's "
                                       "artifact pins (ldmatrix lock MATRIX)", parents=[options.LOCK, options.QUIET])
    lock.add_argument("matrix", nargs="?", type=Path,
                      help="a matrix: re-resolve its wheels, packages, URLs and files into MATRIX.lock.json")
    lock.add_argument("--only-missing", action="store_true",
                      help="keep every pinned package and add only those the lock lacks")
    lock.set_defaults(func=cmd_lock)
