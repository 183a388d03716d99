"""Paths a person gives on the command line, checked up front: one line if they cannot be used.

A run writes its grid, summary and results at its end; finding out then that a directory is
missing wastes the run. These checks run before the first cell.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.errors import LdmatrixError


def _probe(directory: Path, what: str) -> None:
    """Create and remove a file in ``directory``: the only check that also holds for root."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".ldmatrix-probe-")
    except OSError as err:
        raise LdmatrixError(f"{what}: cannot write in {directory}: {err.strerror}") from None
    os.close(fd)
    os.unlink(name)


def writable_dir(path: Path, what: str) -> Path:
    """``path`` as a directory this process can write in, created if missing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LdmatrixError(f"{what} {path}: exists and is not a directory") from None
    except OSError as err:
        raise LdmatrixError(f"{what} {path}: cannot create it: {err.strerror}") from None
    _probe(path, f"{what} {path}")
    return path


def output_file(path: Path, what: str) -> Path:
    """A file written at the end of a run: its directory exists and is writable, it is no directory."""
    if path.is_dir():
        raise LdmatrixError(f"{what} {path}: is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise LdmatrixError(f"{what} {path}: directory {parent} does not exist")
    _probe(parent, f"{what} {path}")
    if path.exists():
        try:
            with path.open("ab"):  # neither truncates nor changes what is there
                pass
        except OSError as err:
            raise LdmatrixError(f"{what} {path}: cannot write it: {err.strerror}") from None
    return path
