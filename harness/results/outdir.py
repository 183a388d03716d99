"""``<out>/<matrix>/``, held by one run at a time: its lock, ``results.jsonl`` and ``cells/<id>/``.

- **The lock**: ``<out>/<matrix>/.lock``, an ``flock`` held for the whole run (the kernel drops it
  when the process ends, however it ends). A second run with the same directory fails at once,
  in one line naming the pid and command of the run that holds it.
- **results.jsonl**: a header line, then one JSON line per cell, each written with a single
  ``write`` on an ``O_APPEND`` descriptor under a thread lock; a cell is written once or not at all.
- **cells/<id>/**: built in ``cells/.tmp-<id>-*`` while the cell runs and renamed into place when
  it is complete, so a folder without a ``.tmp-`` prefix is always a whole one.

A run that begins writing results (``begin``) starts afresh: the previous run's ``cells/`` and
scratch go, as its ``results.jsonl`` is rewritten from the header on (and what a killed run left
of them, ``.old-*-<pid>``). Trees are removed with harness.cache.remove (a cell's tree can be any depth).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

from harness.cache.entry import stale
from harness.cache.remove import remove_tree
from harness.errors import LdmatrixError

LOCK_NAME = ".lock"
RESULTS_NAME = "results.jsonl"
CELLS_NAME = "cells"
CELL_FILE = "cell.json"  # in cells/<id>/: the verdict, its proving line, the binaries by path and sha256
SCRATCH_NAME = ".scratch"  # the cells' writable HOMEs while they run; emptied at the end
STAGING_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"  # a previous run's cells/ and .scratch, renamed aside to be removed
_OLD = re.compile(r"^\.old-.*-(\d+)$")
NAME_MAX = 255  # bytes of one file name
# a cell id names its folder, made as ``.tmp-<id>-XXXXXXXX`` (tempfile adds 8 characters)
MAX_ID_BYTES = NAME_MAX - len(STAGING_PREFIX) - 1 - 8


class DirectoryInUse(LdmatrixError):
    """Another run holds the output directory; the message names its pid and command."""


def safe_id(cell_id: str) -> str:
    return cell_id.replace("/", "_")


def _holder(lock_file: Path) -> str:
    try:
        info = json.loads(lock_file.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])}: {info['command']}, since {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it has only just started"


class RunDirectory:
    """The results directory of one matrix, held by this process between ``acquire`` and ``release``."""

    def __init__(self, out: Path, matrix_name: str, *, option: str = "--out"):
        self.path = (out / matrix_name).absolute()
        self.option = option  # how the user names the output directory, for the "in use" message
        self._fd: int | None = None

    @property
    def results_file(self) -> Path:
        return self.path / RESULTS_NAME

    @property
    def cells_dir(self) -> Path:
        return self.path / CELLS_NAME

    @property
    def scratch_dir(self) -> Path:
        return self.path / SCRATCH_NAME

    def cell_dir(self, cell_id: str) -> Path:
        return self.cells_dir / safe_id(cell_id)

    # ---------------------------------------------------------------- the lock
    def acquire(self) -> Self:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise LdmatrixError(f"{self.option} {self.path.parent}: cannot create {self.path}: "
                                f"{err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryInUse(
                f"{self.path}: in use by another run ({_holder(self.path / LOCK_NAME)}); "
                f"wait for it to end, or give this run its own {self.option}") from None
        me = {"pid": os.getpid(), "command": shlex.join(sys.argv), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            remove_tree(self.scratch_dir)
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def begin(self, header: dict[str, Any]) -> ResultLog:
        """Start this run's results: the previous run's ``cells/`` go, ``results.jsonl`` starts with ``header``.

        Called once everything is provisioned, so a run that fails before its first cell leaves
        the previous run's results as they were.
        """
        assert self._fd is not None, "begin() needs the lock: acquire() first"
        for directory in (self.cells_dir, self.scratch_dir):
            if directory.exists():
                doomed = self.path / f"{OLD_PREFIX}{directory.name}-{os.getpid()}"
                remove_tree(doomed)  # this pid's own, of a run long gone
                os.rename(directory, doomed)
                remove_tree(doomed)
        for leftover in self.path.iterdir():  # what runs killed while removing theirs left
            if _OLD.match(leftover.name) and stale(leftover):
                remove_tree(leftover)
        self.cells_dir.mkdir()
        self.scratch_dir.mkdir()
        return ResultLog(self.results_file, header)

    # ---------------------------------------------------------------- cells
    def staging(self, cell_id: str) -> Path:
        """A new, empty folder where the cell's files are written while it runs."""
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{safe_id(cell_id)}-", dir=self.cells_dir))

    def scratch(self, cell_id: str) -> Path:
        """A new, empty directory for the cell to write in (its HOME); see ``discard``."""
        path = Path(tempfile.mkdtemp(prefix=f"{safe_id(cell_id)}-", dir=self.scratch_dir))
        path.chmod(0o755)
        return path

    def discard_staging(self) -> None:
        """Remove every cell folder still being written (``cells/.tmp-*``): a run that stops at once."""
        for staging in self.cells_dir.glob(f"{STAGING_PREFIX}*"):
            remove_tree(staging)

    @staticmethod
    def discard(path: Path) -> None:
        """Remove a cell's staging folder or scratch, whatever the cell made in it; never raises."""
        remove_tree(path)

    def publish(self, staging: Path, cell_id: str) -> Path:
        """Rename a complete staging folder to ``cells/<id>``: one folder per cell, never two writers."""
        final = self.cell_dir(cell_id)
        try:
            os.rename(staging, final)  # fails if ``final`` exists and is not empty
        except OSError as err:
            remove_tree(staging)
            raise LdmatrixError(f"{final}: cannot publish the cell's folder ({err.strerror}): "
                                "was the cell run twice in one run?") from None
        return final


class ResultLog:
    """``results.jsonl``: a header, then one line per cell, each in a single write; a cell only once."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self._lock = threading.Lock()
        self._written: set[str] = set()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._write_line(header)  # no other thread has the log yet

    def write(self, record: dict[str, Any]) -> None:
        cell_id = record["cell_id"]
        with self._lock:
            if cell_id in self._written:
                raise LdmatrixError(f"{self.path}: a second result for cell {cell_id}; one result per cell")
            self._written.add(cell_id)
            self._write_line(record)

    def _write_line(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # only on a full disk or a signal; O_APPEND keeps the rest in place
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
